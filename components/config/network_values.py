"""Values of a network entry that libvirt or dnsmasq would refuse later: a MAC, a DNS name.

Small types for stackfile.py; what depends on the network itself (an address inside its
cidr) is against_host.py's.
"""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def mac_problem(value: str) -> str | None:
    """libvirt takes six hex pairs joined by ':' and refuses a multicast MAC for a DHCP reservation."""
    if not isinstance(value, str) or not _MAC.match(value):
        return f"{value!r} is not a MAC address (six hex pairs joined by ':', e.g. 52:54:00:12:34:56)"
    if int(value[:2], 16) & 1:
        return f"{value!r} is a multicast MAC address: a NIC's MAC is unicast (its first byte is even)"
    return None


def dns_name_problem(value: str) -> str | None:
    """A DNS name: dot-separated labels of letters, digits and '-' (what dnsmasq serves)."""
    if not isinstance(value, str) or not 0 < len(value.rstrip(".")) <= 253 \
            or not all(_LABEL.match(label) for label in value.rstrip(".").split(".")):
        return (f"{value!r} is not a DNS name (labels of letters, digits and '-', joined by '.', e.g. "
                "lab.example.org)")
    return None


def _rule(problem) -> AfterValidator:
    def check(value):
        if message := problem(value):
            raise ValueError(message)
        return value.lower() if problem is mac_problem else value
    return AfterValidator(check)


Mac = Annotated[str, _rule(mac_problem), Field(json_schema_extra={"pattern": _MAC.pattern})]
DnsName = Annotated[str, _rule(dns_name_problem)]
