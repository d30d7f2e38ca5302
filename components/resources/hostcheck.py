"""HostReachable: a host that did not answer at preview fails `up` by name, after everything else is done.

The stack loader declares it only for such a host, depending on every other host's desktops, so it runs
last: Pulumi's engine stops scheduling new steps at the first failure, and a failure here must not keep
the other hosts' desktops from coming up. If the host answers by then, it passes and says so.
"""
from __future__ import annotations

import pulumi
from pulumi.dynamic import Resource

from ..errors import VdeskError
from ..host.connection import probe
from .provider import GateProvider, Prop

PROBE_TIMEOUT_S = 30.0


class HostReachableProvider(GateProvider):
    PROPS = {
        "host": Prop(str, required=True, doc="its name in the stack"),
        "uri": Prop(str, required=True),
        "reason": Prop(str, doc="why it could not be reached at preview"),
        "desktops": Prop(list, default=[], doc="the desktops that live there"),
    }
    OUTPUTS = ("reachable",)
    ID_PROP = "host"

    def gate(self, props) -> dict:
        why = probe(props["uri"], PROBE_TIMEOUT_S)
        if why is not None:
            theirs = ", ".join(props.get("desktops") or []) or "none"
            raise VdeskError(f"host {props['host']!r} ({props['uri']}) cannot be reached: {why}. Its desktops "
                             f"({theirs}) were not brought up or changed; the other hosts' desktops were. Run up "
                             "again once the host answers, or remove it from their hosts.")
        return {**self.inputs_of(props), "reachable": True}


class HostReachable(Resource):
    reachable: pulumi.Output[bool]

    def __init__(self, name: str, host: str, uri: str, reason: str, desktops: list[str], opts=None):
        super().__init__(HostReachableProvider(), name, HostReachableProvider.resource_props(
            "HostReachable", {"host": host, "uri": uri, "reason": reason, "desktops": desktops}), opts)
