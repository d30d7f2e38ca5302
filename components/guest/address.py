"""Find a guest's IPv4 address for one NIC from DHCP leases, the guest agent or a static setting."""

from __future__ import annotations

import ipaddress
import logging
import xml.etree.ElementTree as ET

import libvirt

from . import GuestError, GuestTimeout
from .lifecycle import raise_if_stopped
from ..waiting import wait_for

log = logging.getLogger(__name__)

KNOWN_SOURCES = ("lease", "agent", "arp")
_DOMAIN_SOURCES = {
    "lease": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
    "agent": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
    "arp": libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
}


def wait_for_address(
    conn: libvirt.virConnect,
    domain_name: str,
    mac: str,
    *,
    sources: tuple[str, ...] = ("lease", "agent"),
    timeout_s: float = 300,
    poll_s: float = 1.0,
) -> str:
    """Return the first IPv4 address seen for the NIC with this MAC, polling until timeout_s.

    A guest that stops meanwhile raises GuestStopped at once, with libvirt's reason.
    Sources: "lease" (libvirt network DHCP leases), "agent" (qemu guest agent), "arp"
    (host ARP table) and "static:<ip>" (returned at once, no lookup).
    """
    mac = _normalize_mac(mac)
    static = _check_sources(sources)
    if static is not None:
        log.debug("%s %s: static address %s", domain_name, mac, static)
        return static

    last_error: str | None = None

    def address() -> str | None:
        nonlocal last_error
        domain = _lookup_domain(conn, domain_name)
        raise_if_stopped(conn, domain_name)   # a guest that stopped gets no address: say why now, not at the deadline
        networks = _networks_of(domain, domain_name, mac)
        for source in sources:
            try:
                found = _query(conn, domain, source, mac, networks)
            except libvirt.libvirtError as exc:
                # e.g. "guest agent is not connected" or "domain is not running" while booting
                last_error = f"{source}: {_libvirt_message(exc)}"
                continue
            if found:
                log.info("%s %s has address %s (from %s)", domain_name, mac, found, source)
                return found
        return None

    return wait_for(address, timeout_s, interval_s=poll_s, timeout_error=lambda: GuestTimeout(
        f"an IPv4 address for desktop {domain_name!r} NIC {mac} (sources: {', '.join(sources)})",
        timeout_s,
        last_error or "no address reported yet",
    ))


def _check_sources(sources: tuple[str, ...]) -> str | None:
    """Validate source names; return the address of the first "static:<ip>" source, if any."""
    if isinstance(sources, str) or not sources:
        raise GuestError(f"address sources must be a non-empty tuple, got {sources!r}")
    for source in sources:
        if source.startswith("static:"):
            value = source[len("static:") :].strip()
            try:
                return str(ipaddress.IPv4Address(value))
            except ValueError:
                raise GuestError(f"invalid static address {value!r}: expected an IPv4 address") from None
        if source not in KNOWN_SOURCES:
            raise GuestError(
                f"unknown address source {source!r}; use one of {', '.join(KNOWN_SOURCES)} or static:<ip>"
            )
    return None


def _normalize_mac(mac: str) -> str:
    """Lower-case colon-separated MAC, validated."""
    value = mac.strip().lower().replace("-", ":")
    parts = value.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise GuestError(f"invalid MAC address {mac!r}")
    return value


def _lookup_domain(conn: libvirt.virConnect, domain_name: str) -> libvirt.virDomain:
    """The libvirt domain of the desktop, or a readable error if it does not exist."""
    try:
        return conn.lookupByName(domain_name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise GuestError(f"desktop {domain_name!r} has no libvirt domain") from None
        raise GuestError(f"cannot look up desktop {domain_name!r}: {_libvirt_message(exc)}") from None


def _networks_of(domain: libvirt.virDomain, domain_name: str, mac: str) -> list[str]:
    """Names of libvirt networks the NIC with this MAC is attached to (fails if no such NIC)."""
    root = ET.fromstring(domain.XMLDesc(0))
    seen = False
    networks: list[str] = []
    for iface in root.findall("./devices/interface"):
        mac_el = iface.find("mac")
        if mac_el is None or (mac_el.get("address") or "").lower() != mac:
            continue
        seen = True
        source = iface.find("source")
        if iface.get("type") == "network" and source is not None and source.get("network"):
            networks.append(source.get("network"))
    if not seen:
        raise GuestError(f"desktop {domain_name!r} has no network interface with MAC {mac}")
    return networks


def _query(
    conn: libvirt.virConnect, domain: libvirt.virDomain, source: str, mac: str, networks: list[str]
) -> str | None:
    """Ask one source once; returns an IPv4 address or None."""
    if source == "lease":
        for name in networks:
            try:
                leases = conn.networkLookupByName(name).DHCPLeases(mac)
            except libvirt.libvirtError as exc:
                # Unsupported driver or inactive network: the domain's own lease view is tried next.
                log.debug("DHCP leases of network %s unavailable: %s", name, _libvirt_message(exc))
                leases = []
            for lease in leases:
                if (lease.get("mac") or "").lower() == mac and lease.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                    address = _usable_ipv4(lease.get("ipaddr"))
                    if address:
                        return address
    interfaces = domain.interfaceAddresses(_DOMAIN_SOURCES[source], 0) or {}
    for info in interfaces.values():
        if (info.get("hwaddr") or "").lower() != mac:
            continue
        for addr in info.get("addrs") or []:
            if addr.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4:
                address = _usable_ipv4(addr.get("addr"))
                if address:
                    return address
    return None


def _usable_ipv4(value: str | None) -> str | None:
    """The address if it is a routable-looking IPv4 (not loopback or link-local)."""
    try:
        address = ipaddress.IPv4Address(value or "")
    except ValueError:
        return None
    if address.is_loopback or address.is_link_local or address.is_unspecified:
        return None
    return str(address)


def _libvirt_message(exc: libvirt.libvirtError) -> str:
    """The libvirt error text without its noisy prefix."""
    return exc.get_error_message() or str(exc)
