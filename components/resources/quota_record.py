"""QuotaRecord: the dynamic resource through which a stack records, on an embedded host, its quotas and whom its
desktops there are for (components/lifecycle/quotas.py), which the host's portal, console gateway and lifecycle
service hold a start or a wake to.

One per (host, stack): written at `up` (never by a preview), removed at `destroy`, so `destroy` leaves no record
behind; only this stack's file is ever touched. The stack is the running stack (pulumi.get_stack()), never a
value from the stack file. A record that an older `up` wrote from the program is taken over by create, which
writes the same file. The inputs are the file's body, so a refresh of an untouched record shows no change.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from ..lifecycle import quotas as on_host
from .provider import DeclaredProvider, Prop

log = logging.getLogger(__name__)


class QuotaRecordProvider(DeclaredProvider):
    PROPS = {
        "lifecycle_dir": Prop(str, required=True, replaces=True, doc="the host's lifecycle dir (in its state dir)"),
        "stack": Prop(str, required=True, replaces=True, doc="the stack whose record it is"),
        "quotas": Prop(dict, required=True, doc="users or groups -> who -> {desktops, memory}: the stack's quotas"),
        "desktops": Prop(dict, required=True, doc="domain name -> {users, groups}: whom each desktop of the stack "
                                                  "on this host is for"),
    }
    # A new record (another host state dir, a renamed stack) is written before the old one goes, so the
    # desktops are never without one.
    DELETE_BEFORE_REPLACE = False

    def check_more(self, inputs):
        stack = inputs.get("stack")
        if isinstance(stack, str):
            try:
                on_host.record_path(inputs.get("lifecycle_dir") or ".", stack)
            except ValueError as exc:
                return [("stack", f"stack: {exc}")]
        return []

    def _write(self, props) -> Path:
        return on_host.record(props["lifecycle_dir"], props["stack"], props["quotas"], props["desktops"])

    def create(self, props):
        return CreateResult(str(self._write(props)), self.inputs_of(props))

    def update(self, _id, _olds, news):
        self._write(news)
        return UpdateResult(self.inputs_of(news))

    def read(self, id_, props):
        """What the host holds: gone when the file is; a file that does not read differs from any declaration,
        so the next `up` writes it again."""
        path = on_host.record_path(props["lifecycle_dir"], props["stack"])
        if not path.exists():
            return ReadResult("", {})
        body = on_host.recorded(props["lifecycle_dir"], props["stack"]) or {"quotas": {}, "desktops": {}}
        return ReadResult(id_, {**self.inputs_of(props), **body})

    def delete(self, _id, props):
        on_host.withdraw(props["lifecycle_dir"], props["stack"])
        log.info("quota record of stack %s removed from %s", props["stack"], props["lifecycle_dir"])


class QuotaRecord(Resource):
    """This stack's record on one host; a desktop on that host depends on it (it is there before the desktop
    can be started from the host, and removed only after the desktop)."""

    def __init__(self, name: str, *, lifecycle_dir: str | Path, quotas, desktops, opts=None):
        body = on_host.record_body(quotas, desktops)
        super().__init__(QuotaRecordProvider(), name, QuotaRecordProvider.resource_props(
            "QuotaRecord", {"lifecycle_dir": os.path.normpath(lifecycle_dir), "stack": pulumi.get_stack(),
                            **body}), opts)
