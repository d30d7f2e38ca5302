"""ContainerReady: the container's gate — an address on its network, then its checks.

The same declarative checks as desktops, run inside the container through its
namespaces (no SSH needed into a container vdesk runs itself).
"""
from __future__ import annotations

import logging

import pulumi
from pulumi.dynamic import Resource

from ..host.connection import connect
from .container import ContainerExec
from ..errors import VdeskError
from ..guest import GuestError
from ..guest.address import wait_for_address
from ..guest.checkrun import report, run_checks
from ..guest.checkspec import parse_checks
from ..kinds import Count
from .provider import GateProvider, Prop, declared

log = logging.getLogger(__name__)


class ContainerReadyProvider(GateProvider):
    PROPS = {
        "host_uri": Prop(str, required=True),
        "name": Prop(str, required=True),
        "uuid": Prop(str, required=True, doc="a new container is checked again"),
        "mac": Prop(str, doc="NIC whose DHCP lease is the container's address; none: no address wait"),
        "checks": Prop(list, default=[], doc="declarative checks run inside the container"),
        "address_timeout_s": declared(Count, "must be positive", default=120),
    }
    OUTPUTS = ("ip", "checks_passed")
    ID_PROP = "uuid"

    def gate(self, props) -> dict:
        name, ip = props["name"], None
        try:
            if props.get("mac"):
                with connect(props["host_uri"]) as conn:
                    ip = wait_for_address(conn, name, props["mac"], sources=("lease",),
                                          timeout_s=props["address_timeout_s"])
            outcomes = run_checks(ContainerExec(props["host_uri"], name), parse_checks(props.get("checks") or []))
        except GuestError as exc:
            raise VdeskError(f"container {name!r} is not ready: {exc}") from None
        if not all(o.passed for o in outcomes):
            raise VdeskError(report(name, outcomes))
        return {**self.inputs_of(props), "ip": ip, "checks_passed": len(outcomes)}


class ContainerReady(Resource):
    ip: pulumi.Output[str]

    def __init__(self, name: str, props: dict, opts=None):
        super().__init__(ContainerReadyProvider(), name,
                         ContainerReadyProvider.resource_props("ContainerReady", props), opts)
