"""Network: a libvirt virtual network (NAT with DHCP in this slice)."""
from __future__ import annotations

import ipaddress
import logging

import libvirt
import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from . import xmlmodel
from .connection import connect, lookup
from .errors import VdeskError
from .names import name_problem, network_problem
from .provider import DeclaredProvider, Prop

log = logging.getLogger(__name__)
MODES = ("nat", "isolated", "route", "open")
_MAX_DHCP_RANGE = 65534


def desired_model(props) -> xmlmodel.Network:
    """The network XML vdesk declares: gateway is the first host, DHCP the rest of the range."""
    net = ipaddress.ip_network(props["cidr"])
    gateway = next(net.hosts())
    ip = xmlmodel.IP(address=str(gateway), prefix=net.prefixlen)
    if net.version == 6:
        ip.family = "ipv6"
    if props.get("dhcp", True):
        # libvirt refuses DHCP ranges over 65535 addresses (an IPv6 /64 has 2^64).
        first = gateway + 1
        last = min(net.broadcast_address - 1, first + _MAX_DHCP_RANGE - 1)
        ip.dhcp_ranges = [xmlmodel.DhcpRange(start=str(first), end=str(last))]
        ip.dhcp_hosts = [_dhcp_host(h) for h in props.get("dhcp_hosts") or []]
    mode = props.get("mode", "nat")
    return xmlmodel.Network(
        name=props["name"],
        forward_mode=None if mode == "isolated" else mode,
        bridge_name=props.get("bridge") or bridge_name(props["name"]),
        mtu=props.get("mtu"),
        domain_name=props.get("domain"),
        dns_hosts=[_dns_host(h) for h in props.get("dns_hosts") or []],
        ips=[ip],
    )


def _dhcp_host(h: dict) -> xmlmodel.DhcpHost:
    return xmlmodel.DhcpHost(mac=h["mac"].lower(), ip=h["ip"], name=h.get("name"))


def _dns_host(h: dict) -> xmlmodel.DnsHost:
    return xmlmodel.DnsHost(ip=h["ip"], hostnames=list(h["hostnames"]))


def _dhcp_hosts_problem(hosts) -> str | None:
    for i, h in enumerate(hosts):
        if not isinstance(h, dict) or not h.get("mac") or not h.get("ip"):
            return f"dhcp_hosts[{i}] needs a mac and an ip"
        try:
            ipaddress.ip_address(h["ip"])
        except ValueError:
            return f"dhcp_hosts[{i}].ip: {h['ip']!r} is not an IP address"
    macs = [h["mac"].lower() for h in hosts]
    if len(set(macs)) != len(macs):
        return "each MAC may appear only once"
    return None


def _dns_hosts_problem(hosts) -> str | None:
    for i, h in enumerate(hosts):
        if not isinstance(h, dict) or not h.get("ip") or not h.get("hostnames"):
            return f"dns_hosts[{i}] needs an ip and a list of hostnames"
    return None


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


class NetworkProvider(DeclaredProvider):
    PROPS = {
        "host_uri": Prop(str, required=True, replaces=True),
        "name": Prop(str, required=True, replaces=True, validate=name_problem),
        "mode": Prop(str, default="nat", replaces=True,
                     validate=lambda v: None if v in MODES else f"{v!r} must be one of {', '.join(MODES)}"),
        "cidr": Prop(str, required=True, replaces=True, validate=network_problem),
        "dhcp": Prop(bool, default=True, replaces=True),
        "bridge": Prop(str, replaces=True, validate=lambda v: None if len(v) <= 15 else "at most 15 characters"),
        "domain": Prop(str, replaces=True),
        "mtu": Prop(int, replaces=True),
        "autostart": Prop(bool, default=True),
        "dhcp_hosts": Prop(list, default=[], validate=_dhcp_hosts_problem,
                           doc="static leases {mac, ip, name}; updated live, no restart"),
        "dns_hosts": Prop(list, default=[], validate=_dns_hosts_problem,
                          doc="DNS records {ip, hostnames}; updated live, no restart"),
    }
    OUTPUTS = ("uuid", "gateway", "bridge_name", "active")

    def create(self, props):
        with connect(props["host_uri"]) as conn:
            if lookup(conn.networkLookupByName, props["name"]):
                raise VdeskError(f"network {props['name']!r} already exists on {props['host_uri']}; "
                                 "adopt it with `pulumi import` or choose another name")
            _refuse_overlap(conn, props)
            net = conn.networkDefineXML(desired_model(props).to_xml())
            try:
                net.create()
                net.setAutostart(1 if props["autostart"] else 0)
            except libvirt.libvirtError:
                net.undefine()
                raise
            return CreateResult(net.UUIDString(), self._outputs(props, net))

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
        outs = {**self.inputs_of(props), "uuid": net.UUIDString(), "bridge_name": live.bridge_name,
                "gateway": live.ips[0].address if live.ips else None, "active": bool(net.isActive()),
                "autostart": bool(net.autostart())}
        # Report what libvirt really has, so an out-of-band change shows up as a diff.
        if live.ips:
            outs["cidr"] = str(ipaddress.ip_interface(f"{live.ips[0].address}/{live.ips[0].prefix or 24}").network)
            outs["dhcp"] = bool(live.ips[0].dhcp_ranges)
        outs["mode"] = live.forward_mode or "isolated"
        if live.ips:
            outs["dhcp_hosts"] = [{k: v for k, v in (("mac", h.mac), ("ip", h.ip), ("name", h.name)) if v}
                                  for h in live.ips[0].dhcp_hosts]
        outs["dns_hosts"] = [{"ip": h.ip, "hostnames": list(h.hostnames)} for h in live.dns_hosts]
        return outs


def _refuse_overlap(conn, props) -> None:
    want = ipaddress.ip_network(props["cidr"])
    for other in conn.listAllNetworks(0):
        for ip in xmlmodel.Network.from_xml(other.XMLDesc(0)).ips:
            if not ip.address:
                continue
            prefix = ip.prefix if ip.prefix is not None else ipaddress.ip_network(f"0.0.0.0/{ip.netmask}").prefixlen
            have = ipaddress.ip_interface(f"{ip.address}/{prefix}").network
            if have.version == want.version and have.overlaps(want):
                raise VdeskError(f"network {props['name']!r}: cidr {props['cidr']} overlaps {have} "
                                 f"of existing network {other.name()!r}")


class Network(Resource):
    """A virtual network with its bridge, DHCP and DNS."""

    name: pulumi.Output[str]
    gateway: pulumi.Output[str]
    bridge_name: pulumi.Output[str]

    def __init__(self, name: str, *, host_uri, network_name, cidr, mode="nat", dhcp=True, bridge=None,
                 domain=None, mtu=None, autostart=True, dhcp_hosts=(), dns_hosts=(), opts=None):
        super().__init__(NetworkProvider(), name, {
            "host_uri": host_uri, "name": network_name, "mode": mode, "cidr": cidr, "dhcp": dhcp,
            "bridge": bridge, "domain": domain, "mtu": mtu, "autostart": autostart,
            "dhcp_hosts": list(dhcp_hosts), "dns_hosts": list(dns_hosts),
            **dict.fromkeys(NetworkProvider.OUTPUTS),
        }, opts)
