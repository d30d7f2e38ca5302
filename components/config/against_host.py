"""Values judged against what preview finds: the image a disk is made from, the network an address is on.

Each of these passed preview before and failed at `up` (libvirt refusing a
reservation, a volume smaller than its backing image) or later in the guest.
Problems are (path, message) pairs, like the rest of the stack's.
"""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Iterable, Mapping

from ..resources.volume import file_virtual_size

Loc = tuple[str | int, ...]
GiB, MiB = 1024**3, 1024**2
MIN_HOME_BYTES = MiB    # mkfs.ext4 refuses a filesystem much smaller (under 128 KiB); a home needs room anyway
_BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "build-image.sh"


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
        if size is not None and d.disk_bytes < size:
            found.append((d.field("disk"), f"{_size(d.disk_bytes)} is smaller than image {d.image!r} "
                                           f"({_size(size)}): the system disk is made from it, so give at least "
                                           f"{_size(size)}"))
        if d.home_bytes and d.home_bytes < MIN_HOME_BYTES:
            found.append((d.field("home"), f"{_size(d.home_bytes)} is too small for a home volume (at least 1MiB: "
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
