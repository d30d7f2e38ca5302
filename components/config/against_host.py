"""Values judged against what preview finds: the image a disk is made from, the network an address is on,
this machine (the console's address and certificate, a pool's directory and devices), the host's qemu and
its other networks, and what qemu takes in a share's tag (a container's environment names and mount targets
are its settings' kinds: components.kinds).

Each of these passed preview before and failed at `up` (libvirt refusing a
reservation, a volume smaller than its backing image) or later in the guest.
Problems are (path, message) pairs, like the rest of the stack's.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import ssl
import stat
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import VdeskError
from ..resources.volume import file_virtual_size

log = logging.getLogger(__name__)

Loc = tuple[str | int, ...]
GiB, MiB = 1024**3, 1024**2
MIN_HOME_BYTES = MiB    # mkfs.ext4 refuses a filesystem much smaller (under 128 KiB); a home needs room anyway
_BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "build-image.sh"


def written_problems(file) -> list[tuple[Loc, str]]:
    """What the written stack asks of this machine (its console), its networks and shares."""
    return [*network_problems(file), *console_problems(file), *share_problems(file)]


# --- what qemu refuses in a share's tag -------------------------------------------------------------------

VIRTIOFS_TAG_BYTES = 36    # the tag field of virtio-fs's config space: qemu refuses a longer one at start


def share_problems(file) -> list[tuple[Loc, str]]:
    """A share's name is its virtio-fs tag in the guest."""
    return [(("shares", name), f"{name!r} is {len(name)} characters: a share's name is its virtio-fs tag, which "
                               f"holds at most {VIRTIOFS_TAG_BYTES}")
            for name in (file.shares or {}) if len(name.encode()) > VIRTIOFS_TAG_BYTES]


# --- this machine: the console's address and certificate ------------------------------------------------

def console_problems(file) -> list[tuple[Loc, str]]:
    """The host's gateway (its settings are the policy's) must be able to listen on `bind` here, and to load its
    certificate (and key); said at each embedded host's console field, naming the policy key."""
    from ..host import policy as host_policy
    policy = host_policy.load()
    console = policy.console
    found = []
    for name, host in (file.hosts or {}).items():
        if host is None or host.uri != "embedded":
            continue
        loc = ("hosts", name, "console")
        where = f" (the host's `console.{{}}` in {policy.source})"
        if console.bind and (why := _cannot_listen(console.bind)):
            found.append(((*loc, "bind"), f"the console cannot listen on {console.bind} here: {why}"
                                          + where.format("bind")))
        files = [f for f in (console.tls_cert, console.tls_key) if f]
        missing = [f for f in files if not os.path.isfile(f)]
        for field in ("tls_cert", "tls_key"):
            if getattr(console, field) in missing:
                found.append(((*loc, field), f"{getattr(console, field)} is not a file" + where.format(field)))
        if console.tls_cert and not missing:
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(console.tls_cert,
                                                                                 console.tls_key)
            except (ssl.SSLError, OSError) as exc:
                which = "tls_cert" if console.tls_key is None else "tls_key"
                found.append(((*loc, which), "is not a PEM certificate with its private key (the certificate "
                                             f"file, or tls_key, must hold the key): {exc.strerror or exc}"
                                             + where.format(which)))
    return found


def _cannot_listen(address: str) -> str | None:
    """Why nothing can listen on `address` on this machine (a throw-away bind to port 0; nothing stays)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None                     # not an address: said by its own check
    try:
        with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
    except OSError as exc:
        return f"{exc.strerror} (it is not an address of this machine)"
    return None


# --- networks: reservations inside the network they reserve on -------------------------------------------

def network_problems(file) -> list[tuple[Loc, str]]:
    """Each DHCP reservation of a (written) network: an address of its IPv4 cidr that DHCP may hand out,
    on a network with DHCP, each MAC and address once."""
    found = []
    for name, net in (file.networks or {}).items():
        if net is None or not net.dhcp_hosts or net.mode == "bridge":    # (a bridge: said by resolve.py)
            continue
        loc = ("networks", name, "dhcp_hosts")
        if net.dhcp is False:
            found.append((loc, "needs dhcp: true (a reservation is what this network's DHCP hands out)"))
            continue
        cidr = ipaddress.ip_network(net.cidr) if net.cidr else None
        macs: dict[str, int] = {}
        ips: dict[str, int] = {}
        for i, host in enumerate(net.dhcp_hosts):
            if host is None:
                continue
            if host.mac is not None:
                if host.mac in macs:
                    found.append(((*loc, i, "mac"), f"{host.mac} is already reserved by dhcp_hosts[{macs[host.mac]}]"))
                macs.setdefault(host.mac, i)
            if host.ip is None:
                continue
            if host.ip in ips:
                found.append(((*loc, i, "ip"), f"{host.ip} is already reserved by dhcp_hosts[{ips[host.ip]}]"))
            ips.setdefault(host.ip, i)
            if cidr is not None and (message := _usable(ipaddress.ip_address(host.ip), cidr, name)):
                found.append(((*loc, i, "ip"), message))
    return found


def _usable(ip, cidr, network: str) -> str | None:
    if cidr.version != ip.version:
        return f"{ip} is not in network {network!r} ({cidr}): reservations are IPv4 addresses of an IPv4 cidr"
    gateway = next(cidr.hosts())
    if ip not in cidr or ip in (cidr.network_address, cidr.broadcast_address):
        return f"{ip} is outside network {network!r} ({cidr})"
    if ip == gateway:
        return f"{ip} is the gateway of network {network!r} ({cidr}), not a guest's address"
    return None


# --- the hosts: machine types their qemu has, networks that would collide with theirs ---------------------

def host_problems(config, hosts: Mapping) -> list[tuple[str, str]]:
    """Each desktop's machine type against its host's qemu, and each network's cidr against the host's
    other active libvirt networks (libvirt refuses to start one whose addresses another uses)."""
    from ..host.connection import connect
    found = []
    for name, host in hosts.items():
        if host.unreachable:
            continue
        machines = {d.settings.machine: d.field("machine") for d in config.desktops.values() if d.host == name and d.settings.machine}
        networks = {n.libvirt_name or f"{config.prefix}-{n.name}": n for n in config.networks.values()
                    if n.on(name) and n.cidr and n.mode != "bridge"}
        groups = {p.source_name: p for p in config.pools.values()
                  if p.on(name) and p.type == "logical" and p.source_name and not p.source_devices}
        if not machines and not networks and not groups:
            continue
        try:
            with connect(host.uri) as conn:
                found += _machine_problems(conn, host, machines)
                found += _network_collisions(conn, name, networks)
                found += _missing_volume_groups(conn, name, groups)
        except VdeskError as exc:
            log.info("host %s not asked about machine types and networks: %s", name, exc)
    return _once(found)


def _machine_problems(conn, host, machines: dict) -> list[tuple[str, str]]:
    import libvirt
    found = []
    try:
        conn.getDomainCapabilities(None, "x86_64", None, host.domain_type, 0)
    except libvirt.libvirtError:
        return []                   # the host cannot say (an old libvirt): the domain's definition will
    for machine, field in machines.items():
        try:
            conn.getDomainCapabilities(None, "x86_64", machine, host.domain_type, 0)
        except libvirt.libvirtError as exc:
            found.append((field, f"host {host.name!r} has no machine type {machine!r} for {host.domain_type} "
                                 f"guests ({exc.get_error_message()})"))
    return found


def _network_collisions(conn, host: str, networks: dict) -> list[tuple[str, str]]:
    from ..xmlmodel import Network as NetworkXml
    found = []
    for other in conn.listAllNetworks(0):
        if other.name() in networks or not other.isActive():
            continue
        try:
            theirs = [ipaddress.ip_interface(f"{ip.address}/{ip.prefix or ip.netmask}").network
                      for ip in NetworkXml.from_xml(other.XMLDesc(0)).ips if ip.address and (ip.prefix or ip.netmask)]
        except (ValueError, TypeError):
            continue
        for libvirt_name, net in networks.items():
            cidr = ipaddress.ip_network(net.cidr)
            clash = next((t for t in theirs if t.version == cidr.version and t.overlaps(cidr)), None)
            if clash is not None:
                found.append((f"networks.{net.name}.cidr", f"{net.cidr} overlaps libvirt network {other.name()!r} "
                                                           f"({clash}) on host {host!r}: libvirt would refuse to "
                                                           "start it; choose another cidr"))
    return found


# --- pools on this machine: a directory, and block devices ------------------------------------------------

def pool_problems(config, hosts: Mapping) -> list[tuple[str, str]]:
    """A pool on a host that is this machine, as preview found it (the embedded host, a local URI): its
    directory must be one (or not be there yet), and a logical pool's devices block devices that exist."""
    found = []
    for name, pool in config.pools.items():
        if not all(h in hosts and _here(hosts[h].uri) for h in pool.hosts or (pool.host,)):
            continue
        if pool.path and os.path.lexists(pool.path) and not os.path.isdir(pool.path):
            found.append((f"pools.{name}.path", f"{pool.path!r} is there and is not a directory"))
        for i, device in enumerate(pool.source_devices):
            try:
                block = stat.S_ISBLK(os.stat(device).st_mode)
            except OSError:
                found.append((f"pools.{name}.source_devices[{i}]", f"{device!r} does not exist on this host"))
                continue
            if not block:
                found.append((f"pools.{name}.source_devices[{i}]", f"{device!r} is not a block device"))
    return found


def _here(uri: str) -> bool:
    """A libvirt URI of this machine (qemu:///system, the embedded host's socket URI); the test driver is not."""
    return uri.startswith(("qemu:", "lxc:")) and not uri.split("://", 1)[1].split("/", 1)[0]


def _missing_volume_groups(conn, host: str, groups: dict) -> list[tuple[str, str]]:
    """A logical pool without source_devices uses a volume group that must exist (libvirt cannot start it
    otherwise), as the host's libvirt finds them."""
    import libvirt
    from ..xmlmodel import PoolSources
    if not groups:
        return []
    try:
        have = [s.name for s in PoolSources.from_xml(conn.findStoragePoolSources("logical", None, 0)).sources]
    except libvirt.libvirtError as exc:
        log.info("host %s did not list its volume groups (%s)", host, exc.get_error_message())
        return []
    return [(f"pools.{pool.name}.source_name", f"host {host!r} has no volume group {vg!r} (it has: "
                                               f"{', '.join(have) or 'none'}): give source_devices to build it")
            for vg, pool in groups.items() if vg not in have]


# --- disks: at least as big as the image they are made from --------------------------------------------

def image_problems(config, files: Mapping) -> list[tuple[str, str]]:
    """A desktop's system disk against its image's virtual size (files: images.golden.ImageFiles by image
    name, for golden and own images; a recipe image is the size vdesk builds), and its home volume's size."""
    found = []
    sizes: dict[str, int | None] = {}
    for d in config.desktops.values():
        image = config.images.get(d.image)
        if image is None:
            continue
        if d.image not in sizes:
            sizes[d.image] = _virtual_size(files[d.image].disk) if d.image in files else \
                (built_image_bytes() if image.recipe is not None else None)
        size = sizes[d.image]
        if size is not None and d.settings.disk < size:
            found.append((d.field("disk"), f"{_size(d.settings.disk)} is smaller than image {d.image!r} "
                                           f"({_size(size)}): the system disk is made from it, so give at least "
                                           f"{_size(size)}"))
        if d.settings.home and d.settings.home < MIN_HOME_BYTES:
            found.append((d.field("home"), f"{_size(d.settings.home)} is too small for a home volume (at least 1MiB: "
                                           "it is formatted ext4)"))
    return _once(found)


def _virtual_size(path: str) -> int | None:
    try:
        return file_virtual_size(path)[1]
    except OSError:
        return None          # not there (yet): resolving the image says so


def built_image_bytes() -> int:
    """The virtual size of the images tools/build-image.sh builds (its DISK_BYTES, e.g. $((4 * 1024 ...)))."""
    match = re.search(r"^DISK_BYTES=\$\(\(([\d\s*]+)\)\)", _BUILD_SCRIPT.read_text(), re.M)
    product = 1
    for factor in match.group(1).split("*"):
        product *= int(factor)
    return product


def _size(n: int) -> str:
    for unit, factor in (("GiB", GiB), ("MiB", MiB)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n / GiB:.2f}GiB" if n >= GiB else f"{n} bytes"


def _once(found: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """A profile's disk is told once, not once per user who inherits it."""
    return list(dict.fromkeys(found))
