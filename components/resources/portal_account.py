"""PortalAccount: the dynamic resource through which `up` publishes a desktop's users to its host's portal.

It also says whom the desktop is for (its users and their groups), which the host's quotas count
(components/lifecycle/quotas.py): one record per desktop, so adding a user touches only that user's desktop.

Created, updated and deleted with the desktop, so the portal's record is there exactly while the
desktop is; a refresh reads the record back, so one removed or altered on the host is put back by the next
`up`. The stack is the running stack (pulumi.get_stack()), never a value from the stack file.
"""
from __future__ import annotations

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from .provider import DeclaredProvider, Prop
from ..portal import accounts


class PortalAccountProvider(DeclaredProvider):
    PROPS = {
        "portal_dir": Prop(str, required=True, replaces=True, doc="the host's portal dir (its state dir)"),
        "stack": Prop(str, required=True, replaces=True, doc="the stack that owns the desktop"),
        "desktop": Prop(str, required=True, replaces=True, doc="the desktop's libvirt domain name"),
        "users": Prop(list, required=True, doc="the desktop's users, who may sign in to it"),
        "hashes": Prop(dict, default={}, secret=True, doc="user -> the $6$ crypt hash of their password"),
        "emails": Prop(dict, default={}, doc="user -> the address their OpenID Connect identity signs in with"),
        # (no default: a desktop whose users have no group declares none, as before groups were recorded)
        "groups": Prop(dict, doc="user -> their groups, which the host's quotas count the desktop for"),
    }
    DELETE_BEFORE_REPLACE = False

    def _publish(self, props) -> None:
        accounts.publish(props["portal_dir"], props["stack"], props["desktop"], props["users"],
                         props.get("hashes") or {}, props.get("emails") or {}, props.get("groups") or {})

    def create(self, props):
        self._publish(props)
        return CreateResult(f"{props['stack']}/{props['desktop']}", self.inputs_of(props))

    def update(self, _id, _olds, news):
        self._publish(news)
        return UpdateResult(self.inputs_of(news))

    def read(self, id_, props):
        """What the host's portal holds for this desktop: gone when its file is (the next `up` writes it again);
        the declaration itself while the file says the same, so an untouched record shows no change; else the
        file's users, hashes, addresses and groups, which the next `up` rewrites. `hashes` stays a secret: the engine
        marks a read property secret where the state it read from had it secret (dynamic providers are sent
        no secrets), and the resource also declares it an additional secret output."""
        on_file = accounts.recorded(props["portal_dir"], props["stack"], props["desktop"])
        if on_file is None:
            return ReadResult("", {})
        inputs = self.inputs_of(props)
        if on_file == accounts.declared(props["stack"], props["desktop"], props.get("users") or [],
                                        props.get("hashes") or {}, props.get("emails") or {},
                                        props.get("groups") or {}):
            return ReadResult(id_, inputs)
        return ReadResult(id_, {**inputs, "users": list(on_file.users), "hashes": dict(on_file.hashes),
                                "emails": dict(on_file.emails),
                                "groups": {u: list(g) for u, g in on_file.groups.items()} or None})

    def delete(self, _id, props):
        accounts.withdraw(props["portal_dir"], props["stack"], props["desktop"])


class PortalAccount(Resource):
    def __init__(self, name: str, *, portal_dir: str, desktop: str, users, hashes, emails=None, groups=None,
                 opts=None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["hashes"]))
        super().__init__(PortalAccountProvider(), name, PortalAccountProvider.resource_props(
            "PortalAccount", {"portal_dir": portal_dir, "stack": pulumi.get_stack(), "desktop": desktop,
                              "users": users, "hashes": hashes, "emails": emails or {},
                              "groups": groups or None}), opts)
