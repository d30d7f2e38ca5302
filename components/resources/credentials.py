"""DesktopCredentials: a desktop's generated secrets (login key, host key, display password) as one resource.

They live only in Pulumi state (secrets there), so each costs the engine a step
on every `up`, a no-op one included, and nothing else: one resource holds the
three. Each part is made again only when its own trigger changes: a key when
its comment does (a new VM name), the display password when its rotation value
does; a new validity counts from when the password was made.

States written before hold the three as SshKeyPair, SshKeyPair and
DisplayPassword resources; `merge_legacy` moves them into one of these, the
same values (ciphertext as it is), before the program runs
(components/cli/migrate.py).
"""
from __future__ import annotations

import dataclasses
import datetime
import secrets

import pulumi
from pulumi.dynamic import CheckFailure, CreateResult, ReadResult, Resource, UpdateResult
from pulumi.dynamic.dynamic import serialize_provider

from ..guest.keys import generate_ed25519
from .display import DisplayPasswordProvider, generated_now, new_password, valid_to
from .keys import KeyPairProvider
from .legacy import CREDENTIALS as LEGACY, DESKTOP_TYPE, DYNAMIC_TYPE   # the resources of before
from .provider import DeclaredProvider, Prop

NAME_SUFFIX = "-credentials"
_PACKAGE = __package__.rsplit(".", 1)[0]      # components in a checkout, vdesk when installed
SECRET_OUTPUTS = ["login_private_key", "host_private_key", "display_password"]


class DesktopCredentialsProvider(DeclaredProvider):
    PROPS = {
        "login_comment": Prop(str, required=True, doc="the login key's comment; a new one makes a new login key"),
        "host_comment": Prop(str, required=True, doc="the host key's comment; a new one makes a new host key"),
        # the display password's declarations are the DisplayPassword's (one declaration per setting), except
        # that a rotation is an update here: a replace would make the keys again too
        "display_password_rotation": dataclasses.replace(DisplayPasswordProvider.PROPS["rotation"], replaces=False),
        "display_password_valid_for_s": DisplayPasswordProvider.PROPS["valid_for_s"],
    }
    OUTPUTS = ("login_public_key", "login_private_key", "host_public_key", "host_private_key",
               "display_password", "display_password_generated_at", "display_password_valid_to")
    DELETE_BEFORE_REPLACE = False

    def check(self, olds, news):
        result = super().check(olds, news)
        if olds and "comment" in olds and "login_comment" not in olds:
            # (aliased to the login key of before: the state was not moved over, and these would be new keys)
            result.failures.append(CheckFailure("login_comment", "the state still holds this desktop's keys and "
                                                "display password as three resources of before; move them into "
                                                f"one first: `python -m {_PACKAGE}.cli.migrate STACK` "
                                                "(tools/vdesk does it before every run)"))
        return result

    def create(self, props):
        return CreateResult(secrets.token_hex(8), self._made(props, {}))

    def update(self, _id, olds, news):
        return UpdateResult(self._made(news, olds))

    def _made(self, props: dict, olds: dict) -> dict:
        """The outputs: what olds hold, made again where the part's trigger changed (or it was never made)."""
        outs = {**self.inputs_of(props)}
        for part in ("login", "host"):
            if olds.get(f"{part}_private_key") and olds.get(f"{part}_comment") == props[f"{part}_comment"]:
                outs[f"{part}_public_key"], outs[f"{part}_private_key"] = \
                    olds[f"{part}_public_key"], olds[f"{part}_private_key"]
            else:
                pair = generate_ed25519(props[f"{part}_comment"])
                outs[f"{part}_public_key"], outs[f"{part}_private_key"] = pair.public_openssh, pair.private_openssh
        rotation = props.get("display_password_rotation") or ""
        if olds.get("display_password") and (olds.get("display_password_rotation") or "") == rotation:
            outs["display_password"] = olds["display_password"]
            outs["display_password_generated_at"] = olds["display_password_generated_at"]
        else:
            outs["display_password"], outs["display_password_generated_at"] = new_password(), generated_now()
        outs["display_password_valid_to"] = valid_to(outs["display_password_generated_at"],
                                                     props.get("display_password_valid_for_s"))
        return outs

    def read(self, id_, props):
        return ReadResult(id_, props)  # lives only in state: nothing outside can drift

    def delete(self, _id, _props):
        return None


class DesktopCredentials(Resource):
    login_public_key: pulumi.Output[str]
    login_private_key: pulumi.Output[str]
    host_public_key: pulumi.Output[str]
    host_private_key: pulumi.Output[str]
    display_password: pulumi.Output[str]
    display_password_generated_at: pulumi.Output[str]
    display_password_valid_to: pulumi.Output[str]

    def __init__(self, desktop: str, *, vm_name: str, rotation: str = "", valid_for_s: int | None = None,
                 opts: pulumi.ResourceOptions | None = None):
        # Aliased to the login key of before, so a state not moved over is refused by check (not given new keys).
        # (The parent is named: the pinned engine reads an alias without one as a resource of the stack's root.)
        legacy = pulumi.Alias(name=f"{desktop}{LEGACY['login']}", parent=opts.parent if opts and opts.parent else ...)
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=SECRET_OUTPUTS,
                                                                         aliases=[legacy]))
        super().__init__(DesktopCredentialsProvider(), f"{desktop}{NAME_SUFFIX}",
                         DesktopCredentialsProvider.resource_props("DesktopCredentials", {
                             "login_comment": f"vdesk login {vm_name}", "host_comment": f"vdesk host {vm_name}",
                             "display_password_rotation": rotation, "display_password_valid_for_s": valid_for_s}),
                         opts)


# -- moving a state of before over ------------------------------------------------------------------------

def _blob(provider) -> str:
    return serialize_provider(provider)


def _parent_is_desktop(resource: dict) -> bool:
    parent = resource.get("parent") or ""
    return parent.split("::")[-2].endswith(DESKTOP_TYPE) if parent.count("::") >= 3 else False


def merge_legacy(deployment: dict) -> list[str]:
    """Move every Desktop's three credential resources of before into one DesktopCredentials, in place.

    The values are copied as the state holds them (secrets stay ciphertext); what depended on the three
    depends on the new one. Returns the desktops moved over (none: the deployment is unchanged)."""
    resources = deployment.get("resources") or []
    blobs = {"login": _blob(KeyPairProvider()), "host": _blob(KeyPairProvider()),
             "display": _blob(DisplayPasswordProvider())}
    groups: dict[tuple[str, str], dict[str, dict]] = {}
    for r in resources:
        if r.get("type") != DYNAMIC_TYPE or not r.get("custom") or not _parent_is_desktop(r):
            continue
        name = r["urn"].rsplit("::", 1)[1]
        for part, suffix in LEGACY.items():
            if name.endswith(suffix) and (r.get("inputs") or {}).get("__provider") == blobs[part]:
                groups.setdefault((r["parent"], name[:-len(suffix)]), {})[part] = r
    moved, renamed, replacement = [], {}, {}
    for (_parent, desktop), parts in groups.items():
        if set(parts) != set(LEGACY):
            continue
        merged = _merged(desktop, parts)
        for r in parts.values():
            renamed[r["urn"]] = merged["urn"]
        replacement[id(min(parts.values(), key=resources.index))] = merged
        moved.append(desktop)
    if not moved:
        return []
    kept = []
    for r in resources:
        if id(r) in replacement:
            kept.append(replacement[id(r)])
        elif r["urn"] not in renamed:
            kept.append(_depending_on(r, renamed))
    deployment["resources"] = kept
    return sorted(moved)


def _merged(desktop: str, parts: dict[str, dict]) -> dict:
    login, host, display = parts["login"], parts["host"], parts["display"]
    lo, ho, do = login.get("outputs") or {}, host.get("outputs") or {}, display.get("outputs") or {}
    di = display.get("inputs") or {}
    inputs = {"__provider": _blob(DesktopCredentialsProvider()),
              "login_comment": (login.get("inputs") or {})["comment"],
              "host_comment": (host.get("inputs") or {})["comment"],
              "display_password_rotation": di.get("rotation", "")}
    if di.get("valid_for_s") is not None:
        inputs["display_password_valid_for_s"] = di["valid_for_s"]
    outputs = {**inputs,
               "login_public_key": lo["public_key"], "login_private_key": lo["private_key"],
               "host_public_key": ho["public_key"], "host_private_key": ho["private_key"],
               "display_password": do["password"], "display_password_generated_at": do["generated_at"],
               "display_password_valid_to": do.get("valid_to", "")}
    now = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    merged = {key: login[key] for key in ("custom", "type", "parent", "provider", "created") if key in login}
    merged.update(urn=login["urn"].rsplit("::", 1)[0] + f"::{desktop}{NAME_SUFFIX}", id=secrets.token_hex(8),
                  inputs=inputs, outputs=outputs, propertyDependencies=dict.fromkeys(inputs),
                  additionalSecretOutputs=SECRET_OUTPUTS, modified=now)
    return merged


def _depending_on(resource: dict, renamed: dict[str, str]) -> dict:
    """The resource, its dependencies on the resources of before named by the one that holds them now."""
    def swap(urns):
        out = []
        for urn in urns or ():
            urn = renamed.get(urn, urn)
            if urn not in out:
                out.append(urn)
        return out

    if not any(u in renamed for u in resource.get("dependencies") or ()) and not any(
            u in renamed for deps in (resource.get("propertyDependencies") or {}).values() for u in deps or ()):
        return resource
    resource = dict(resource)
    if "dependencies" in resource:
        resource["dependencies"] = swap(resource["dependencies"])
    if resource.get("propertyDependencies"):
        resource["propertyDependencies"] = {k: swap(v) if v is not None else None
                                            for k, v in resource["propertyDependencies"].items()}
    return resource
