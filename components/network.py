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


def desired_model(props) -> xmlmodel.Network:
    """The network XML vdesk declares: gateway is the first host, DHCP the rest of the range."""
    net = ipaddress.ip_network(props["cidr"])
    hosts = list(net.hosts()) if net.num_addresses <= 65536 else None
    gateway = next(net.hosts())
    ip = xmlmodel.IP(address=str(gateway), prefix=net.prefixlen)
    if net.version == 6:
        ip.family = "ipv6"
    if props.get("dhcp", True):
        first = hosts[1] if hosts else gateway + 1
        last = hosts[-1] if hosts else net.broadcast_address - 1
        ip.dhcp_ranges = [xmlmodel.DhcpRange(start=str(first), end=str(last))]
    mode = props.get("mode", "nat")
    return xmlmodel.Network(
        name=props["name"],
        forward_mode=None if mode == "isolated" else mode,
        bridge_name=props.get("bridge") or bridge_name(props["name"]),
        mtu=props.get("mtu"),
        domain_name=props.get("domain"),
        ips=[ip],
    )


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

    def update(self, _id, _olds, news):
        with connect(news["host_uri"]) as conn:
            net = conn.networkLookupByName(news["name"])
            net.setAutostart(1 if news["autostart"] else 0)
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
                 domain=None, mtu=None, autostart=True, opts=None):
        super().__init__(NetworkProvider(), name, {
            "host_uri": host_uri, "name": network_name, "mode": mode, "cidr": cidr, "dhcp": dhcp,
            "bridge": bridge, "domain": domain, "mtu": mtu, "autostart": autostart,
            **dict.fromkeys(NetworkProvider.OUTPUTS),
        }, opts)
