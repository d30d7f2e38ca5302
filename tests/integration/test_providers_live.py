"""In-place updates and drift, on the project's own libvirtd (qemu, TCG).

The guests here boot no OS (no disk to boot from): what is under test is
libvirt's view of the domain, which is all the providers change.
"""
from __future__ import annotations

import json
import subprocess

import libvirt
import pytest

from components import xmlmodel
from components.resources.domain import DomainProvider
from components.resources.network import NetworkProvider
from components.resources.pool import PoolProvider
from components.resources.volume import VolumeProvider
from tests.support.providers import checked

pytestmark = pytest.mark.integration


def virsh(host, *args):
    return subprocess.run(["virsh", "-c", host.uri, *args], check=True, capture_output=True, text=True,
                          timeout=60).stdout


@pytest.fixture
def pool(own_host, tmp_path):
    provider = PoolProvider()
    created = provider.create(checked(provider, {"host_uri": own_host.uri, "name": "live",
                                                 "path": str(tmp_path / "live-pool")}))
    yield created.outs
    provider.delete(created.id, created.outs)


@pytest.fixture
def net(own_host):
    provider = NetworkProvider()
    created = provider.create(checked(provider, {"host_uri": own_host.uri, "name": "live-lan",
                                                 "cidr": "10.201.0.0/24"}))
    yield created.outs
    provider.delete(created.id, created.outs)


def test_disk_grows_in_place_without_replacing(own_host, pool):
    vp = VolumeProvider()
    props = checked(vp, {"host_uri": own_host.uri, "pool": "live", "name": "grow.qcow2",
                         "capacity_bytes": 1024**3})
    vol = vp.create(props)
    try:
        grown = dict(props, capacity_bytes=3 * 1024**3)
        assert vp.diff(vol.id, vol.outs, grown).replaces == []
        out = vp.update(vol.id, vol.outs, grown).outs
        assert out["capacity_bytes"] == 3 * 1024**3
        qemu_img = subprocess.run(["qemu-img", "info", "--output=json", out["path"]], capture_output=True,
                                  text=True, check=True).stdout
        assert '"virtual-size": 3221225472' in qemu_img
        assert out["key"] == vol.outs["key"]  # the same file, not a new one
    finally:
        vp.delete(vol.id, vol.outs)


def test_memory_vcpu_and_power_state_update_the_same_domain(own_host, net):
    dp = DomainProvider()
    props = checked(dp, {"host_uri": own_host.uri, "name": "live-vm", "domain_type": "qemu", "boot": "bios",
                         "memory": 256 * 1024**2, "vcpus": 1, "nics": [{"network": "live-lan",
                                                                  "mac": "52:54:00:20:01:01"}],
                         "shutdown_timeout_s": 2})
    created = dp.create(props)
    try:
        conn = libvirt.open(own_host.uri)
        uuid = conn.lookupByName("live-vm").UUIDString()
        assert conn.lookupByName("live-vm").isActive()
        bigger = dict(props, memory=384 * 1024**2, vcpus=2)
        outs = dp.update(created.id, created.outs, bigger).outs
        dom = conn.lookupByName("live-vm")
        live = xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert (live.memory_kib, live.vcpus, dom.UUIDString()) == (384 * 1024, 2, uuid)
        # restart_policy on-change: the running guest was restarted onto the new size
        assert dom.isActive() and dom.info()[1] == 384 * 1024 and outs["pending_restart"] is False

        stopped = dp.update(created.id, outs, dict(bigger, running=False)).outs
        assert stopped["state"] == "stopped" and not conn.lookupByName("live-vm").isActive()
        started = dp.update(created.id, stopped, bigger).outs
        assert started["state"] == "running"

        # drift: memory changed with virsh shows up in a refresh, and an update restores it
        virsh(own_host, "setmaxmem", "live-vm", "512M", "--config")
        virsh(own_host, "setmem", "live-vm", "512M", "--config")
        refreshed = dp.read(created.id, started).outs
        assert refreshed["memory"] == 512 * 1024**2
        assert dp.diff(created.id, refreshed, bigger).changes
        dp.update(created.id, refreshed, bigger)
        live = xmlmodel.Domain.from_xml(conn.lookupByName("live-vm").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert live.memory_kib == 384 * 1024
        conn.close()
    finally:
        dp.delete(created.id, created.outs)


def test_domain_deleted_out_of_band_is_reported_gone(own_host):
    dp = DomainProvider()
    props = checked(dp, {"host_uri": own_host.uri, "name": "live-gone", "domain_type": "qemu", "boot": "bios",
                         "memory": 256 * 1024**2, "vcpus": 1, "running": False})
    created = dp.create(props)
    virsh(own_host, "undefine", "live-gone")
    assert dp.read(created.id, created.outs).id == ""
    dp.delete(created.id, created.outs)  # quiet: already gone


def test_volume_deleted_out_of_band_is_reported_gone(own_host, pool):
    vp = VolumeProvider()
    vol = vp.create(checked(vp, {"host_uri": own_host.uri, "pool": "live", "name": "gone.qcow2",
                                 "capacity_bytes": 1024**2}))
    virsh(own_host, "vol-delete", "--pool", "live", "gone.qcow2")
    assert vp.read(vol.id, vol.outs).id == ""


def test_dhcp_host_and_dns_record_change_without_restarting_the_network(own_host):
    np_ = NetworkProvider()
    props = checked(np_, {"host_uri": own_host.uri, "name": "live-dns", "cidr": "10.202.0.0/24",
                          "dhcp_hosts": [{"mac": "52:54:00:20:02:01", "ip": "10.202.0.5", "name": "alice"}],
                          "dns_hosts": [{"ip": "10.202.0.7", "hostnames": ["files"]}]})
    created = np_.create(props)
    try:
        conn = libvirt.open(own_host.uri)
        dnsmasq_before = _dnsmasq_pid(own_host, "live-dns")
        changed = dict(props,
                       dhcp_hosts=[{"mac": "52:54:00:20:02:01", "ip": "10.202.0.6", "name": "alice"},
                                   {"mac": "52:54:00:20:02:02", "ip": "10.202.0.8", "name": "bob"}],
                       dns_hosts=[{"ip": "10.202.0.9", "hostnames": ["files", "print"]}])
        diff = np_.diff(created.id, created.outs, changed)
        assert diff.changes and diff.replaces == []
        np_.update(created.id, created.outs, changed)
        for flags in (0, libvirt.VIR_NETWORK_XML_INACTIVE):   # live and persistent
            live = xmlmodel.Network.from_xml(conn.networkLookupByName("live-dns").XMLDesc(flags))
            assert [(h.mac, h.ip, h.name) for h in live.ips[0].dhcp_hosts] == [
                ("52:54:00:20:02:01", "10.202.0.6", "alice"), ("52:54:00:20:02:02", "10.202.0.8", "bob")]
            assert [(h.ip, h.hostnames) for h in live.dns_hosts] == [("10.202.0.9", ["files", "print"])]
        # the network was never restarted: same UUID, bridge up, and the same dnsmasq (reloaded by signal)
        assert conn.networkLookupByName("live-dns").isActive()
        assert _dnsmasq_pid(own_host, "live-dns") == dnsmasq_before
        refreshed = np_.read(created.id, created.outs).outs
        assert np_.diff(created.id, refreshed, changed).changes is False
        conn.close()
    finally:
        np_.delete(created.id, created.outs)


def test_dhcp_range_changes_without_restarting_the_network(own_host):
    """Narrowing the pool (to leave room for static addresses) is a network-update, not a new network.

    The bridge stays (same interface index: guests keep their link); libvirt restarts its dnsmasq, as
    dnsmasq cannot take a new range by signal, and the leases file carries the leases over.
    """
    np_ = NetworkProvider()
    props = checked(np_, {"host_uri": own_host.uri, "name": "live-range", "cidr": "10.203.0.0/24"})
    created = np_.create(props)
    try:
        conn = libvirt.open(own_host.uri)
        bridge_before = _ifindex(own_host, "vd-live-range")
        changed = checked(np_, dict(props, dhcp_range={"start": "10.203.0.100", "end": "10.203.0.150"}), props)
        assert np_.diff(created.id, created.outs, changed).replaces == []
        np_.update(created.id, created.outs, changed)
        for flags in (0, libvirt.VIR_NETWORK_XML_INACTIVE):   # live and persistent
            live = xmlmodel.Network.from_xml(conn.networkLookupByName("live-range").XMLDesc(flags))
            assert [(r.start, r.end) for r in live.ips[0].dhcp_ranges] == [("10.203.0.100", "10.203.0.150")]
        conf = (own_host.state_dir / "lib" / "dnsmasq" / "live-range.conf").read_text()
        assert "dhcp-range=10.203.0.100,10.203.0.150" in conf, conf
        assert _ifindex(own_host, "vd-live-range") == bridge_before
        assert conn.networkLookupByName("live-range").UUIDString() == created.id
        assert np_.diff(created.id, np_.read(created.id, changed).outs, changed).changes is False
        conn.close()
    finally:
        np_.delete(created.id, created.outs)


def _ifindex(host, device: str) -> int:
    out = subprocess.run(["nsenter", f"--net={host.netns}", "ip", "-j", "link", "show", "dev", device],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)[0]["ifindex"]


def _dnsmasq_pid(host, network: str) -> int:
    pidfile = host.state_dir / "run" / "libvirt" / "network" / f"{network}.pid"
    return int(pidfile.read_text().strip())


def test_accelerator_change_updates_the_domain_type_in_place(own_host):
    """domain_type (qemu <-> kvm) is an in-place row; the test driver only knows 'test'."""
    dp = DomainProvider()
    props = checked(dp, {"host_uri": own_host.uri, "name": "live-accel", "domain_type": "qemu", "boot": "bios",
                         "memory": 256 * 1024**2, "vcpus": 1, "running": False})
    created = dp.create(props)
    try:
        kvm = dict(props, domain_type="kvm")
        assert dp.diff(created.id, created.outs, kvm).replaces == []
        dp.update(created.id, created.outs, kvm)
        conn = libvirt.open(own_host.uri)
        dom = conn.lookupByName("live-accel")
        assert dom.UUIDString() == created.id
        assert xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).type == "kvm"
        conn.close()
    finally:
        dp.delete(created.id, created.outs)
