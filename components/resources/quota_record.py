"""QuotaRecord: the dynamic resource through which a stack that declares quotas records them on an embedded host,
where its portal, console gateway and lifecycle service hold a start or a wake to them
(components/lifecycle/quotas.py).

One per (stack, host), made only when the stack declares a quota, and changed only when its quotas change (whom
each desktop is for is in the desktop's own portal record). Written at `up`, never by a preview; removed at
`destroy`; a refresh reads the file back, so one removed or altered on the host is put back by the next `up`.
The stack is the running stack (pulumi.get_stack()), never a value from the stack file.
"""
from __future__ import annotations

import os
from pathlib import Path

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from ..lifecycle import quotas as on_host
from .provider import DeclaredProvider, Prop


class QuotaRecordProvider(DeclaredProvider):
    PROPS = {
        "lifecycle_dir": Prop(str, required=True, replaces=True, doc="the host's lifecycle dir (in its state dir)"),
        "stack": Prop(str, required=True, replaces=True, doc="the stack whose quotas they are"),
        "quotas": Prop(dict, required=True, doc="users or groups -> who -> {desktops, memory}: the stack's quotas"),
    }
    # Another path (another state dir, another stack) is written before the old one goes: never without one.
    DELETE_BEFORE_REPLACE = False

    def check_more(self, inputs):
        if isinstance(stack := inputs.get("stack"), str):
            try:
                on_host.record_path(inputs.get("lifecycle_dir") or ".", stack)
            except ValueError as exc:
                return [("stack", f"stack: {exc}")]
        return []

    def create(self, props):
        return CreateResult(str(on_host.record(props["lifecycle_dir"], props["stack"], props["quotas"])),
                            self.inputs_of(props))

    def update(self, _id, _olds, news):
        on_host.record(news["lifecycle_dir"], news["stack"], news["quotas"])
        return UpdateResult(self.inputs_of(news))

    def read(self, id_, props):
        """What the host holds: gone when the file is (the next `up` writes it again); else its quotas, so an
        untouched record shows no change and an altered one is rewritten by the next `up`."""
        on_file = on_host.recorded(props["lifecycle_dir"], props["stack"])
        if on_file is None:
            return ReadResult("", {})
        return ReadResult(id_, {**self.inputs_of(props), "quotas": on_file})

    def delete(self, _id, props):
        on_host.withdraw(props["lifecycle_dir"], props["stack"])


class QuotaRecord(Resource):
    def __init__(self, name: str, *, lifecycle_dir: str | Path, quotas, opts=None):
        super().__init__(QuotaRecordProvider(), name, QuotaRecordProvider.resource_props(
            "QuotaRecord", {"lifecycle_dir": os.path.normpath(lifecycle_dir), "stack": pulumi.get_stack(),
                            "quotas": on_host.declared(quotas)}), opts)
