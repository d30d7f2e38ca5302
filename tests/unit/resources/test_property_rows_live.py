"""Walk docs/properties.md's in-place rows against libvirt's test driver.

For each row: create the object, apply an update that changes only that
property, and check that libvirt's object kept its identity (same UUID/key)
and now shows the new value. Rows the test driver cannot apply say why and
where they are verified instead.
"""
import libvirt
import pytest

from components import xmlmodel
from components import rootexec
from components.lifecycle.policy import IdlePolicy, policy_of
from components.lifecycle.schedule import Schedule, schedule_of, window_of
from components.resources.domain import DomainProvider
from components.resources.network import NetworkProvider
from components.resources.pool import PoolProvider

URI = "test:///default"


def _domain_base():
    return {"host_uri": URI, "name": "rows-vm", "domain_type": "test", "boot": "kernel", "memory": 512 * 1024**2,
            "vcpus": 1, "kernel": "/boot/vmlinuz", "cmdline": "root=/dev/vda", "disks": [], "nics": [],
            "restart_policy": "on-change", "shutdown_timeout_s": 1, "display_password": "basepass"}


def _dom_xml(conn):
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE   # SECURE: display passwords too
    return xmlmodel.Domain.from_xml(conn.lookupByName("rows-vm").XMLDesc(flags))


DOMAIN_ROWS = {
    "memory": (768 * 1024**2, lambda c: _dom_xml(c).memory_kib == 768 * 1024),
    "vcpus": (2, lambda c: _dom_xml(c).vcpus == 2),
    # room to hot-plug: maximum 2, still 1 online (at boot and in the running guest)
    "max_vcpus": (2, lambda c: (_dom_xml(c).vcpus, _dom_xml(c).vcpu_current) == (2, 1)
                  and c.lookupByName("rows-vm").vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE) == 1),
    "cpu_mode": ("host-passthrough", lambda c: _dom_xml(c).cpu_mode == "host-passthrough"),
    "cpu_model": ("qemu64", lambda c: (_dom_xml(c).cpu_mode, _dom_xml(c).cpu_model) == ("custom", "qemu64")),
    "cpu_pinning": (["2,3"], lambda c: [(p.vcpu, p.cpuset) for p in _dom_xml(c).vcpupins] == [(0, "2-3")]),
    "hostdevs": ([{"type": "pci", "address": "0000:01:00.0"}],
                 lambda c: [h.pci_address for h in _dom_xml(c).hostdevs] == ["0000:01:00.0"]),
    "cpu_topology": ({"sockets": 1, "cores": 1, "threads": 1},
                     lambda c: (_dom_xml(c).cpu_sockets, _dom_xml(c).cpu_cores, _dom_xml(c).cpu_threads) == (1, 1, 1)),
    "machine": ("pc", lambda c: _dom_xml(c).machine == "pc"),
    "kernel": ("/boot/vmlinuz-new", lambda c: _dom_xml(c).kernel == "/boot/vmlinuz-new"),
    "initrd": ("/boot/initrd-new", lambda c: _dom_xml(c).initrd == "/boot/initrd-new"),
    "cmdline": ("root=/dev/vda quiet", lambda c: _dom_xml(c).cmdline == "root=/dev/vda quiet"),
    "disks": ([{"path": "/var/lib/extra.qcow2", "format": "qcow2"}],
              lambda c: [d.source_file for d in _dom_xml(c).disks] == ["/var/lib/extra.qcow2"]),
    "nics": ([{"network": "default", "mac": "52:54:00:33:00:01"}],
             lambda c: [i.mac for i in _dom_xml(c).interfaces] == ["52:54:00:33:00:01"]),
    "shares": ([{"source": "/srv/docs", "tag": "docs", "readonly": True}],
               lambda c: [(f.source_dir, f.tag, f.binary == rootexec.installed_path("virtiofsd-ro"))
                          for f in _dom_xml(c).shared_dirs] == [("/srv/docs", "docs", True)]
               and _dom_xml(c).memory_access == "shared"),
    "video": ({"model": "virtio", "width": 1280, "height": 800},
              lambda c: [(v.model_type, v.resolution_x, v.resolution_y) for v in _dom_xml(c).videos]
              == [("virtio", 1280, 800)]),
    "tablet": (True, lambda c: [(i.type, i.bus) for i in _dom_xml(c).inputs] == [("tablet", "virtio")]),
    "vdagent": (True, lambda c: [ch.type for ch in _dom_xml(c).channels][-1] == "qemu-vdagent"),
    "idle": ({"after": 3600, "action": "shutdown", "warn": 60},       # in the live XML and the config alike
             lambda c: policy_of(c.lookupByName("rows-vm")) == IdlePolicy(after=3600, action="shutdown", warn=60)
             and "urn:vdesk:lifecycle:1" in c.lookupByName("rows-vm").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)),
    "schedule": ({"days": ["mon"], "start": "07:00", "stop": "20:00", "timezone": "UTC"},
                 lambda c: schedule_of(c.lookupByName("rows-vm")) == Schedule(days=["mon"], start="07:00",
                                                                              stop="20:00")),
    "running": (False, lambda c: not c.lookupByName("rows-vm").isActive()),
    "autostart": (True, lambda c: c.lookupByName("rows-vm").autostart() == 1),
    "graphics_listen": ("0.0.0.0", lambda c: _dom_xml(c).graphics[0].listen_address == "0.0.0.0"),
    "spice": (True, lambda c: [g.type for g in _dom_xml(c).graphics] == ["vnc", "spice"]),
    # the test driver cannot update a device live: the update falls back to restart_policy (a restart);
    # the live path (same qemu pid) is tested on the project's libvirtd (tests/integration/test_display_live.py)
    "display_password": ("rowspass", lambda c: [g.passwd for g in _dom_xml(c).graphics] == ["rowspass"]),
    "display_password_valid_to": ("2030-01-01T00:00:00", lambda c: _dom_xml(c).graphics[0].passwd_valid_to
                                  == "2030-01-01T00:00:00"),
    "restart_policy": ("never", lambda c: True),          # governs later updates only
    "apply_when": ("idle", lambda c: True),              # governs later updates only (tests/unit/lifecycle)
    # a window alone is not in the domain: only with apply_when: window (tests/unit/lifecycle/test_apply_when.py)
    "maintenance_window": ({"days": ["sat"], "start": "02:00", "stop": "05:00", "timezone": "UTC"},
                           lambda c: window_of(c.lookupByName("rows-vm")) is None),
    "shutdown_timeout_s": (5, lambda c: True),           # governs later shutdowns only
}
NOT_ON_TEST_DRIVER = {
    "domain_type": "the test driver only has type 'test'; kvm<->qemu is exercised on the project's libvirtd",
}


@pytest.mark.parametrize("prop", sorted(p for p, d in DomainProvider.PROPS.items() if not (d.replaces or d.inert)))
def test_domain_in_place_row(prop):
    if prop in NOT_ON_TEST_DRIVER:
        pytest.skip(NOT_ON_TEST_DRIVER[prop])
    assert prop in DOMAIN_ROWS, f"in-place row {prop} has no live check: add one"
    value, holds = DOMAIN_ROWS[prop]
    conn = libvirt.open(URI)   # the test driver's state lives while a connection is open
    dp = DomainProvider()
    props = dp.check({}, _domain_base()).inputs
    created = dp.create(props)
    try:
        news = dp.check(props, dict(props, **{prop: value})).inputs
        assert dp.diff(created.id, created.outs, news).replaces == []
        dp.update(created.id, created.outs, news)
        assert conn.lookupByName("rows-vm").UUIDString() == created.id, "replaced, not updated"
        assert holds(conn), f"{prop} not applied"
    finally:
        dp.delete(created.id, created.outs)
        conn.close()


NETWORK_ROWS = {
    "autostart": (False, lambda net: net.autostart() == 0),
    "dhcp_hosts": ([{"mac": "52:54:00:33:01:01", "ip": "10.92.0.9", "name": "x"}],
                   lambda net: [h.ip for h in xmlmodel.Network.from_xml(net.XMLDesc(0)).ips[0].dhcp_hosts]
                   == ["10.92.0.9"]),
    "dhcp_range": ({"start": "10.92.0.100", "end": "10.92.0.199"},
                   lambda net: [(r.start, r.end) for r in xmlmodel.Network.from_xml(net.XMLDesc(0)).ips[0].dhcp_ranges]
                   == [("10.92.0.100", "10.92.0.199")]),
    "dns_hosts": ([{"ip": "10.92.0.8", "hostnames": ["files"]}],
                  lambda net: [h.ip for h in xmlmodel.Network.from_xml(net.XMLDesc(0)).dns_hosts] == ["10.92.0.8"]),
}


@pytest.mark.parametrize("prop", sorted(p for p, d in NetworkProvider.PROPS.items() if not (d.replaces or d.inert)))
def test_network_in_place_row(prop):
    assert prop in NETWORK_ROWS, f"in-place row {prop} has no live check: add one"
    value, holds = NETWORK_ROWS[prop]
    conn = libvirt.open(URI)
    np_ = NetworkProvider()
    props = np_.check({}, {"host_uri": URI, "name": "rows-net", "cidr": "10.92.0.0/24"}).inputs
    created = np_.create(props)
    try:
        news = np_.check(props, dict(props, **{prop: value})).inputs
        np_.update(created.id, created.outs, news)
        net = conn.networkLookupByName("rows-net")
        assert net.UUIDString() == created.id and net.isActive()
        assert holds(net), f"{prop} not applied"
    finally:
        np_.delete(created.id, created.outs)
        conn.close()


def test_pool_in_place_row_autostart(tmp_path):
    assert [p for p, d in PoolProvider.PROPS.items() if not (d.replaces or d.inert)] == ["autostart"]
    conn = libvirt.open(URI)
    pp = PoolProvider()
    props = pp.check({}, {"host_uri": URI, "name": "rows-pool", "path": str(tmp_path)}).inputs
    created = pp.create(props)
    try:
        pp.update(created.id, created.outs, dict(props, autostart=False))
        pool = conn.storagePoolLookupByName("rows-pool")
        assert pool.UUIDString() == created.id and pool.autostart() == 0
    finally:
        pp.delete(created.id, created.outs)
        conn.close()
