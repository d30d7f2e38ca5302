"""Validation rules shared by every resource: names, sizes, addresses."""
from __future__ import annotations

import hashlib
import ipaddress
import re

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|TiB)?\s*$")
_FACTORS = {"B": 1, None: 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}
NAME_PATTERN = _NAME.pattern    # the same rules as patterns, for the stack file's JSON Schema
SIZE_PATTERN = _SIZE.pattern


def name_problem(value: str) -> str | None:
    if not _NAME.match(value or ""):
        return (f"{value!r} is not a valid name: use 1-63 lowercase letters, digits and '-', "
                "starting and ending with a letter or digit")
    return None


def parse_size(value, *, default_unit: str = "B") -> int:
    """'8GiB' -> bytes; a bare int is in default_unit. Decimal units (GB) are refused on purpose."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size")
    if isinstance(value, int):
        return value * _FACTORS[default_unit]
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a size: write an integer with an optional unit "
                         "B, KiB, MiB, GiB or TiB, e.g. 2048MiB or 2GiB")
    return int(match.group(1)) * _FACTORS[match.group(2) or default_unit]


def network_problem(value: str) -> str | None:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        return f"{value!r} is not a network in CIDR form ({exc})"
    if net.version == 4 and net.prefixlen > 29:
        return f"{value!r} is too small for a DHCP network (use /29 or larger)"
    return None


def stable_mac(*parts: str) -> str:
    """A MAC address derived from stable names, so it survives every update."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return "52:54:00:%02x:%02x:%02x" % (digest[0], digest[1], digest[2])


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_SECONDS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value) -> int:
    """'12h' -> seconds; a bare int is seconds. Units: s, m, h, d."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration: write an integer with an optional unit s, m, h or d, "
                             "e.g. 90m or 30d")
        seconds = int(match.group(1)) * _SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return seconds
