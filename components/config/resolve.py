"""From the stack file as written to the resolved stack: references, placement, overlaps and inheritance.

stackfile.py has checked each value on its own; this checks what depends on
other entries (a pool named must exist and be on the desktop's host, networks
must not overlap, ...) and expands each user into a desktop with their
profile's settings. It works on a partly broken file too (see partial.py),
skipping what builds on a broken value, so that every problem is found at once.
"""
from __future__ import annotations

from typing import Any, Mapping

from pydantic import ValidationError

from ..cloudinit import available_profiles
from ..container.settings import ContainerSettings
from ..errors import InputError
from ..guest.checkspec import CheckSpecError, parse_checks
from ..host import exposure, policy as host_policy
from ..names import name_problem
from . import against_host, quotas, resolve_kubevirt
from .models import (DEFAULT_TIMEOUTS, ContainerConfig, HostConfig, ImageConfig, NetworkConfig, PoolConfig,
                     ShareConfig, StackConfig, for_user)
from .partial import is_broken, salvage
from .problems import Loc, from_error, in_file_order, loc_of, path, unknown
from .resolve_desktops import _Desktops
from .resolve_infrastructure import _Infrastructure
from .stackfile import HOW_TO_SET_A_SECRET, Container, StackFile


def parse(raw: dict[str, Any], *, stack: str, config_keys: Mapping[str, bool] | None = None) -> StackConfig:
    """Validate the whole `vdesk:*` config; raise InputError listing every problem.

    `config_keys` maps every key set in the stack's `vdesk` namespace (without
    the `vdesk:` prefix) to whether it is a secret; users' `password` entries
    must name one that is. Unknown plain keys are reported like unknown sections.
    """
    found, broken = [], set()
    try:
        written = StackFile.model_validate(raw)
    except ValidationError as exc:
        # Report every problem, then go on with what is usable, to find the problems that depend on it.
        found = from_error(exc)
        written = salvage(StackFile, raw, (), broken)
        if written is None:
            raise InputError(in_file_order(found, raw)) from None
    config, more = resolve(written, stack=stack, config_keys=dict(config_keys or {}), written_keys=set(raw),
                           broken=broken)
    if found or more:
        raise InputError(in_file_order([*found, *more], raw))
    return config


def resolve(file: StackFile, *, stack: str, config_keys: Mapping[str, bool], written_keys: set[str],
            broken: set[Loc]) -> tuple[StackConfig, list[tuple[Loc, str]]]:
    """The resolved stack, and every problem found (the stack is only usable without any)."""
    return _Resolver(file, config_keys, broken).stack(stack, written_keys)


class _Resolver(_Infrastructure, _Desktops):
    """The whole stack file, resolved: each part checks its sections (resolve_infrastructure, resolve_desktops)."""

    def __init__(self, file: StackFile, config_keys: Mapping[str, bool], broken: set[Loc]):
        self.file, self.config_keys, self.broken = file, config_keys, broken
        self.problems: list[tuple[Loc, str]] = []
        self.password_keys: set[str] = set()    # config keys named by users' `password`
        self.hosts: dict[str, HostConfig] = {}
        self.pools: dict[str, PoolConfig] = {}
        self.networks: dict[str, NetworkConfig] = {}
        self.images: dict[str, ImageConfig] = {}
        self.shares: dict[str, ShareConfig] = {}
        self.declared: dict[str, set[str]] = {}  # names per section, broken entries too (their problem is reported)
        self.policy = host_policy.load()          # what this machine's administrator lets a stack touch

    def add(self, loc: Loc, message: str) -> None:
        self.problems.append((loc, message))

    def ok(self, loc: Loc, *names: str) -> bool:
        """Whether the settings `names` of the entry at `loc` validated (and so may be built on)."""
        return not any(is_broken(self.broken, (*loc, name)) for name in names)

    def given(self, loc: Loc, entry, name: str) -> bool:
        """Whether the entry at `loc` sets `name` (to a valid value or not)."""
        return getattr(entry, name) is not None or not self.ok(loc, name)

    def ref(self, loc: Loc, value: str | None, kind: str) -> None:
        """A named entry of another section must exist (a missing or mistyped name is reported already)."""
        known = self.declared.get(f"{kind}s", set())
        if value is not None and value not in known:
            listed = ", ".join(sorted(known)) or "none declared"
            self.add(loc, f"unknown {kind} {value!r} (declared: {listed})")

    def stack(self, stack: str, written_keys: set[str]) -> tuple[StackConfig, list[tuple[Loc, str]]]:
        f = self.file
        self.declared = {section: set(getattr(f, section) or ()) for section in ("hosts", "pools", "networks",
                                                                                   "images", "profiles", "shares")}
        prefix = f.prefix or stack
        if f.prefix is None and not is_broken(self.broken, ("prefix",)) and name_problem(stack):
            self.add(("prefix",), f"{stack!r} is not a valid name prefix: set vdesk:prefix")
        self.hosts = {name: self.host(("hosts", name), name, h) for name, h in _entries(f.hosts)}
        self.pools = {name: self.pool(("pools", name), name, e) for name, e in _entries(f.pools)}
        self.networks = {name: self.network(("networks", name), name, e) for name, e in _entries(f.networks)}
        self.overlaps()
        self.images = {name: self.image(("images", name), name, e) for name, e in _entries(f.images)}
        self.shares = {name: self.share(("shares", name), name, e) for name, e in _entries(f.shares)}
        desktops = {name: self.desktop(("desktops", name), name, e) for name, e in _entries(f.desktops)}
        profiles = {name: self.profile(("profiles", name), name, e) for name, e in _entries(f.profiles)}
        for desktop in self.user_desktops(profiles, desktops):
            desktops[desktop.name] = desktop
        self.addresses(desktops)
        if not is_broken(self.broken, ("quotas",)):
            self.problems += quotas.problems(f.quotas, desktops)
        containers = {name: self.container(("containers", name), name, e) for name, e in _entries(f.containers)}
        self.problems += resolve_kubevirt.desktop_problems(f, self.hosts, desktops) \
            + resolve_kubevirt.infrastructure_problems(self.hosts, self.pools, self.networks, self.shares, containers)
        self.problems += exposure.problems(f, self.policy, local=self.local)    # the administrator's leave
        self.problems += against_host.written_problems(f)
        timeouts = {key: value or DEFAULT_TIMEOUTS[key]
                    for key, value in (f.timeouts.model_dump() if f.timeouts else DEFAULT_TIMEOUTS).items()}
        # A plain `vdesk:` key that is neither a section nor a user's password is a typo (secrets may wait
        # for the user who will name them).
        for key, secret in self.config_keys.items():
            if not secret and key not in StackFile.model_fields and key not in written_keys \
                    and key not in self.password_keys:
                self.add((key,), unknown(StackFile))
        return (StackConfig(prefix, self.hosts, self.pools, self.networks, self.images, desktops, timeouts,
                            profiles, containers, self.shares,
                            f.quotas.model_dump() if f.quotas and not is_broken(self.broken, ("quotas",)) else None),
                self.problems)

    def password(self, loc: Loc, key: str | None) -> str | None:
        """The name of the secret config key that holds a user's password.

        The key is only named when it is set in plain text: a password written in its place never
        gets this far (its type's wording does not show it either).
        """
        if key is None:
            return None
        self.password_keys.add(key)
        if key not in self.config_keys:
            self.add(loc, "names a vdesk config key that is not set (value not shown, in case it is a password): "
                          f"{HOW_TO_SET_A_SECRET}")
            return None
        if not self.config_keys[key]:
            self.add(loc, f"vdesk:{key} is stored in plain text: set it again with "
                          f"`pulumi config set --secret vdesk:{key}`")
            return None
        return key

    def template(self, loc: Loc, name: str | None) -> None:
        available = available_profiles()
        if name is not None and name not in available:
            self.add(loc, f"unknown template {name!r} (available: {', '.join(available)})")

    def checks(self, loc: Loc, checks: list | None, *, user: str | None = None) -> tuple[dict, ...]:
        """Validate a list of checks (with `{user}` replaced by `user`, if given); return them as declared."""
        try:
            parse_checks(for_user(checks, user) if user else checks, path(loc))
        except CheckSpecError as exc:
            self.problems += [(loc_of(where), message) for where, message in exc.problems]
            return ()
        return tuple(checks or ())

    # --- containers -----------------------------------------------------------------------------------

    def container(self, loc: Loc, name: str, e: Container) -> ContainerConfig:
        host = e.host if self.given(loc, e, "host") else next(iter(self.hosts), None)
        self.ref((*loc, "host"), host, "host")
        network = e.network
        if network is not None:
            self.ref((*loc, "network"), network, "network")
            if network in self.networks and host in self.hosts and self.networks[network].hosts \
                    and not self.networks[network].on(host):
                on = ", ".join(repr(h) for h in self.networks[network].hosts) or "no host"
                self.add((*loc, "network"), f"{network!r} is on host {on}, not on {host!r}")
        self.ref((*loc, "image"), e.image, "image")
        if e.image in self.images and self.images[e.image].path is not None:
            self.add((*loc, "image"), "containers take their root tree from a golden image (golden: debian12)")
        for i, mount in enumerate(e.mounts or ()):
            if mount is not None and mount.source:
                self.allowed((*loc, "mounts", i, "source"), "container_mounts", mount.source, local=self.local(host))
        own = ContainerSettings.model_construct(**{key: getattr(e, key) for key in ContainerSettings.model_fields})
        return ContainerConfig(name, host, network, e.image, own.model_copy(update={
            "mounts": [m for m in e.mounts or () if m],
            "checks": list(self.checks((*loc, "checks"), e.checks))}))


def _entries(section: dict | None):
    """The usable entries of a section (a broken one is None; its problem is reported already)."""
    return [(name, entry) for name, entry in (section or {}).items() if entry is not None]
