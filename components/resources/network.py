"""Network: a libvirt virtual network (its own bridge, DHCP and DNS), or an existing host bridge."""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import shutil
import subprocess
from typing import TYPE_CHECKING, Mapping, Sequence

import libvirt
import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from .. import xmlmodel
from ..host.connection import connect, lookup
from ..errors import VdeskError
from ..kinds import NETWORK_MODES, Cidr6, DhcpHost, DhcpRange, DnsHost, Interface, NetworkMode
from ..names import name_problem, network_problem
from .provider import ADOPT, OWNER, PROJECT, DeclaredProvider, Prop, declared
from ..xmlmodel.network import HostInterface

if TYPE_CHECKING:
    from ..host.resolve import Host

log = logging.getLogger(__name__)
MODES = NETWORK_MODES
_MAX_DHCP_RANGE = 65534


def desired_model(props) -> xmlmodel.Network:
    """The network XML vdesk declares: gateway is the first host, DHCP the rest of the range.

    A bridge network only names the host's bridge: the LAN's router, DHCP and DNS serve its guests.
    """
    mode = props.get("mode", "nat")
    owner = xmlmodel.NetworkOwner(stack=props["owner"], resource=props["name"],
                                  project=props.get("project") or None) if props.get("owner") else None
    if mode == "bridge":
        return xmlmodel.Network(name=props["name"], owner=owner, forward_mode="bridge", bridge_name=props["bridge"])
    dhcp = props.get("dhcp", True)
    ips = [_ip(props["cidr"], dhcp, props.get("dhcp_hosts") or [], props.get("dhcp_range"))]
    if props.get("cidr6"):
        ips.append(_ip(props["cidr6"], dhcp, []))  # reservations by MAC are IPv4's (libvirt)
    return xmlmodel.Network(
        name=props["name"],
        owner=owner,
        forward_mode=None if mode == "isolated" else mode,
        bridge_name=props.get("bridge") or bridge_name(props["name"]),
        mtu=props.get("mtu"),
        domain_name=props.get("domain"),
        dns_hosts=[_dns_host(h) for h in props.get("dns_hosts") or []],
        ips=ips,
    )


def _ip(cidr: str, dhcp: bool, dhcp_hosts: list, dhcp_range: dict | None = None) -> xmlmodel.IP:
    net = ipaddress.ip_network(cidr)
    gateway = next(net.hosts())
    ip = xmlmodel.IP(address=str(gateway), prefix=net.prefixlen)
    if net.version == 6:
        ip.family = "ipv6"
    if dhcp:
        ip.dhcp_ranges = [_range(dhcp_range or default_range(cidr))]
        ip.dhcp_hosts = [_dhcp_host(h) for h in dhcp_hosts]
    return ip


def default_range(cidr: str) -> dict:
    """Every address after the gateway; libvirt refuses ranges over 65535 addresses (an IPv6 /64 has 2^64)."""
    net = ipaddress.ip_network(cidr)
    first = next(net.hosts()) + 1
    last = min(net.broadcast_address - 1, first + _MAX_DHCP_RANGE - 1)
    return {"start": str(first), "end": str(last)}


def _range(r: dict) -> xmlmodel.DhcpRange:
    return xmlmodel.DhcpRange(start=r["start"], end=r["end"])


def _ip_network(ip: xmlmodel.IP):
    """The network of a live <ip>: libvirt keeps whichever of prefix and netmask it was given."""
    if ip.prefix is not None:
        return ipaddress.ip_interface(f"{ip.address}/{ip.prefix}").network
    if ip.netmask:
        return ipaddress.ip_interface(f"{ip.address}/{ip.netmask}").network
    return ipaddress.ip_interface(ip.address).network


def _dhcp_host(h: dict) -> xmlmodel.DhcpHost:
    return xmlmodel.DhcpHost(mac=h["mac"].lower(), ip=h["ip"], name=h.get("name"))


def _dns_host(h: dict) -> xmlmodel.DnsHost:
    return xmlmodel.DnsHost(ip=h["ip"], hostnames=list(h["hostnames"]))


# libvirt's network-update API: change one DHCP host or DNS record in the live
# network and its persistent config, without restarting it (guests stay connected).
_LIVE_AND_CONFIG = libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG


def _update_section(net, section: int, old: list, new: list, key, to_xml) -> None:
    olds = {key(x): x for x in old}
    news = {key(x): x for x in new}
    flags = _LIVE_AND_CONFIG if net.isActive() else libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
    for k, item in olds.items():
        if k not in news or news[k] != item:
            net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, section, -1, to_xml(item), flags)
    for k, item in news.items():
        if k not in olds or olds[k] != item:
            net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, section, -1, to_xml(item), flags)


def bridge_name(network: str) -> str:
    return f"vd-{network}"[:15]  # Linux interface names are at most 15 characters


# What a bridge network cannot have: the LAN, not vdesk, runs its DHCP and DNS.
_NOT_IN_BRIDGE_MODE = {
    "dhcp_hosts": "a bridge network has no DHCP of vdesk's; reserve addresses on the LAN's DHCP server",
    "dns_hosts": "a bridge network has no DNS of vdesk's; add records on the LAN's DNS server",
    "domain": "a bridge network has no DNS of vdesk's; the LAN's DNS server serves its domain",
    "mtu": "a bridge network uses the host bridge's MTU; set it on the host",
}
_TOOLS_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _require_bridge(conn, props) -> None:
    """A bridge network's host bridge must exist now: libvirt starts the network without looking,
    and only a guest's start would fail ("No such device").

    Asked of the daemon's own view, so remote hosts work: libvirt's interface driver. The embedded
    host's daemon lives in a network namespace, but its interface driver reads the root namespace's
    /sys, so there the namespace itself is asked (netlink, through `ip`).
    """
    name, bridge, host, netns = props["name"], props["bridge"], props["host_uri"], props.get("netns")
    kind = _link_kind_in_netns(netns, bridge) if netns else _link_kind_via_libvirt(conn, bridge, host)
    where = f"host {host}" + (f" (network namespace {netns})" if netns else "")
    if kind is None:
        raise VdeskError(f"network {name!r}: bridge {bridge!r} does not exist on {where}: create it first "
                         f"(e.g. `ip link add {bridge} type bridge`) or name an existing bridge")
    if kind not in ("bridge", "unchecked"):
        raise VdeskError(f"network {name!r}: {bridge!r} on {where} is not a bridge (its type is {kind})")


def _link_kind_via_libvirt(conn, bridge: str, host: str) -> str | None:
    try:
        iface = conn.interfaceLookupByName(bridge)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_INTERFACE:
            return None
        if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            log.warning("host %s has no libvirt interface driver: cannot check that bridge %r exists; "
                        "a guest's start will fail if it does not", host, bridge)
            return "unchecked"
        raise
    return HostInterface.from_xml(iface.XMLDesc(0)).type or "unknown"


def _link_kind_in_netns(netns: str, bridge: str) -> str | None:
    nsenter, ip = shutil.which("nsenter", path=_TOOLS_PATH), shutil.which("ip", path=_TOOLS_PATH)
    if not nsenter or not ip:
        raise VdeskError("checking a bridge in a network namespace needs nsenter (util-linux) and ip (iproute2)")
    result = subprocess.run([nsenter, f"--net={netns}", ip, "-j", "-d", "link", "show", "dev", bridge],
                            capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        if "does not exist" in result.stderr:
            return None
        raise VdeskError(f"cannot look up interface {bridge!r} in network namespace {netns}: "
                         f"{result.stderr.strip()}")
    links = json.loads(result.stdout or "[]")
    if not links:
        return None
    return (links[0].get("linkinfo") or {}).get("info_kind") or links[0].get("link_type") or "unknown"


class NetworkProvider(DeclaredProvider):
    PROPS = {
        "host_uri": Prop(str, required=True, replaces=True),
        "name": Prop(str, required=True, replaces=True, validate=name_problem),
        "mode": declared(NetworkMode, f"{{input}} must be one of {', '.join(MODES)}", default="nat", replaces=True,
                         doc="bridge: attach to an existing host bridge (no DHCP or DNS of vdesk's)"),
        "cidr": Prop(str, replaces=True, validate=network_problem,
                     doc="required, except in bridge mode (there it only describes the LAN)"),
        "cidr6": declared(Cidr6, replaces=True,
                          doc="IPv6 prefix beside an IPv4 cidr (dual stack)"),
        "dhcp": Prop(bool, replaces=True, doc="default true; false (and no other value) in bridge mode"),
        "bridge": declared(Interface, "a Linux interface name: 1-15 characters, no spaces, '/' or ':'", replaces=True,
                           doc="bridge mode: the existing host bridge; else the bridge to create (default vd-<name>)"),
        "netns": Prop(str, replaces=True,
                      doc="bridge mode: the host daemon's network namespace (embedded host), where the bridge "
                          "is looked up"),
        "domain": Prop(str, replaces=True),
        "mtu": Prop(int, replaces=True),
        "autostart": Prop(bool, default=True),
        "dhcp_range": declared(DhcpRange, "must be {start, end}, two IPv4 addresses",
                               doc="the IPv4 DHCP pool (default: all after the gateway); updated "
                                   "live: the bridge stays, libvirt restarts its dnsmasq"),
        "dhcp_hosts": declared(list[DhcpHost], default=[],
                               doc="static leases; updated live, no restart"),
        "dns_hosts": declared(list[DnsHost], default=[],
                              doc="DNS records; updated live, no restart"),
        "adopt": ADOPT,
        "owner": OWNER,
        "project": PROJECT,
    }
    OUTPUTS = ("uuid", "gateway", "gateway6", "bridge_name", "active")
    JOURNAL_KIND = "network"

    def check(self, olds, news):
        """dhcp's default depends on the mode; cidrs are kept in libvirt's spelling, so a refresh matches."""
        news = dict(news)
        if news.get("dhcp") is None:
            news["dhcp"] = news.get("mode") != "bridge"
        for key in ("cidr", "cidr6"):
            if isinstance(news.get(key), str) and not network_problem(news[key]):
                news[key] = str(ipaddress.ip_network(news[key]))
        return super().check(olds, news)

    def check_more(self, inputs):
        problems = []
        mode, cidr, cidr6 = inputs.get("mode"), inputs.get("cidr"), inputs.get("cidr6")
        if mode == "bridge":
            if inputs.get("bridge") is None:
                problems.append(("bridge", "bridge is required in bridge mode: the name of an existing host "
                                           "bridge, e.g. br0"))
            if inputs.get("dhcp") is True:
                problems.append(("dhcp", "dhcp: a bridge network's addresses come from the LAN, not from vdesk"))
            for key, why in _NOT_IN_BRIDGE_MODE.items():
                if inputs.get(key):
                    problems.append((key, f"{key}: {why}"))
        elif cidr is None:
            problems.append(("cidr", "cidr is required (except in bridge mode)"))
        if isinstance(cidr, str) and isinstance(cidr6, str) and not network_problem(cidr) \
                and ipaddress.ip_network(cidr).version != 4:
            problems.append(("cidr", f"cidr: {cidr} must be IPv4 when cidr6 gives the IPv6 prefix"))
        dhcp_range = inputs.get("dhcp_range")
        if isinstance(dhcp_range, dict) and not self.PROPS["dhcp_range"].validate(dhcp_range):
            start, end = (ipaddress.ip_address(dhcp_range[key]) for key in ("start", "end"))
            if start > end:
                problems.append(("dhcp_range", f"dhcp_range: {start} .. {end} is not an IPv4 range (start <= end)"))
            if isinstance(cidr, str) and not network_problem(cidr):
                net = ipaddress.ip_network(cidr)
                gateway = next(net.hosts())
                for key, address in (("start", start), ("end", end)):
                    if address not in net or address in (net.network_address, net.broadcast_address, gateway):
                        problems.append(("dhcp_range", f"dhcp_range.{key}: {address} is not a host address of "
                                                       f"{cidr} other than the gateway {gateway}"))
            if not inputs.get("dhcp", True):
                problems.append(("dhcp_range", "dhcp_range: set only with dhcp: true"))
        hosts = inputs.get("dhcp_hosts")
        if isinstance(hosts, list) and not self.PROPS["dhcp_hosts"].validate(hosts):
            macs = [h["mac"].lower() for h in hosts]
            if len(set(macs)) != len(macs):
                problems.append(("dhcp_hosts", "dhcp_hosts: each MAC may appear only once"))
        return problems

    def create(self, props):
        with connect(props["host_uri"]) as conn:
            if lookup(conn.networkLookupByName, props["name"]):
                raise VdeskError(f"network {props['name']!r} already exists on {props['host_uri']}; "
                                 "set adopt: true to take it over, or choose another name")
            _refuse_overlap(conn, props)
            if props.get("mode") == "bridge":
                _require_bridge(conn, props)
            net = conn.networkDefineXML(desired_model(props).to_xml())
            try:
                net.create()
                net.setAutostart(1 if props["autostart"] else 0)
            except libvirt.libvirtError:
                net.undefine()
                raise
            return CreateResult(net.UUIDString(), self._outputs(props, net))

    def existing_id(self, props):
        with connect(props["host_uri"]) as conn:
            net = lookup(conn.networkLookupByName, props["name"])
            return net.UUIDString() if net else None

    def read(self, id_, props):
        with connect(props["host_uri"]) as conn:
            net = lookup(conn.networkLookupByName, props["name"])
            if net is None or net.UUIDString() != id_:
                return ReadResult("", {})
            return ReadResult(id_, self._outputs(props, net))

    def update(self, _id, olds, news):
        with connect(news["host_uri"]) as conn:
            net = conn.networkLookupByName(news["name"])
            net.setAutostart(1 if news["autostart"] else 0)
            old_range = olds.get("dhcp_range") or (olds.get("cidr") and default_range(olds["cidr"]))
            new_range = news.get("dhcp_range") or default_range(news["cidr"])
            if news.get("dhcp") and old_range and old_range != new_range:
                _update_section(net, libvirt.VIR_NETWORK_SECTION_IP_DHCP_RANGE, [old_range], [new_range],
                                key=lambda r: (r["start"], r["end"]), to_xml=lambda r: _range(r).to_element_xml())
            _update_section(net, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
                            olds.get("dhcp_hosts") or [], news.get("dhcp_hosts") or [],
                            key=lambda h: h["mac"].lower(),
                            to_xml=lambda h: _dhcp_host(h).to_element_xml())
            _update_section(net, libvirt.VIR_NETWORK_SECTION_DNS_HOST,
                            olds.get("dns_hosts") or [], news.get("dns_hosts") or [],
                            key=lambda h: h["ip"], to_xml=lambda h: _dns_host(h).to_element_xml())
            if not net.isActive():
                net.create()
            return UpdateResult(self._outputs(news, net))

    def delete(self, _id, props):
        with connect(props["host_uri"]) as conn:
            net = lookup(conn.networkLookupByName, props["name"])
            if net is None:
                return
            if net.isActive():
                net.destroy()
            net.undefine()

    def _outputs(self, props, net):
        live = xmlmodel.Network.from_xml(net.XMLDesc(0))
        # Dual stack: cidr is the IPv4 <ip>, cidr6 the IPv6 one; else the one <ip> is cidr.
        v4 = [ip for ip in live.ips if ipaddress.ip_address(ip.address).version == 4]
        v6 = [ip for ip in live.ips if ipaddress.ip_address(ip.address).version == 6]
        main, ip6 = (v4[0], v6[0]) if v4 and v6 else (live.ips[0] if live.ips else None, None)
        outs = {**self.inputs_of(props), "uuid": net.UUIDString(), "bridge_name": live.bridge_name,
                "gateway": main.address if main else None, "gateway6": ip6.address if ip6 else None,
                "active": bool(net.isActive()), "autostart": bool(net.autostart())}
        # Report what libvirt really has, so an out-of-band change shows up as a diff. A bridge
        # network has no <ip>: its cidrs only describe the LAN and stay as declared.
        if main:
            outs["cidr"] = str(_ip_network(main))
            outs["cidr6"] = str(_ip_network(ip6)) if ip6 else None
            outs["dhcp"] = bool(main.dhcp_ranges)
        outs["mode"] = live.forward_mode or "isolated"
        if main and main.dhcp_ranges and props.get("dhcp_range"):
            outs["dhcp_range"] = {"start": main.dhcp_ranges[0].start, "end": main.dhcp_ranges[0].end}
        if main:
            outs["dhcp_hosts"] = [{k: v for k, v in (("mac", h.mac), ("ip", h.ip), ("name", h.name)) if v}
                                  for h in main.dhcp_hosts]
        outs["dns_hosts"] = [{"ip": h.ip, "hostnames": list(h.hostnames)} for h in live.dns_hosts]
        return outs


def _refuse_overlap(conn, props) -> None:
    """Both prefixes against every <ip> on the host; a bridge network without cidr has nothing to compare."""
    wants = [(key, ipaddress.ip_network(props[key])) for key in ("cidr", "cidr6") if props.get(key)]
    if not wants:
        return
    for other in conn.listAllNetworks(0):
        for ip in xmlmodel.Network.from_xml(other.XMLDesc(0)).ips:
            if not ip.address:
                continue
            have = _ip_network(ip)
            for key, want in wants:
                if have.version == want.version and have.overlaps(want):
                    raise VdeskError(f"network {props['name']!r}: {key} {props[key]} overlaps {have} "
                                     f"of existing network {other.name()!r}")


def default_address_sources(mode: str, dhcp: bool) -> tuple[str, ...]:
    """Where the readiness gate learns a guest's address: the leases of vdesk's DHCP, then the guest agent.

    Without vdesk's DHCP (dhcp: false, or a bridge onto a LAN) only the agent can tell.
    """
    return ("lease", "agent") if dhcp and mode != "bridge" else ("agent",)


@dataclasses.dataclass
class NetworkArgs:
    """A virtual network of a host (its own bridge, DHCP and DNS), or an existing host bridge to attach to."""

    host: "Host"
    cidr: str | None = None              # IPv4 prefix, e.g. 10.77.0.0/24 (bridge mode: only describes the LAN)
    mode: str = "nat"                    # nat | isolated | route | open | bridge
    dhcp: bool | None = None             # default: true, except in bridge mode
    bridge: str | None = None            # bridge mode: the existing host bridge, e.g. br0
    cidr6: str | None = None             # IPv6 prefix beside cidr (dual stack)
    domain: str | None = None
    mtu: int | None = None
    autostart: bool = True
    dhcp_range: Mapping[str, str] | None = None      # {start, end}
    dhcp_hosts: Sequence[Mapping] = ()   # static leases {mac, ip, name}
    dns_hosts: Sequence[Mapping] = ()    # DNS records {ip, hostnames}
    address_sources: Sequence[str] | None = None     # default: see default_address_sources
    libvirt_name: str | None = None      # its name on the host (default: <stack>-<resource name>)
    adopt: bool = False
    keep_on_destroy: bool = False

    @property
    def gateway(self) -> str | None:
        """The network's own address (its first host), which guests with a static address route through."""
        if not self.cidr or network_problem(self.cidr):
            return None
        return str(next(ipaddress.ip_network(self.cidr).hosts()))


class Network(Resource):
    """A virtual network with its bridge, DHCP and DNS (one or both IP families), or a host bridge to attach to."""

    name: pulumi.Output[str]
    gateway: pulumi.Output[str]
    gateway6: pulumi.Output[str]
    bridge_name: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        self.host = args.host
        self.resource_name = name
        self.args = args
        dhcp = args.dhcp if args.dhcp is not None else args.mode != "bridge"
        self.address_sources = tuple(args.address_sources or default_address_sources(args.mode, dhcp))
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(retain_on_delete=args.keep_on_destroy or None))
        super().__init__(NetworkProvider(), name, {
            "host_uri": args.host.uri, "name": args.libvirt_name or f"{pulumi.get_stack()}-{name}",
            "mode": args.mode, "cidr": args.cidr, "cidr6": args.cidr6, "dhcp": args.dhcp, "bridge": args.bridge,
            # where the host bridge is looked up; only bridge networks need (and get) it
            "netns": args.host.netns if args.mode == "bridge" else None,
            "domain": args.domain, "mtu": args.mtu, "autostart": args.autostart,
            "dhcp_range": dict(args.dhcp_range) if args.dhcp_range else None,
            "dhcp_hosts": [dict(h) for h in args.dhcp_hosts], "dns_hosts": [dict(h) for h in args.dns_hosts],
            "adopt": args.adopt, "owner": pulumi.get_stack(), "project": pulumi.get_project(),
            **dict.fromkeys(NetworkProvider.OUTPUTS),
        }, opts)
