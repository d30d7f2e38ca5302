"""Breadth on the project's own libvirtd: network modes and IPv6, UEFI with NVRAM,
several disks and NICs. Nothing here boots an OS."""
from __future__ import annotations

import ipaddress
import os

import libvirt
import pytest

from components import xmlmodel
from components.resources.domain import DomainProvider
from components.resources.network import NetworkProvider
from components.resources.pool import PoolProvider
from components.resources.volume import VolumeProvider
from tests.support.providers import checked

pytestmark = [pytest.mark.integration, pytest.mark.guests]


@pytest.mark.parametrize("mode,cidr", [
    ("nat", "10.210.0.0/24"), ("isolated", "10.211.0.0/24"), ("route", "10.212.0.0/24"),
    ("open", "10.213.0.0/24"), ("isolated", "fd00:214::/64"),
])
def test_network_modes_start_and_read_back_without_diff(own_host, mode, cidr):
    np_ = NetworkProvider()
    props = checked(np_, {"host_uri": own_host.uri, "name": f"m-{mode}-{cidr[3:6]}".replace(":", ""),
                          "mode": mode, "cidr": cidr})
    created = np_.create(props)
    try:
        live = xmlmodel.Network.from_xml(libvirt.open(own_host.uri).networkLookupByName(props["name"]).XMLDesc(0))
        assert (live.forward_mode or "isolated") == mode
        assert ipaddress.ip_address(live.ips[0].address) in ipaddress.ip_network(cidr)
        assert created.outs["active"] is True
        assert np_.diff(created.id, np_.read(created.id, created.outs).outs, props).changes is False
    finally:
        np_.delete(created.id, created.outs)


def test_uefi_domain_gets_nvram_and_delete_removes_it(own_host):
    dp = DomainProvider()
    props = checked(dp, {"host_uri": own_host.uri, "name": "uefi-vm", "domain_type": "qemu", "boot": "uefi",
                         "memory": 256 * 1024**2, "vcpus": 1, "running": False, "shutdown_timeout_s": 2})
    created = dp.create(props)
    conn = libvirt.open(own_host.uri)
    try:
        assert xmlmodel.Domain.from_xml(conn.lookupByName("uefi-vm").XMLDesc(0)).firmware == "efi"
        dp.update(created.id, created.outs, dict(props, running=True))
        live = conn.lookupByName("uefi-vm").XMLDesc(0)
        assert "<loader" in live and "<nvram" in live     # libvirt picked OVMF for firmware='efi'
        path = _nvram_path(live)
        host_path = own_host.state_dir / "lib" / os.path.relpath(path, "/var/lib/libvirt")
        assert host_path.exists()                          # the first start wrote this guest's NVRAM
    finally:
        dp.delete(created.id, created.outs)
    assert "uefi-vm" not in [d.name() for d in conn.listAllDomains(0)]
    assert not host_path.exists(), "undefine must remove the NVRAM file"


def _nvram_path(xml: str) -> str:
    from lxml import etree
    return etree.fromstring(xml.encode()).findtext("os/nvram")


def test_several_disks_and_nics_with_stable_macs(own_host, tmp_path):
    pp, vp, np_, dp = PoolProvider(), VolumeProvider(), NetworkProvider(), DomainProvider()
    pool = pp.create(checked(pp, {"host_uri": own_host.uri, "name": "multi", "path": str(tmp_path / "p")}))
    nets = [np_.create(checked(np_, {"host_uri": own_host.uri, "name": f"multi-{i}",
                                     "cidr": f"10.22{i}.0.0/24"})) for i in range(2)]
    vols = [vp.create(checked(vp, {"host_uri": own_host.uri, "pool": "multi", "name": f"d{i}.qcow2",
                                   "capacity_bytes": 64 * 1024**2})) for i in range(2)]
    macs = ["52:54:00:22:00:01", "52:54:00:22:00:02"]
    props = checked(dp, {"host_uri": own_host.uri, "name": "multi-vm", "domain_type": "qemu", "boot": "bios",
                         "memory": 256 * 1024**2, "vcpus": 2, "shutdown_timeout_s": 1,
                         "disks": [{"path": v.outs["path"], "format": "qcow2"} for v in vols],
                         "nics": [{"network": f"multi-{i}", "mac": macs[i]} for i in range(2)]})
    dom = dp.create(props)
    try:
        live = xmlmodel.Domain.from_xml(libvirt.open(own_host.uri).lookupByName("multi-vm").XMLDesc(0))
        assert [d.target_dev for d in live.disks] == ["vda", "vdb"]
        assert [i.mac for i in live.interfaces] == macs
        # a refresh of the running domain reports exactly the declaration
        assert dp.diff(dom.id, dp.read(dom.id, dom.outs).outs, props).changes is False
    finally:
        dp.delete(dom.id, dom.outs)
        for v in vols:
            vp.delete(v.id, v.outs)
        for n in nets:
            np_.delete(n.id, n.outs)
        pp.delete(pool.id, pool.outs)


def test_machine_type_and_cpu_topology_read_back_without_diff_and_change_in_place(own_host):
    """libvirt stores q35 as pc-q35-<version>: that must not look like drift, and pc -> q35 keeps the domain."""
    dp = DomainProvider()
    props = checked(dp, {"host_uri": own_host.uri, "name": "hw-vm", "domain_type": "qemu", "boot": "bios",
                         "memory": 256 * 1024**2, "vcpus": 2, "max_vcpus": 4, "machine": "pc",
                         "cpu_topology": {"sockets": 1, "cores": 2, "threads": 2},
                         "running": False, "shutdown_timeout_s": 2})
    created = dp.create(props)
    conn = libvirt.open(own_host.uri)
    try:
        live = xmlmodel.Domain.from_xml(conn.lookupByName("hw-vm").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert live.machine.startswith("pc-i440fx-"), live.machine
        assert (live.cpu_sockets, live.cpu_cores, live.cpu_threads, live.vcpus) == (1, 2, 2, 4)
        assert dp.diff(created.id, dp.read(created.id, created.outs).outs, props).changes is False
        news = checked(dp, dict(props, machine="q35"))
        assert dp.diff(created.id, created.outs, news).replaces == []
        dp.update(created.id, created.outs, news)
        dom = conn.lookupByName("hw-vm")
        assert dom.UUIDString() == created.id
        assert xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).machine.startswith("pc-q35-")
        dp.update(created.id, news, dict(news, running=True))   # and qemu accepts the declared hardware
        assert dom.isActive()
    finally:
        dp.delete(created.id, created.outs)
        conn.close()
