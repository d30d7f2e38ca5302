"""The virtual network XML model."""
from __future__ import annotations

from .base import VDESK_NS, Child, Children, Field, TextList, XMLObject

_META = "{%s}network" % VDESK_NS


class DhcpRange(XMLObject):
    TAG = "range"
    start = Field("@start")
    end = Field("@end")


class DhcpHost(XMLObject):
    TAG = "host"
    mac = Field("@mac")
    ip = Field("@ip")
    name = Field("@name")


class IP(XMLObject):
    TAG = "ip"
    family = Field("@family")             # ipv4 (default) | ipv6
    address = Field("@address")
    prefix = Field("@prefix", int)
    netmask = Field("@netmask")
    dhcp_ranges = Children(DhcpRange, "dhcp/range")
    dhcp_hosts = Children(DhcpHost, "dhcp/host")


class DnsHost(XMLObject):
    TAG = "host"
    ip = Field("@ip")
    hostnames = TextList("hostname")


class NetworkOwner(XMLObject):
    """vdesk's own metadata on a network: libvirt 9.0 keeps the <metadata> a network is defined with
    (virNetworkSetMetadata, to change it later, is 9.7's), so it is written at create."""
    TAG = _META
    stack = Field("{%s}stack" % VDESK_NS)
    resource = Field("{%s}resource" % VDESK_NS)
    project = Field("{%s}project" % VDESK_NS)


class Network(XMLObject):
    TAG = "network"
    name = Field("name")
    uuid = Field("uuid")
    owner = Child(NetworkOwner, "metadata/" + _META)
    forward_mode = Field("forward/@mode")  # nat | route | open | bridge | absent = isolated
    bridge_name = Field("bridge/@name")
    bridge_stp = Field("bridge/@stp", "onoff")
    mtu = Field("mtu/@size", int)
    mac = Field("mac/@address")
    domain_name = Field("domain/@name")
    dns_hosts = Children(DnsHost, "dns/host")
    ips = Children(IP, "ip")


class HostInterface(XMLObject):
    """A host interface as libvirt's interface driver reports it: tells a bridge from a NIC."""
    TAG = "interface"
    type = Field("@type")                 # bridge | ethernet | bond | vlan
    name = Field("@name")
