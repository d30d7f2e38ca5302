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
  itself never passes through this module.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from typing import Any, Mapping

from ..errors import InputError
from ..guest.checkspec import CheckSpecError, parse_checks
from ..names import name_problem, network_problem, parse_size

# An OpenSSH public key line (options and comment allowed), as the seed templates accept it.
_PUBLIC_KEY = re.compile(
    r"(^|\s)(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)"
    r"|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\s+[A-Za-z0-9+/]+=*(\s|$)")

ACCELERATORS = ("kvm", "tcg", "auto")
EMBEDDED = "embedded"
SECTIONS = ("hosts", "pools", "networks", "images", "profiles", "users", "desktops", "containers", "timeouts",
            "prefix")
ADDRESS_SOURCES = ("lease", "agent", "arp")
CONTAINER_KEYS = ("host", "network", "image", "memory", "vcpus", "command", "env", "mounts", "userns", "running",
                  "checks")
NETWORK_MODES = ("nat", "isolated", "route", "open", "bridge")
BOOT_MODES = ("bios", "uefi")
DEFAULT_TIMEOUTS = {"address": 600, "ssh": 300, "cloud_init": 900, "shutdown": 60}
DEFAULT_TEMPLATE = "desktop"
USER_PLACEHOLDER = "{user}"    # in a profile's checks: replaced by each user's name
MIN_MEMORY = 256 * 1024**2
PROFILE_KEYS = ("template", "host", "pool", "network", "extra_networks", "image", "memory", "vcpus", "max_vcpus", "cpu_topology",
                "machine", "disk", "disk_clone", "groups", "checks", "running", "autostart")
USER_KEYS = ("name", "profile", "ssh_authorized_keys", "password", "groups", "memory", "vcpus", "max_vcpus", "disk",
             "disk_clone", "checks", "running", "autostart", "address", "adopt")
DESKTOP_KEYS = ("host", "pool", "network", "extra_networks", "image", "memory", "vcpus", "max_vcpus", "cpu_topology", "machine", "disk",
                "disk_clone", "profile", "users", "running", "autostart", "checks", "address", "adopt")
# A desktop's disk: a linked clone on its image (fast, small, but the image must stay) or a full copy.
DISK_CLONES = ("linked", "full")
POOL_KEYS = ("host", "type", "path", "source_devices", "source_name", "source_host", "source_dir", "source_format",
             "adopt", "keep_on_destroy")
DESKTOP_USER_KEYS = ("name", "ssh_authorized_keys", "groups", "password")
_LOGIN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_GROUP = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_CONFIG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Accounts the golden image (or any Debian) already has: a desktop user must not take them over.
RESERVED_LOGINS = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
    "backup", "list", "irc", "gnats", "nobody", "_apt", "messagebus", "sshd", "systemd-network",
    "systemd-resolve", "systemd-timesync", "polkitd", "avahi", "dnsmasq", "libvirt-qemu"})


@dataclasses.dataclass(frozen=True)
class HostConfig:
    name: str
    uri: str                   # "embedded" or a libvirt URI
    accelerator: str


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


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    name: str
    golden: str | None         # name of an image vdesk builds (tools/build-image.sh)
    path: str | None           # a user's own image file with its own bootloader
    boot: str                  # kernel (golden) | bios | uefi


@dataclasses.dataclass(frozen=True)
class UserConfig:
    name: str
    ssh_authorized_keys: tuple[str, ...]
    groups: tuple[str, ...]
    password: str | None = None        # a secret config key in the vdesk namespace (never the password)


@dataclasses.dataclass(frozen=True)
class ProfileConfig:
    name: str
    template: str                      # a template under templates/user-data/
    host: str
    pool: str
    network: str
    image: str
    memory_mib: int
    vcpus: int
    disk_bytes: int
    groups: tuple[str, ...]
    checks: tuple[dict, ...]           # may hold {user}, replaced per user
    running: bool
    max_vcpus: int | None = None       # vCPUs its desktops can be hot-plugged up to (None: just vcpus)
    disk_clone: str = "linked"         # linked | full (see DISK_CLONES)
    cpu_topology: tuple[int, int, int] | None = None   # sockets, cores, threads
    machine: str | None = None         # machine type (q35, pc, or a versioned name)
    autostart: bool = False            # its desktops start when the host (libvirtd) starts
    extra_networks: tuple[str, ...] = ()   # more NICs (eth1, eth2, ...), each with its own stable MAC


@dataclasses.dataclass(frozen=True)
class DesktopConfig:
    name: str
    host: str
    pool: str
    network: str
    image: str
    memory_mib: int
    vcpus: int
    disk_bytes: int
    profile: str
    users: tuple[UserConfig, ...]
    running: bool
    checks: tuple[dict, ...] = ()     # declarative guest checks (components.guest.checkspec)
    source: str = ""                  # where it is declared: "desktops.dev" or "users[0]"
    address: str | None = None        # static IPv4 in CIDR form ("10.84.0.50/24"), on a network without DHCP
    gateway: str | None = None        # that network's gateway (and DNS server), with a static address
    adopt: bool = False               # take over its domain, disk and seed if they exist (e.g. after a lost state)
    max_vcpus: int | None = None      # vCPUs it can be hot-plugged up to without a restart (None: just vcpus)
    disk_clone: str = "linked"        # linked (a clone on the image) | full (an independent copy of it)
    cpu_topology: tuple[int, int, int] | None = None   # sockets, cores, threads; product = max_vcpus or vcpus
    machine: str | None = None        # machine type (q35, pc, or a versioned name)
    autostart: bool = False           # started when the host (libvirtd) starts
    extra_networks: tuple[str, ...] = ()   # more NICs (eth1, eth2, ...), DHCP on each, stable MACs


@dataclasses.dataclass(frozen=True)
class ContainerConfig:
    """A libvirt LXC container: a system container (/sbin/init) unless `command` is given."""
    name: str
    host: str
    network: str | None
    image: str
    memory_mib: int
    vcpus: int
    command: tuple[str, ...]
    env: tuple[str, ...]
    mounts: tuple[dict, ...]
    userns: bool
    running: bool
    checks: tuple[dict, ...]


@dataclasses.dataclass(frozen=True)
class StackConfig:
    prefix: str
    hosts: dict[str, HostConfig]
    pools: dict[str, PoolConfig]
    networks: dict[str, NetworkConfig]
    images: dict[str, ImageConfig]
    desktops: dict[str, DesktopConfig]
    timeouts: dict[str, int]
    profiles: dict[str, ProfileConfig] = dataclasses.field(default_factory=dict)
    containers: dict[str, ContainerConfig] = dataclasses.field(default_factory=dict)


class _Problems:
    """Collects (path, message) pairs so every mistake is reported in one go."""

    def __init__(self):
        self.items: list[tuple[str, str]] = []
        self.password_keys: set[str] = set()    # config keys named by users' `password`

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def mapping(self, value, path) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(path, f"must be a mapping of names to settings, got {type(value).__name__}")
            return {}
        return value

    def keys(self, entry: dict, path: str, allowed: tuple[str, ...]) -> None:
        for key in entry:
            if key not in allowed:
                self.add(f"{path}.{key}", f"unknown setting (allowed: {', '.join(allowed)})")

    def name(self, name, path) -> bool:
        if not isinstance(name, str) or (message := name_problem(name)):
            self.add(path, message if isinstance(name, str) else "names must be strings")
            return False
        return True

    def choice(self, value, path, options):
        if value not in options:
            self.add(path, f"{value!r} is not one of {', '.join(options)}")

    def ref(self, value, path, known: dict, kind: str):
        if value is None:
            self.add(path, f"is required (the name of one of the {kind}s)")
        elif not isinstance(value, str):
            self.add(path, f"must be the name of a {kind}, got {type(value).__name__}")
        elif value not in known:
            listed = ", ".join(sorted(known)) or "none declared"
            self.add(path, f"unknown {kind} {value!r} (declared: {listed})")

    def integer(self, value, path, minimum=1):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.add(path, f"must be an integer >= {minimum}, got {value!r}")
            return None
        return value

    def size(self, value, path, default_unit):
        try:
            return parse_size(value, default_unit=default_unit)
        except ValueError as exc:
            self.add(path, str(exc))
            return None


def parse(raw: dict[str, Any], *, stack: str, config_keys: Mapping[str, bool] | None = None) -> StackConfig:
    """Validate the whole `vdesk:*` config; raise InputError listing every problem.

    `config_keys` maps every key set in the stack's `vdesk` namespace (without
    the `vdesk:` prefix) to whether it is a secret; users' `password` entries
    must name one that is. Unknown plain keys are reported like unknown sections.
    """
    p = _Problems()
    config_keys = dict(config_keys or {})
    for key in raw:
        if key not in SECTIONS:
            p.add(key, f"unknown section (allowed: {', '.join(SECTIONS)})")
    prefix = raw.get("prefix", stack)
    if not isinstance(prefix, str) or name_problem(prefix):
        p.add("prefix", f"{prefix!r} is not a valid name prefix")

    hosts = {}
    for name, h in p.mapping(raw.get("hosts"), "hosts").items():
        path = f"hosts.{name}"
        if not p.name(name, path) or not isinstance(h := p.mapping(h, path), dict):
            continue
        p.keys(h, path, ("uri", "accelerator"))
        uri = h.get("uri", EMBEDDED)
        if not isinstance(uri, str) or (uri != EMBEDDED and "://" not in uri):
            p.add(f"{path}.uri", f"{uri!r} must be 'embedded' or a libvirt URI such as qemu:///system")
        accel = h.get("accelerator", "auto")
        p.choice(accel, f"{path}.accelerator", ACCELERATORS)
        hosts[name] = HostConfig(name, uri, accel)
    if not hosts:
        p.add("hosts", "declare at least one host")

    pools = {}
    for name, e in p.mapping(raw.get("pools"), "pools").items():
        path = f"pools.{name}"
        if not p.name(name, path):
            continue
        e = p.mapping(e, path)
        p.keys(e, path, POOL_KEYS)
        p.ref(e.get("host"), f"{path}.host", hosts, "host")
        if e.get("path") is not None and not os.path.isabs(str(e["path"])):
            p.add(f"{path}.path", f"{e['path']!r} must be an absolute path on the host")
        adoption = _adoption(e, path, p)
        # adopt: true means vdesk's own default path; a logical pool's target is its volume group.
        if adoption["libvirt_name"] and e.get("path") is None and e.get("type", "dir") != "logical":
            p.add(f"{path}.path", "is required to adopt a pool by name: declare its directory")
        pools[name] = PoolConfig(name, e.get("host"), e.get("path"), **adoption, **_pool_source(e, path, p))

    networks = {}
    for name, e in p.mapping(raw.get("networks"), "networks").items():
        path = f"networks.{name}"
        if not p.name(name, path):
            continue
        e = p.mapping(e, path)
        p.keys(e, path, ("host", "cidr", "cidr6", "mode", "bridge", "dhcp", "dhcp_range", "domain", "dhcp_hosts",
                         "dns_hosts", "address_sources", "adopt", "keep_on_destroy"))
        bridged = e.get("mode") == "bridge"  # the LAN's DHCP server, not vdesk's: no leases to read
        dhcp_on = e.get("dhcp", not bridged) is not False
        sources = e.get("address_sources", ["lease", "agent"] if dhcp_on and not bridged else ["agent"])
        if not isinstance(sources, list) or not sources or any(x not in ADDRESS_SOURCES for x in sources):
            p.add(f"{path}.address_sources",
                  f"must be a non-empty list of {', '.join(ADDRESS_SOURCES)}, got {sources!r}")
            sources = ["lease", "agent"]
        elif "lease" in sources and bridged:
            p.add(f"{path}.address_sources", "'lease' is not available on a bridge network: the LAN's DHCP "
                                             "server keeps its leases (use agent or arp)")
        elif "lease" in sources and not dhcp_on:
            p.add(f"{path}.address_sources", "'lease' needs dhcp: true on this network")
        for key, needed in (("dhcp_hosts", ("mac", "ip")), ("dns_hosts", ("ip", "hostnames"))):
            items = e.get(key, [])
            if not isinstance(items, list):
                p.add(f"{path}.{key}", "must be a list")
                continue
            for i, item in enumerate(items):
                if not isinstance(item, dict) or any(not item.get(k) for k in needed):
                    p.add(f"{path}.{key}[{i}]", f"needs {' and '.join(needed)}")
        p.ref(e.get("host"), f"{path}.host", hosts, "host")
        cidr, mode = e.get("cidr"), e.get("mode", "nat")
        if cidr is not None or not bridged:  # a bridge network's cidr is optional: it only describes the LAN
            if not isinstance(cidr, str) or (msg := network_problem(cidr)):
                p.add(f"{path}.cidr", msg if isinstance(cidr, str) else "is required, e.g. 10.77.0.0/24")
        cidr6 = _cidr6(e, cidr, path, p)
        p.choice(mode, f"{path}.mode", NETWORK_MODES)
        bridge = _bridge_mode(e, mode, path, p)
        if not isinstance(e.get("dhcp", True), bool):
            p.add(f"{path}.dhcp", "must be true or false")
        networks[name] = NetworkConfig(name, e.get("host"), cidr, mode, e.get("dhcp", not bridged), e.get("domain"),
                                       tuple(e.get("dhcp_hosts") or ()), tuple(e.get("dns_hosts") or ()),
                                       tuple(sources), **_adoption(e, path, p), cidr6=cidr6, bridge=bridge,
                                       dhcp_range=_dhcp_range(e, path, cidr, dhcp_on, p))
    _overlaps(networks, p)

    images = {}
    for name, e in p.mapping(raw.get("images"), "images").items():
        path = f"images.{name}"
        if not p.name(name, path):
            continue
        e = p.mapping(e, path)
        p.keys(e, path, ("golden", "path", "boot"))
        golden, file_path = e.get("golden"), e.get("path")
        if bool(golden) == bool(file_path):
            p.add(path, "give exactly one of golden (an image vdesk builds) or path (your own image file)")
        if golden is not None and golden != "debian12":
            p.add(f"{path}.golden", f"{golden!r} is not an image vdesk builds (known: debian12)")
        if file_path is not None and not os.path.isfile(str(file_path)):
            p.add(f"{path}.path", f"{file_path!r} does not exist or is not a file")
        boot = e.get("boot", "kernel" if golden else "bios")
        if file_path:
            p.choice(boot, f"{path}.boot", BOOT_MODES)
        images[name] = ImageConfig(name, golden, file_path, boot)

    desktops = {}
    for name, e in p.mapping(raw.get("desktops"), "desktops").items():
        path = f"desktops.{name}"
        if not p.name(name, path):
            continue
        e = p.mapping(e, path)
        p.keys(e, path, DESKTOP_KEYS)
        host, pool, network, image = _placement(e, path, hosts, pools, networks, images, p)
        memory, vcpus, disk = _sizes(e, path, p)
        profile = e.get("profile", DEFAULT_TEMPLATE)
        _template(profile, f"{path}.profile", p)
        users = tuple(_users(e.get("users"), f"{path}.users", p, config_keys))
        running = _flag(e.get("running", True), f"{path}.running", p)
        checks = _checks(e.get("checks"), f"{path}.checks", p)
        desktops[name] = DesktopConfig(name, host, pool, network, image, memory or 0, vcpus or 1, disk or 0,
                                       profile, users, running, checks, source=path, **_static(e, path, network,
                                                                                               networks, p),
                                       adopt=_flag(e.get("adopt", False), f"{path}.adopt", p),
                                       **_machine(e, path, host, network, vcpus, networks, p))

    profiles = {}
    for name, e in p.mapping(raw.get("profiles"), "profiles").items():
        path = f"profiles.{name}"
        if not p.name(name, path):
            continue
        e = p.mapping(e, path)
        p.keys(e, path, PROFILE_KEYS)
        template = e.get("template", DEFAULT_TEMPLATE)
        _template(template, f"{path}.template", p)
        host, pool, network, image = _placement(e, path, hosts, pools, networks, images, p)
        memory, vcpus, disk = _sizes(e, path, p)
        groups = _groups(e.get("groups"), f"{path}.groups", p)
        checks = _checks(e.get("checks"), f"{path}.checks", p, user="user")
        running = _flag(e.get("running", True), f"{path}.running", p)
        profiles[name] = ProfileConfig(name, template, host, pool, network, image, memory or 0, vcpus or 1,
                                       disk or 0, groups, checks, running,
                                       **_machine(e, path, host, network, vcpus, networks, p))

    for desktop in _user_desktops(raw.get("users"), profiles, desktops, p, config_keys, networks):
        desktops[desktop.name] = desktop
    taken: dict[tuple[str, str], str] = {}
    for d in desktops.values():
        if d.address:
            key = (d.network, d.address.split("/")[0])
            if key in taken:
                p.add(f"{d.source}.address", f"{key[1]} is already the address of {taken[key]}")
            taken.setdefault(key, d.source)

    containers = {}
    for name, e in p.mapping(raw.get("containers"), "containers").items():
        path = f"containers.{name}"
        if not p.name(name, path):
            continue
        e = p.mapping(e, path)
        p.keys(e, path, CONTAINER_KEYS)
        host = e.get("host", next(iter(hosts), None))
        p.ref(host, f"{path}.host", hosts, "host")
        network = e.get("network")
        if network is not None:
            p.ref(network, f"{path}.network", networks, "network")
            if network in networks and host in hosts and networks[network].host != host:
                p.add(f"{path}.network", f"{network!r} is on host {networks[network].host!r}, not on {host!r}")
        p.ref(e.get("image"), f"{path}.image", images, "image")
        if e.get("image") in images and not images[e["image"]].golden:
            p.add(f"{path}.image", "containers take their root tree from a golden image (golden: debian12)")
        memory = _memory(e.get("memory", 256), f"{path}.memory", p)
        vcpus = p.integer(e.get("vcpus", 1), f"{path}.vcpus")
        command = e.get("command", [])
        if isinstance(command, str):
            command = [command]
        if not isinstance(command, list) or not all(isinstance(c, str) and c for c in command):
            p.add(f"{path}.command", "must be a command line as a list of strings, e.g. [/bin/sleep, infinity]")
            command = []
        env = e.get("env", {})
        if not isinstance(env, dict):
            p.add(f"{path}.env", "must be a mapping of variable names to values")
            env = {}
        mounts = e.get("mounts", [])
        if not isinstance(mounts, list) or not all(isinstance(m, dict) and m.get("source") and m.get("target")
                                                   for m in mounts):
            p.add(f"{path}.mounts", "must be a list of {source, target, readonly} (read-only by default)")
            mounts = []
        userns = _flag(e.get("userns", True), f"{path}.userns", p)
        running = _flag(e.get("running", True), f"{path}.running", p)
        checks = _checks(e.get("checks"), f"{path}.checks", p)
        containers[name] = ContainerConfig(name, host, network, e.get("image"), memory or 0, vcpus or 1,
                                           tuple(command), tuple(f"{k}={v}" for k, v in env.items()),
                                           tuple(mounts), userns, running, checks)

    timeouts = dict(DEFAULT_TIMEOUTS)
    for key, value in p.mapping(raw.get("timeouts"), "timeouts").items():
        if key not in DEFAULT_TIMEOUTS:
            p.add(f"timeouts.{key}", f"unknown timeout (allowed: {', '.join(DEFAULT_TIMEOUTS)})")
        elif p.integer(value, f"timeouts.{key}") is not None:
            timeouts[key] = value

    # A plain `vdesk:` key that is neither a section nor a user's password is a typo (secrets may wait
    # for the user who will name them).
    for key, secret in config_keys.items():
        if not secret and key not in SECTIONS and key not in raw and key not in p.password_keys:
            p.add(key, f"unknown section (allowed: {', '.join(SECTIONS)})")

    if p.items:
        raise InputError(p.items)
    return StackConfig(prefix, hosts, pools, networks, images, desktops, timeouts, profiles, containers)


def _extra_networks(e: dict, path: str, host, network, networks: dict, p: _Problems) -> tuple[str, ...]:
    """Networks for eth1, eth2, ...: known, on the desktop's host, each once, not the main network, with DHCP."""
    value = e.get("extra_networks", [])
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        p.add(f"{path}.extra_networks", "must be a list of network names")
        return ()
    for i, name in enumerate(value):
        where = f"{path}.extra_networks[{i}]"
        p.ref(name, where, networks, "network")
        if name not in networks:
            continue
        if name == network or name in value[:i]:
            p.add(where, f"{name!r} is already a NIC of this desktop: one NIC per network")
        elif networks[name].host != host:
            p.add(where, f"{name!r} is on host {networks[name].host!r}, not on {host!r}")
        elif not networks[name].dhcp:
            p.add(where, f"{name!r} has no DHCP: extra NICs take their address by DHCP")
    return tuple(value)


def _placement(e: dict, path: str, hosts, pools, networks, images, p: _Problems):
    """host, pool, network and image of a desktop or profile; the pool and network must be on the host."""
    host = e.get("host", next(iter(hosts), None))
    p.ref(host, f"{path}.host", hosts, "host")
    for key, known in (("pool", pools), ("network", networks), ("image", images)):
        p.ref(e.get(key), f"{path}.{key}", known, key)
    for key, known in (("pool", pools), ("network", networks)):
        ref = known.get(e.get(key)) if isinstance(e.get(key), str) else None
        if ref is not None and host in hosts and ref.host != host:
            p.add(f"{path}.{key}", f"{e.get(key)!r} is on host {ref.host!r}, not on {host!r}")
    return host, e.get("pool"), e.get("network"), e.get("image")


def _sizes(e: dict, path: str, p: _Problems):
    """memory (MiB), vcpus and disk (bytes) with their defaults; None where invalid."""
    memory = _memory(e.get("memory", 1024), f"{path}.memory", p)
    vcpus = p.integer(e.get("vcpus", 1), f"{path}.vcpus")
    disk = p.size(e.get("disk", "8GiB"), f"{path}.disk", "GiB")
    return memory, vcpus, disk


_MACHINE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def _machine(e: dict, path: str, host, network, vcpus: int | None, networks: dict, p: _Problems) -> dict:
    """The VM settings a desktop and a profile declare alike: vCPU room, disk clone, CPU, NICs, autostart."""
    max_vcpus = _max_vcpus(e, path, vcpus, p)
    return {"max_vcpus": max_vcpus,
            "disk_clone": _disk_clone(e.get("disk_clone", "linked"), f"{path}.disk_clone", p),
            **_cpu_and_machine(e, path, max_vcpus or vcpus, p),
            "autostart": _flag(e.get("autostart", False), f"{path}.autostart", p),
            "extra_networks": _extra_networks(e, path, host, network, networks, p)}


def _cpu_and_machine(e: dict, path: str, vcpu_max: int | None, p: _Problems) -> dict:
    """cpu_topology ({sockets, cores, threads}, whose product must be the vCPU maximum) and machine type."""
    result = {}
    machine = e.get("machine")
    if machine is not None:
        if not isinstance(machine, str) or not _MACHINE.match(machine):
            p.add(f"{path}.machine", f"{machine!r} is not a machine type (e.g. q35, pc or pc-q35-7.2)")
        else:
            result["machine"] = machine
    topology = e.get("cpu_topology")
    if topology is None:
        return result
    keys = ("sockets", "cores", "threads")
    if not isinstance(topology, dict) or set(topology) != set(keys) or not all(
            isinstance(topology[k], int) and not isinstance(topology[k], bool) and topology[k] >= 1 for k in keys):
        p.add(f"{path}.cpu_topology", "must be {sockets, cores, threads}, each an integer >= 1")
        return result
    product = topology["sockets"] * topology["cores"] * topology["threads"]
    if vcpu_max is not None and product != vcpu_max:
        p.add(f"{path}.cpu_topology", f"sockets x cores x threads is {product}, but the vCPU maximum "
                                      f"(max_vcpus, else vcpus) is {vcpu_max}")
    result["cpu_topology"] = tuple(topology[k] for k in keys)
    return result


def _max_vcpus(e: dict, path: str, vcpus: int | None, p: _Problems) -> int | None:
    """Room to hot-plug vCPUs without a restart; unset (None) means none beyond vcpus."""
    if "max_vcpus" not in e:
        return None
    value = p.integer(e["max_vcpus"], f"{path}.max_vcpus")
    if value is not None and vcpus is not None and value < vcpus:
        p.add(f"{path}.max_vcpus", f"must be >= vcpus ({vcpus})")
        return None
    return value


def _user_max_vcpus(u: dict, path: str, profile: "ProfileConfig | None", vcpus: int | None,
                    p: _Problems) -> int | None:
    """A user's max_vcpus (own or the profile's), checked against the user's vcpus (own or the profile's)."""
    if "vcpus" not in u and profile is not None:
        vcpus = profile.vcpus             # (an invalid own vcpus is None: already reported, nothing to compare)
    if "max_vcpus" in u:
        return _max_vcpus(u, path, vcpus, p)
    inherited = profile.max_vcpus if profile is not None else None
    if inherited is not None and vcpus is not None and inherited < vcpus:
        p.add(f"{path}.vcpus", f"must be <= max_vcpus ({inherited}) of profile {profile.name!r}, "
                               f"or set {path}.max_vcpus too")
        return None
    return inherited


def _disk_clone(value, path: str, p: _Problems) -> str:
    """How a desktop's disk is made from its image: `linked` (a qcow2 clone backed by the image) or
    `full` (an independent copy; the image may then go)."""
    if value not in DISK_CLONES:
        p.add(path, f"{value!r} is not one of {', '.join(DISK_CLONES)}")
        return "linked"
    return value


def _pool_source(e: dict, path: str, p: _Problems) -> dict:
    """A pool's type and where its storage comes from: a directory (dir), an LVM volume group built on
    source_devices or pre-made as source_name (logical), or source_host:source_dir mounted at path (netfs)."""
    from ..resources.pool import NETFS_FORMATS, POOL_TYPES, SOURCE_PROPS, host_problem, vg_name_problem
    kind = e.get("type", "dir")
    if kind not in POOL_TYPES:
        p.add(f"{path}.type", f"{kind!r} is not one of {', '.join(POOL_TYPES)}")
        return {}
    for key, owner in SOURCE_PROPS.items():
        if key in e and owner != kind:
            p.add(f"{path}.{key}", f"only for {owner} pools (this pool's type is {kind})")
    source: dict[str, Any] = {"type": kind}
    if kind == "logical":
        if e.get("path") is not None:
            p.add(f"{path}.path", "a logical pool's target is /dev/<source_name>: leave path unset")
        devices, vg = e.get("source_devices"), e.get("source_name")
        if devices is None and vg is None:
            p.add(path, "a logical pool needs source_devices (block devices vdesk builds a volume group on) "
                        "or source_name (an existing volume group), or both")
        if devices is not None and (not isinstance(devices, list) or not devices):
            p.add(f"{path}.source_devices", "must be a non-empty list of block device paths, e.g. [/dev/sdb]")
        elif devices is not None:
            for i, device in enumerate(devices):
                if not isinstance(device, str) or not os.path.isabs(device) or os.path.normpath(device) != device:
                    p.add(f"{path}.source_devices[{i}]", f"{device!r} must be an absolute block device path, "
                                                         "e.g. /dev/sdb")
                elif device in devices[:i]:
                    p.add(f"{path}.source_devices[{i}]", f"{device!r} is listed twice")
            source["source_devices"] = tuple(devices)
        if vg is not None:
            if not isinstance(vg, str) or (message := vg_name_problem(vg)):
                p.add(f"{path}.source_name", message if isinstance(vg, str) else "must be a volume group name")
            source["source_name"] = vg
    elif kind == "netfs":
        fmt = e.get("source_format", "auto")
        p.choice(fmt, f"{path}.source_format", NETFS_FORMATS)
        server, export = e.get("source_host"), e.get("source_dir")
        if server is None:
            p.add(f"{path}.source_host", "is required for a netfs pool (the file server)")
        elif not isinstance(server, str) or (message := host_problem(server)):
            p.add(f"{path}.source_host", message if isinstance(server, str) else "must be a host name or address")
        if export is None:
            p.add(f"{path}.source_dir", "is required for a netfs pool (the exported directory, or a cifs share)")
        elif not isinstance(export, str):
            p.add(f"{path}.source_dir", "must be a path (or, for cifs, a share name)")
        elif fmt == "cifs" and (not export or export.startswith("/")):
            p.add(f"{path}.source_dir", f"{export!r}: a cifs share is named without a leading '/', e.g. desktops")
        elif fmt != "cifs" and not os.path.isabs(export):
            p.add(f"{path}.source_dir", f"{export!r} must be the absolute exported path, e.g. /srv/desktops")
        source.update(source_host=server, source_dir=export, source_format=fmt)
    return source


def _memory(value, path: str, p: _Problems) -> int | None:
    memory = p.size(value, path, "MiB")
    if memory is not None and memory < MIN_MEMORY:
        p.add(path, "must be at least 256MiB")
        return None
    return None if memory is None else memory // 1024**2


def _template(value, path: str, p: _Problems) -> None:
    from ..cloudinit import available_profiles
    available = available_profiles()
    if value not in available:
        p.add(path, f"unknown template {value!r} (available: {', '.join(available)})")


def _flag(value, path: str, p: _Problems) -> bool:
    if not isinstance(value, bool):
        p.add(path, "must be true or false")
        return True
    return value


def _groups(value, path: str, p: _Problems) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        p.add(path, "must be a list of group names")
        return ()
    groups = []
    for i, group in enumerate(value):
        if not isinstance(group, str) or not _GROUP.match(group):
            p.add(f"{path}[{i}]", f"{group!r} is not a valid group name: use lowercase letters, digits, '-' "
                                  "and '_', starting with a letter or '_'")
        elif group not in groups:
            groups.append(group)
    return tuple(groups)


def for_user(value, user: str):
    """A profile's checks for one user: every `{user}` in their strings becomes the user's name."""
    if isinstance(value, str):
        return value.replace(USER_PLACEHOLDER, user)
    if isinstance(value, list):
        return [for_user(v, user) for v in value]
    if isinstance(value, dict):
        return {k: for_user(v, user) for k, v in value.items()}
    return value


def _checks(raw, path: str, p: _Problems, *, user: str | None = None) -> tuple[dict, ...]:
    """Validate a list of checks (with `{user}` replaced by `user`, if given); return them as declared."""
    try:
        parse_checks(for_user(raw, user) if user else raw, path)
    except CheckSpecError as exc:
        p.items.extend(exc.problems)
        return ()
    return tuple(raw or ())


def _password(value, path: str, p: _Problems, config_keys: Mapping[str, bool]) -> str | None:
    """The name of the secret config key that holds a user's password.

    The value is never echoed: a plaintext password written here by mistake
    must not end up in a preview log.
    """
    if value is None:
        return None
    how = "store the password with `pulumi config set --secret vdesk:<key>` and write that <key> here"
    if not isinstance(value, str) or not _CONFIG_KEY.match(value) or value in SECTIONS:
        p.add(path, f"must name a secret vdesk config key, e.g. alice-password (value not shown): {how}")
        return None
    p.password_keys.add(value)
    if value not in config_keys:
        p.add(path, f"names a vdesk config key that is not set (value not shown, in case it is a password): {how}")
        return None
    if not config_keys[value]:
        p.add(path, f"vdesk:{value} is stored in plain text: set it again with "
                    f"`pulumi config set --secret vdesk:{value}`")
        return None
    return value


def _login(name, path: str, p: _Problems, *, names_desktop: bool = False) -> bool:
    if name is None:
        p.add(path, "is required")
        return False
    if not isinstance(name, str) or not _LOGIN.match(name):
        p.add(path, f"{name!r} is not a usable login name: use lowercase letters, digits, '-' and '_', starting "
                    "with a letter or '_', at most 32 characters")
        return False
    if name in RESERVED_LOGINS:
        p.add(path, f"{name!r} is not a usable login name: it is a system account")
        return False
    if names_desktop and name_problem(name):
        p.add(path, f"{name!r} is not a usable user name: it also names the user's desktop, so use lowercase "
                    "letters, digits and '-', starting with a letter and not ending with '-'")
        return False
    return True


def _ssh_keys(value, path: str, p: _Problems) -> tuple[str, ...]:
    """OpenSSH public keys; a bad entry is not echoed (it might be a private key pasted by mistake)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        p.add(path, "must be a list of OpenSSH public keys ('ssh-ed25519 AAAA... comment')")
        return ()
    keys = []
    for i, key in enumerate(value):
        if not isinstance(key, str) or "\n" in key.strip() or not _PUBLIC_KEY.search(key):
            p.add(f"{path}[{i}]", "is not an OpenSSH public key ('ssh-ed25519 AAAA... comment'); value not shown")
        else:
            keys.append(key.strip())
    return tuple(keys)


def _users(raw, path, p: _Problems, config_keys: Mapping[str, bool]):
    """The accounts of a desktop declared under `desktops` (the first one is the one vdesk logs in as)."""
    if raw is None:
        return [UserConfig("desk", (), ())]
    if not isinstance(raw, list) or not raw:
        p.add(path, "must be a non-empty list of users")
        return []
    users, seen = [], {}
    for i, u in enumerate(raw):
        upath = f"{path}[{i}]"
        if not isinstance(u, dict):
            p.add(upath, "must be a mapping with at least a name")
            continue
        p.keys(u, upath, DESKTOP_USER_KEYS)
        name = u.get("name")
        if not _login(name, f"{upath}.name", p):
            continue
        if name in seen:
            p.add(f"{upath}.name", f"duplicates {path}[{seen[name]}].name ({name!r})")
            continue
        seen[name] = i
        users.append(UserConfig(name, _ssh_keys(u.get("ssh_authorized_keys"), f"{upath}.ssh_authorized_keys", p),
                                _groups(u.get("groups"), f"{upath}.groups", p),
                                _password(u.get("password"), f"{upath}.password", p, config_keys)))
    return users


def _static(entry: dict, path: str, network: str | None, networks: dict, p: _Problems) -> dict:
    """A static guest address: inside its network, not the gateway, on a network without DHCP.

    (On a DHCP network, a fixed address is a `dhcp_hosts` reservation instead.)
    """
    value = entry.get("address")
    if value is None or network not in networks:
        return {}
    net = networks[network]
    if net.cidr is None:
        p.add(f"{path}.address", f"network {network!r} declares no cidr: give networks.{network}.cidr (its LAN) "
                                 "to place a static address on it")
        return {}
    try:
        ip = ipaddress.ip_address(value)
        cidr = ipaddress.ip_network(net.cidr)
    except (TypeError, ValueError):
        p.add(f"{path}.address", f"{value!r} is not an IP address")
        return {}
    gateway = next(cidr.hosts())
    if ip.version != 4 or ip not in cidr or ip in (cidr.network_address, cidr.broadcast_address, gateway):
        p.add(f"{path}.address", f"{value} is not a usable IPv4 host address of network {network!r} "
                                 f"({net.cidr}; {gateway} is its gateway)")
        return {}
    if net.dhcp is not False:
        p.add(f"{path}.address", f"network {network!r} hands out addresses by DHCP: reserve this one with "
                                 f"networks.{network}.dhcp_hosts, or set dhcp: false there")
        return {}
    return {"address": f"{ip}/{cidr.prefixlen}", "gateway": str(gateway)}


def _user_desktops(raw, profiles: dict[str, ProfileConfig], desktops: dict[str, DesktopConfig], p: _Problems,
                   config_keys: Mapping[str, bool], networks: dict | None = None) -> list[DesktopConfig]:
    """One desktop per entry of `users`, named after the user: the profile's settings and the user's overrides."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        p.add("users", f"must be a list of users, got {type(raw).__name__}")
        return []
    result, seen = [], {}
    for i, u in enumerate(raw):
        path = f"users[{i}]"
        if not isinstance(u, dict):
            p.add(path, "must be a mapping with at least a name and a profile")
            continue
        p.keys(u, path, USER_KEYS)
        name = u.get("name")
        usable = _login(name, f"{path}.name", p, names_desktop=True)
        if usable and name in seen:
            p.add(f"{path}.name", f"duplicates users[{seen[name]}].name ({name!r})")
            usable = False
        elif usable and name in desktops:
            p.add(f"{path}.name", f"{name!r} is also declared as desktops.{name}; each user's desktop is named "
                                  "after the user")
            usable = False
        if usable:
            seen[name] = i
        p.ref(u.get("profile"), f"{path}.profile", profiles, "profile")
        profile = profiles.get(u.get("profile")) if isinstance(u.get("profile"), str) else None
        keys = _ssh_keys(u.get("ssh_authorized_keys"), f"{path}.ssh_authorized_keys", p)
        password = _password(u.get("password"), f"{path}.password", p, config_keys)
        memory = _memory(u["memory"], f"{path}.memory", p) if "memory" in u else None
        vcpus = p.integer(u["vcpus"], f"{path}.vcpus") if "vcpus" in u else None
        max_vcpus = _user_max_vcpus(u, path, profile, vcpus, p)
        if profile is not None and profile.cpu_topology and (vcpus is not None or "max_vcpus" in u):
            product = profile.cpu_topology[0] * profile.cpu_topology[1] * profile.cpu_topology[2]
            if product != (max_vcpus or vcpus or profile.vcpus):
                p.add(f"{path}.vcpus", f"profile {profile.name!r} has cpu_topology for {product} vCPUs; "
                                       "a user cannot change the vCPU maximum of a fixed topology")
        disk = p.size(u["disk"], f"{path}.disk", "GiB") if "disk" in u else None
        disk_clone = _disk_clone(u["disk_clone"], f"{path}.disk_clone", p) if "disk_clone" in u else None
        groups = _groups(u.get("groups"), f"{path}.groups", p) if "groups" in u else None
        user = name if usable else "user"
        checks = _checks(u.get("checks"), f"{path}.checks", p, user=user) if "checks" in u else None
        running = _flag(u.get("running"), f"{path}.running", p) if "running" in u else None
        autostart = _flag(u.get("autostart"), f"{path}.autostart", p) if "autostart" in u else None
        adopt = _flag(u.get("adopt", False), f"{path}.adopt", p)
        if not usable or profile is None:
            continue
        result.append(DesktopConfig(
            name, profile.host, profile.pool, profile.network, profile.image,
            profile.memory_mib if memory is None else memory,
            profile.vcpus if vcpus is None else vcpus,
            profile.disk_bytes if disk is None else disk,
            profile.template,
            (UserConfig(name, keys, profile.groups if groups is None else groups, password),),
            profile.running if running is None else running,
            tuple(for_user(list(profile.checks if checks is None else checks), name)),
            source=path, **_static(u, path, profile.network, networks or {}, p), adopt=adopt, max_vcpus=max_vcpus,
            disk_clone=profile.disk_clone if disk_clone is None else disk_clone,
            cpu_topology=profile.cpu_topology, machine=profile.machine,
            autostart=profile.autostart if autostart is None else autostart,
            extra_networks=profile.extra_networks))
    return result


def _dhcp_range(e: dict, path: str, cidr, dhcp_on: bool, p: _Problems) -> dict | None:
    """A narrower DHCP pool, e.g. to leave room for static addresses; inside cidr, not the gateway."""
    value = e.get("dhcp_range")
    if value is None:
        return None
    try:
        start, end = (ipaddress.ip_address(value[k]) for k in ("start", "end"))
    except (KeyError, TypeError, ValueError):
        p.add(f"{path}.dhcp_range", "must be {start, end}, two IPv4 addresses")
        return None
    if not dhcp_on:
        p.add(f"{path}.dhcp_range", "needs dhcp: true")
        return None
    try:
        net = ipaddress.ip_network(cidr)
    except (TypeError, ValueError):
        return None  # cidr's own problem is reported already
    gateway = next(net.hosts())
    for key, address in (("start", start), ("end", end)):
        if address.version != 4 or address not in net or address in (net.network_address, net.broadcast_address,
                                                                      gateway):
            p.add(f"{path}.dhcp_range.{key}", f"{address} is not a host address of {cidr} other than the "
                                              f"gateway {gateway}")
            return None
    if start > end:
        p.add(f"{path}.dhcp_range", f"start {start} is after end {end}")
        return None
    return {"start": str(start), "end": str(end)}


def _adoption(e: dict, path: str, p: _Problems) -> dict:
    """`adopt: true` takes over <prefix>-<name>; `adopt: <name>` an object of another name (e.g. 'default')."""
    adopt, name = e.get("adopt", False), None
    if isinstance(adopt, str):
        if message := name_problem(adopt):
            p.add(f"{path}.adopt", message)
        adopt, name = True, adopt
    elif not isinstance(adopt, bool):
        p.add(f"{path}.adopt", f"must be true, false or the name of the existing object, got {adopt!r}")
        adopt = False
    keep = _flag(e.get("keep_on_destroy", False), f"{path}.keep_on_destroy", p)
    return {"adopt": adopt, "libvirt_name": name, "keep_on_destroy": keep}


def _overlaps(networks: dict[str, NetworkConfig], p: _Problems) -> None:
    """cidr and cidr6 of each network against those before it on the same host (a bridge network's LAN too)."""
    seen: list[tuple[str, str, ipaddress._BaseNetwork]] = []
    for net in networks.values():
        for key in ("cidr", "cidr6"):
            value = getattr(net, key)
            if value is None:  # a bridge network without cidr: nothing to compare
                continue
            try:
                cidr = ipaddress.ip_network(value)
            except (TypeError, ValueError):
                continue
            for other_name, other_host, other in seen:
                if other_host == net.host and other.version == cidr.version and other.overlaps(cidr) \
                        and other_name != net.name:
                    p.add(f"networks.{net.name}.{key}", f"{value} overlaps networks.{other_name} ({other}) "
                                                        f"on host {net.host!r}")
            seen.append((net.name, net.host, cidr))


def _cidr6(e: dict, cidr, path: str, p: _Problems) -> str | None:
    """The IPv6 half of a dual-stack network: an IPv6 prefix beside the IPv4 cidr."""
    value = e.get("cidr6")
    if value is None:
        return None
    if not isinstance(value, str) or (msg := network_problem(value)):
        p.add(f"{path}.cidr6", msg if isinstance(value, str) else "must be an IPv6 prefix, e.g. fd00:77::/64")
        return None
    net = ipaddress.ip_network(value)
    if net.version != 6:
        p.add(f"{path}.cidr6", f"{value!r} is not an IPv6 prefix (cidr6 is the IPv6 half of a dual-stack network)")
        return None
    if net.prefixlen > 125:
        p.add(f"{path}.cidr6", f"{value!r} is too small for a DHCP network (use /125 or larger)")
        return None
    if isinstance(cidr, str) and not network_problem(cidr) and ipaddress.ip_network(cidr).version != 4:
        p.add(f"{path}.cidr", f"{cidr!r} must be IPv4 when cidr6 gives the IPv6 prefix")
    return value


# What a bridge network cannot have: the LAN, not vdesk, runs its DHCP and DNS.
_NOT_ON_A_BRIDGE = {
    "dhcp_hosts": "a bridge network has no DHCP of vdesk's: reserve addresses on the LAN's DHCP server",
    "dns_hosts": "a bridge network has no DNS of vdesk's: add records on the LAN's DNS server",
    "domain": "a bridge network has no DNS of vdesk's: the LAN's DNS server serves its domain",
}


def _bridge_mode(e: dict, mode, path: str, p: _Problems) -> str | None:
    """mode: bridge attaches to an existing host bridge, named by `bridge`; other modes make their own."""
    bridge = e.get("bridge")
    if mode != "bridge":
        if bridge is not None:
            p.add(f"{path}.bridge", "is only for mode: bridge (the existing host bridge to attach to); "
                                    "other modes get a bridge of their own")
        return None
    if bridge is None:
        p.add(f"{path}.bridge", "is required with mode: bridge: the name of an existing bridge on the host, e.g. br0")
    elif not isinstance(bridge, str) or not 0 < len(bridge) <= 15 \
            or any(c.isspace() or c in "/:" for c in bridge):
        p.add(f"{path}.bridge", f"{bridge!r} is not a Linux interface name (1-15 characters, no spaces, '/' or ':')")
        bridge = None
    if e.get("dhcp") is True:
        p.add(f"{path}.dhcp", "a bridge network's addresses come from the LAN, not from vdesk: remove dhcp")
    for key, why in _NOT_ON_A_BRIDGE.items():
        if e.get(key):
            p.add(f"{path}.{key}", why)
    return bridge
