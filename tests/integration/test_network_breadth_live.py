"""Bridge-mode and dual-stack networks on the project's own libvirtd, inside its network namespace.

Every interface here is made (and removed) inside own_host's namespace, through nsenter.
"""
from __future__ import annotations

import json
import subprocess
import time

import libvirt
import pytest

from components import xmlmodel
from components.resources.domain import DomainProvider
from components.errors import VdeskError
from components.resources.network import NetworkProvider
from tests.support.providers import checked

pytestmark = pytest.mark.integration
BRIDGE = "vdbr-test"


def in_netns(host, *args) -> str:
    return subprocess.run(["nsenter", f"--net={host.netns}", *args], check=True, capture_output=True,
                          text=True, timeout=30).stdout


def wait_for(what: str, condition, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)


def ports_of(host, bridge: str) -> list[str]:
    return [link["ifname"] for link in json.loads(in_netns(host, "ip", "-j", "link", "show", "master", bridge))]


def networks_of(host) -> list[str]:
    conn = libvirt.open(host.uri)
    try:
        return [n.name() for n in conn.listAllNetworks(0)]
    finally:
        conn.close()


@pytest.fixture
def host_bridge(own_host):
    in_netns(own_host, "ip", "link", "add", BRIDGE, "type", "bridge")
    in_netns(own_host, "ip", "link", "set", BRIDGE, "up")
    yield BRIDGE
    in_netns(own_host, "ip", "link", "del", BRIDGE)


def test_bridge_network_carries_a_guest_nic_and_reads_back_without_diff(own_host, host_bridge):
    np_, dp = NetworkProvider(), DomainProvider()
    props = checked(np_, {"host_uri": own_host.uri, "name": "br-lan", "mode": "bridge", "bridge": host_bridge,
                          "netns": own_host.netns, "cidr": "192.168.77.0/24"})
    net = np_.create(props)
    dom = None
    try:
        live = xmlmodel.Network.from_xml(libvirt.open(own_host.uri).networkLookupByName("br-lan").XMLDesc(0))
        assert (live.forward_mode, live.bridge_name, live.ips) == ("bridge", BRIDGE, [])
        assert net.outs["active"] is True and net.outs["gateway"] is None
        assert np_.diff(net.id, np_.read(net.id, net.outs).outs, props).changes is False

        dom = dp.create(checked(dp, {"host_uri": own_host.uri, "name": "br-vm", "domain_type": "qemu",
                                     "boot": "bios", "memory": 256 * 1024**2, "vcpus": 1, "shutdown_timeout_s": 1,
                                     "nics": [{"network": "br-lan", "mac": "52:54:00:77:00:01"}]}))
        # libvirt plugged the guest's tap into the host bridge, not into a bridge of its own
        tap = wait_for("the guest's tap on the host bridge", lambda: ports_of(own_host, host_bridge))
        assert len(tap) == 1
    finally:
        if dom is not None:
            dp.delete(dom.id, dom.outs)
        np_.delete(net.id, net.outs)
    assert "br-lan" not in networks_of(own_host)
    assert ports_of(own_host, host_bridge) == []   # nothing left on the bridge; the bridge itself is not ours


def test_a_bridge_that_is_missing_in_the_namespace_or_no_bridge_is_refused(own_host):
    np_ = NetworkProvider()
    props = checked(np_, {"host_uri": own_host.uri, "name": "br-none", "mode": "bridge", "bridge": "vdbr-missing",
                          "netns": own_host.netns})
    with pytest.raises(VdeskError, match=rf"bridge 'vdbr-missing' does not exist on host .* \(network namespace "
                                         rf"{own_host.netns}\)"):
        np_.create(props)
    in_netns(own_host, "ip", "link", "add", "vdnb-veth0", "type", "veth", "peer", "name", "vdnb-veth1")
    try:
        with pytest.raises(VdeskError, match=r"'vdnb-veth0' on host .* is not a bridge \(its type is veth\)"):
            np_.create(dict(props, bridge="vdnb-veth0"))
    finally:
        in_netns(own_host, "ip", "link", "del", "vdnb-veth0")   # and its peer
    assert "br-none" not in networks_of(own_host)


def test_dual_stack_network_serves_both_families(own_host):
    np_ = NetworkProvider()
    props = checked(np_, {"host_uri": own_host.uri, "name": "ds-lan", "cidr": "10.216.0.0/24",
                          "cidr6": "fd00:216::/64"})
    net = np_.create(props)
    bridge = net.outs["bridge_name"]
    conf = own_host.state_dir / "lib" / "dnsmasq" / "ds-lan.conf"
    try:
        assert (net.outs["gateway"], net.outs["gateway6"]) == ("10.216.0.1", "fd00:216::1")

        def addresses():
            [link] = json.loads(in_netns(own_host, "ip", "-j", "addr", "show", "dev", bridge))
            return {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a.get("scope") == "global"}
        wait_for("both gateways on the bridge", lambda: addresses() == {"10.216.0.1/24", "fd00:216::1/64"})

        # dnsmasq (libvirt's, for this network) hands out both families and advertises the IPv6 prefix
        lines = conf.read_text().splitlines()
        assert "dhcp-range=10.216.0.2,10.216.0.254,255.255.255.0" in lines
        assert "dhcp-range=fd00:216::2,fd00:216::ffff,64" in lines
        assert "enable-ra" in lines

        def dhcp_ports():
            return {row.split()[3].rsplit(":", 1)[1] for row in in_netns(own_host, "ss", "-Hlunp").splitlines()
                    if "dnsmasq" in row}
        wait_for("dnsmasq listening for DHCPv4 and DHCPv6", lambda: {"67", "547"} <= dhcp_ports())

        assert np_.diff(net.id, np_.read(net.id, net.outs).outs, props).changes is False
        with pytest.raises(VdeskError, match=r"cidr6 fd00:216::/56 overlaps fd00:216::/64 of existing network"):
            np_.create(checked(np_, {"host_uri": own_host.uri, "name": "ds-lan2", "cidr": "10.217.0.0/24",
                                     "cidr6": "fd00:216::/56"}))
    finally:
        np_.delete(net.id, net.outs)
    assert not {"ds-lan", "ds-lan2"} & set(networks_of(own_host))
    links = json.loads(in_netns(own_host, "ip", "-j", "link", "show"))
    assert bridge not in [link["ifname"] for link in links]
    assert not conf.exists()
