"""Stack configuration: parsed and validated as a whole before any resource is declared.

Every problem is reported at once with its config path (e.g.
`desktops.alice.memory`, `users[3].profile`), so a bad stack file fails
`pulumi preview` and creates nothing.

Desktops are declared in two forms, which may be mixed:

- `desktops`: a mapping of desktop names to their full settings;
- `profiles` + `users`: a profile carries a template and the settings shared
  by its users (placement, sizes, groups, checks); each user gets one desktop
  named after the user, with per-user overrides. A user's `password` names a
  *secret* config key (`pulumi config set --secret vdesk:<key>`); the password
  itself never passes through this package.

The file as written is described by the pydantic models of stackfile.py;
resolve.py (its `parse`) checks what refers to what and produces the
dataclasses below (the resolved stack that the rest of vdesk consumes);
problems.py words every problem; schema.py publishes the models as
docs/stack.schema.json.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..container.settings import ContainerSettings
from ..desktop.settings import DesktopSettings
from .stackfile import (ACCELERATORS, ADDRESS_SOURCES, BOOT_MODES, DEFAULT_TEMPLATE, EMBEDDED, NETWORK_MODES,
                       Container, Desktop, DesktopUser, Pool, Profile, StackFile, Timeouts, User)

__all__ = ["ACCELERATORS", "ADDRESS_SOURCES", "BOOT_MODES", "CONTAINER_KEYS", "DEFAULT_TEMPLATE", "DEFAULT_TIMEOUTS",
           "DESKTOP_KEYS", "DESKTOP_USER_KEYS", "EMBEDDED", "NETWORK_MODES",
           "POOL_KEYS", "PROFILE_KEYS", "SECTIONS", "USER_KEYS", "USER_PLACEHOLDER",
           "ContainerConfig", "DesktopConfig", "HostConfig", "ImageConfig", "NetworkConfig", "PoolConfig",
           "ShareConfig", "StackConfig", "for_user"]

# The keys each part of the file takes: declared once, by the models.
SECTIONS = tuple(StackFile.model_fields)
PROFILE_KEYS = tuple(Profile.model_fields)
USER_KEYS = tuple(User.model_fields)
DESKTOP_KEYS = tuple(Desktop.model_fields)
DESKTOP_USER_KEYS = tuple(DesktopUser.model_fields)
POOL_KEYS = tuple(Pool.model_fields)
CONTAINER_KEYS = tuple(Container.model_fields)
DEFAULT_TIMEOUTS = Timeouts().model_dump()
USER_PLACEHOLDER = "{user}"    # in a profile's checks: replaced by each user's name


@dataclasses.dataclass(frozen=True)
class HostConfig:
    name: str
    uri: str                   # "embedded" or a libvirt URI
    accelerator: str
    overcommit: tuple[tuple[str, float], ...] = ()   # (memory|cpu, ratio) beyond the defaults
    display_listen: str | None = None  # socket | loopback | an address (None: the host kind's default)
    spice: bool | None = None          # None: where the host's qemu has it
    console: Any = None                # a components.console.settings.ConsoleSettings (embedded host)
    kubevirt: Any = None               # a resolve_kubevirt.KubevirtHostConfig: a host of kind kubevirt


@dataclasses.dataclass(frozen=True)
class PoolConfig:
    name: str
    host: str
    path: str | None
    adopt: bool = False                # take over an existing pool instead of failing
    libvirt_name: str | None = None    # its name on the host, when not <prefix>-<name>
    keep_on_destroy: bool = False      # `destroy` leaves it on the host (e.g. an adopted default pool)
    type: str = "dir"                  # dir | logical (an LVM volume group) | netfs (a mounted network share)
    source_devices: tuple[str, ...] = ()   # logical: block devices vdesk builds the volume group on
    source_name: str | None = None     # logical: the volume group (pre-made when no source_devices)
    source_host: str | None = None     # netfs: the file server
    source_dir: str | None = None      # netfs: the exported directory (cifs: the share)
    source_format: str | None = None   # netfs: nfs | cifs | glusterfs | auto
    hosts: tuple[str, ...] = ()        # every host it is on: (host,), or those of `hosts:` (one pool on each)
    spread: bool = False               # declared with `hosts:` (one resource per host: pool-<name>-<host>)

    def on(self, host: str | None) -> bool:
        return host in (self.hosts or (self.host,))


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    name: str
    host: str
    cidr: str | None                   # None only with mode: bridge (there it just describes the LAN)
    mode: str
    dhcp: bool
    domain: str | None
    dhcp_hosts: tuple[dict, ...] = ()  # static leases {mac, ip, name}: updated live
    dns_hosts: tuple[dict, ...] = ()   # DNS records {ip, hostnames}: updated live
    # Where the readiness gate learns a guest's address, in order. Default by network type:
    # with DHCP the network's leases, then the guest agent; without DHCP only the agent can tell.
    address_sources: tuple[str, ...] = ("lease", "agent")
    adopt: bool = False                # take over an existing network instead of failing
    libvirt_name: str | None = None    # its name on the host, when not <prefix>-<name>
    keep_on_destroy: bool = False      # `destroy` leaves it on the host (e.g. libvirt's default network)
    cidr6: str | None = None           # IPv6 prefix beside the IPv4 cidr (dual stack)
    bridge: str | None = None          # mode: bridge: the existing host bridge to attach to
    dhcp_range: dict | None = None     # {start, end} of the IPv4 DHCP pool (None: all after the gateway)
    hosts: tuple[str, ...] = ()        # every host it is on: (host,), or those of `hosts:` (one network on each)
    spread: bool = False               # declared with `hosts:` (one resource per host: network-<name>-<host>)

    def on(self, host: str | None) -> bool:
        return host in (self.hosts or (self.host,))


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    name: str
    golden: str | None         # name of an image vdesk builds (tools/build-image.sh)
    path: str | None           # a user's own image file with its own bootloader
    boot: str                  # kernel (golden, a recipe for bios) | bios | uefi (own files, a recipe for uefi)
    recipe: Any = None         # a components.images.recipe.Recipe vdesk builds


@dataclasses.dataclass(frozen=True)
class DesktopConfig:
    """A desktop as resolved: where it runs, what it refers to (by name), its users, and its settings, which are
    declared once (components.desktop.settings.DesktopSettings) and not repeated here."""
    name: str
    host: str
    pool: str
    network: str
    image: str
    profile: str
    users: tuple[DesktopUser, ...]    # as written, their checked parts only (a password: its secret key's name)
    settings: DesktopSettings         # its own settings, checked (sizes in bytes): a profile's with a user's
    #                                   overrides, and checks with each user's name in place of {user}
    source: str = ""                  # where it is declared: "desktops.dev" or "users[0]"
    address: str | None = None        # static IPv4 in CIDR form ("10.84.0.50/24"), on a network without DHCP
    gateway: str | None = None        # that network's gateway (and DNS server), with a static address
    adopt: bool = False               # take over its domain, disk and seed if they exist (e.g. after a lost state)
    extra_networks: tuple[str, ...] = ()   # more NICs (eth1, eth2, ...), DHCP on each, stable MACs
    shares: tuple[str, ...] = ()       # names of shares mounted in it
    origins: tuple[tuple[str, str], ...] = ()   # (setting, path) of settings inherited from a profile
    hosts: tuple[str, ...] = ()       # where it may be placed; `host` is where it is (None until placed)

    def field(self, key: str) -> str:
        """Where a setting of this desktop is written: its own entry, or the profile it inherits it from."""
        return dict(self.origins).get(key, f"{self.source}.{key}")


@dataclasses.dataclass(frozen=True)
class ContainerConfig:
    """A libvirt LXC container as resolved: where it runs, what it is made from, and its settings (declared once:
    components.container.settings.ContainerSettings, checks checked)."""
    name: str
    host: str
    network: str | None
    image: str
    settings: ContainerSettings


@dataclasses.dataclass(frozen=True)
class ShareConfig:
    name: str
    host: str
    path: str
    writable: bool = False


@dataclasses.dataclass(frozen=True)
class StackConfig:
    prefix: str
    hosts: dict[str, HostConfig]
    pools: dict[str, PoolConfig]
    networks: dict[str, NetworkConfig]
    images: dict[str, ImageConfig]
    desktops: dict[str, DesktopConfig]
    timeouts: dict[str, int]
    profiles: dict[str, Profile] = dataclasses.field(default_factory=dict)   # as written, with checked values
    containers: dict[str, ContainerConfig] = dataclasses.field(default_factory=dict)
    shares: dict[str, ShareConfig] = dataclasses.field(default_factory=dict)
    quotas: dict | None = None         # {users|groups: {who: {desktops, memory}}}, as declared (memory in bytes)



def for_user(value, user: str):
    """A profile's checks for one user: every `{user}` in their strings becomes the user's name."""
    if isinstance(value, str):
        return value.replace(USER_PLACEHOLDER, user)
    if isinstance(value, list):
        return [for_user(v, user) for v in value]
    if isinstance(value, dict):
        return {k: for_user(v, user) for k, v in value.items()}
    return value
