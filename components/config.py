"""Stack configuration: parsed and validated as a whole before any resource is declared.

Every problem is reported at once with its config path (e.g.
`desktops.alice.memory`), so a bad stack file fails `pulumi preview` and
creates nothing.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
from typing import Any

from .errors import InputError
from .guest.checkspec import CheckSpecError, parse_checks
from .names import name_problem, network_problem, parse_size

ACCELERATORS = ("kvm", "tcg", "auto")
EMBEDDED = "embedded"
SECTIONS = ("hosts", "pools", "networks", "images", "desktops", "timeouts", "prefix")
NETWORK_MODES = ("nat", "isolated", "route", "open")
BOOT_MODES = ("bios", "uefi")
DEFAULT_TIMEOUTS = {"address": 600, "ssh": 300, "cloud_init": 900, "shutdown": 60}


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


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    name: str
    host: str
    cidr: str
    mode: str
    dhcp: bool
    domain: str | None
    dhcp_hosts: tuple[dict, ...] = ()  # static leases {mac, ip, name}: updated live
    dns_hosts: tuple[dict, ...] = ()   # DNS records {ip, hostnames}: updated live


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


@dataclasses.dataclass(frozen=True)
class StackConfig:
    prefix: str
    hosts: dict[str, HostConfig]
    pools: dict[str, PoolConfig]
    networks: dict[str, NetworkConfig]
    images: dict[str, ImageConfig]
    desktops: dict[str, DesktopConfig]
    timeouts: dict[str, int]


class _Problems:
    """Collects (path, message) pairs so every mistake is reported in one go."""

    def __init__(self):
        self.items: list[tuple[str, str]] = []

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


def parse(raw: dict[str, Any], *, stack: str) -> StackConfig:
    """Validate the whole `vdesk:*` config; raise InputError listing every problem."""
    p = _Problems()
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
        p.keys(e, path, ("host", "path"))
        p.ref(e.get("host"), f"{path}.host", hosts, "host")
        if e.get("path") is not None and not os.path.isabs(str(e["path"])):
            p.add(f"{path}.path", f"{e['path']!r} must be an absolute path on the host")
        pools[name] = PoolConfig(name, e.get("host"), e.get("path"))

    networks = {}
    for name, e in p.mapping(raw.get("networks"), "networks").items():
        path = f"networks.{name}"
        if not p.name(name, path):
            continue
        e = p.mapping(e, path)
        p.keys(e, path, ("host", "cidr", "mode", "dhcp", "domain", "dhcp_hosts", "dns_hosts"))
        for key, needed in (("dhcp_hosts", ("mac", "ip")), ("dns_hosts", ("ip", "hostnames"))):
            items = e.get(key, [])
            if not isinstance(items, list):
                p.add(f"{path}.{key}", "must be a list")
                continue
            for i, item in enumerate(items):
                if not isinstance(item, dict) or any(not item.get(k) for k in needed):
                    p.add(f"{path}.{key}[{i}]", f"needs {' and '.join(needed)}")
        p.ref(e.get("host"), f"{path}.host", hosts, "host")
        cidr = e.get("cidr")
        if not isinstance(cidr, str) or (msg := network_problem(cidr)):
            p.add(f"{path}.cidr", msg if isinstance(cidr, str) else "is required, e.g. 10.77.0.0/24")
        mode = e.get("mode", "nat")
        p.choice(mode, f"{path}.mode", NETWORK_MODES)
        if not isinstance(e.get("dhcp", True), bool):
            p.add(f"{path}.dhcp", "must be true or false")
        networks[name] = NetworkConfig(name, e.get("host"), cidr, mode, e.get("dhcp", True), e.get("domain"),
                                       tuple(e.get("dhcp_hosts") or ()), tuple(e.get("dns_hosts") or ()))
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
        p.keys(e, path, ("host", "pool", "network", "image", "memory", "vcpus", "disk", "profile", "users",
                         "running", "checks"))
        host = e.get("host", next(iter(hosts), None))
        p.ref(host, f"{path}.host", hosts, "host")
        for key, known, kind in (("pool", pools, "pool"), ("network", networks, "network"),
                                 ("image", images, "image")):
            p.ref(e.get(key), f"{path}.{key}", known, kind)
        for key, known in (("pool", pools), ("network", networks)):
            ref = known.get(e.get(key))
            if ref is not None and host in hosts and ref.host != host:
                p.add(f"{path}.{key}", f"{e.get(key)!r} is on host {ref.host!r}, not on {host!r}")
        memory = p.size(e.get("memory", 1024), f"{path}.memory", "MiB")
        if memory is not None and memory < 256 * 1024**2:
            p.add(f"{path}.memory", "must be at least 256MiB")
        vcpus = p.integer(e.get("vcpus", 1), f"{path}.vcpus")
        disk = p.size(e.get("disk", "8GiB"), f"{path}.disk", "GiB")
        profile = e.get("profile", "desktop")
        users = tuple(_users(e.get("users"), f"{path}.users", p))
        running = e.get("running", True)
        if not isinstance(running, bool):
            p.add(f"{path}.running", "must be true or false")
        try:
            parse_checks(e.get("checks"), f"{path}.checks")
        except CheckSpecError as exc:
            p.items.extend(exc.problems)
        desktops[name] = DesktopConfig(name, host, e.get("pool"), e.get("network"), e.get("image"),
                                       (memory or 0) // 1024**2, vcpus or 1, disk or 0, profile, users, running,
                                       tuple(e.get("checks") or ()))

    timeouts = dict(DEFAULT_TIMEOUTS)
    for key, value in p.mapping(raw.get("timeouts"), "timeouts").items():
        if key not in DEFAULT_TIMEOUTS:
            p.add(f"timeouts.{key}", f"unknown timeout (allowed: {', '.join(DEFAULT_TIMEOUTS)})")
        elif p.integer(value, f"timeouts.{key}") is not None:
            timeouts[key] = value

    if p.items:
        raise InputError(p.items)
    return StackConfig(prefix, hosts, pools, networks, images, desktops, timeouts)


def _users(raw, path, p: _Problems):
    if raw is None:
        return [UserConfig("desk", (), ())]
    if not isinstance(raw, list) or not raw:
        p.add(path, "must be a non-empty list of users")
        return []
    users = []
    for i, u in enumerate(raw):
        upath = f"{path}[{i}]"
        if not isinstance(u, dict):
            p.add(upath, "must be a mapping with at least a name")
            continue
        p.keys(u, upath, ("name", "ssh_authorized_keys", "groups"))
        name = u.get("name")
        if not isinstance(name, str) or not name or not name.replace("-", "").replace("_", "").isalnum() \
                or name[0].isdigit() or name in ("root",):
            p.add(f"{upath}.name", f"{name!r} is not a usable login name")
            continue
        keys = u.get("ssh_authorized_keys", [])
        if not isinstance(keys, list) or not all(isinstance(k, str) and k.startswith("ssh-") for k in keys):
            p.add(f"{upath}.ssh_authorized_keys", "must be a list of OpenSSH public keys ('ssh-ed25519 AAAA...')")
            keys = []
        groups = u.get("groups", [])
        if not isinstance(groups, list):
            p.add(f"{upath}.groups", "must be a list of group names")
            groups = []
        users.append(UserConfig(name, tuple(keys), tuple(groups)))
    return users


def _overlaps(networks: dict[str, NetworkConfig], p: _Problems) -> None:
    seen: list[tuple[str, str, ipaddress._BaseNetwork]] = []
    for net in networks.values():
        try:
            cidr = ipaddress.ip_network(net.cidr)
        except (TypeError, ValueError):
            continue
        for other_name, other_host, other in seen:
            if other_host == net.host and other.version == cidr.version and other.overlaps(cidr):
                p.add(f"networks.{net.name}.cidr", f"{net.cidr} overlaps networks.{other_name} ({other}) "
                                                   f"on host {net.host!r}")
        seen.append((net.name, net.host, cidr))
