"""Adoption: taking over objects that exist already (made by hand, or left by a lost state).

On libvirt's test driver, which ships a `default` network, a `default-pool` and
a running `test` domain: an adopted object keeps its identity (UUID/key), its
in-place properties are brought to the declared values, and a mismatch in a
property that would force replacement is refused, naming the property,
before anything is touched.
"""
import libvirt
import pytest

from components import xmlmodel
from components.config.resolve import parse
from components.resources.domain import DomainProvider
from components.errors import InputError, VdeskError
from components.resources.network import NetworkProvider
from components.resources.pool import PoolProvider
from components.resources.volume import VolumeProvider

URI = "test:///default"


def check(provider, props, olds=None):
    return provider.check(olds or {}, props)


def _default_network(**over):
    return {"host_uri": URI, "name": "default", "mode": "nat", "cidr": "192.168.122.0/24", "adopt": True, **over}


def test_an_existing_network_is_adopted_in_place(conn):
    before = conn.networkLookupByName("default").UUIDString()
    np_ = NetworkProvider()
    result = check(np_, _default_network(dns_hosts=[{"ip": "192.168.122.9", "hostnames": ["files"]}]))
    assert result.failures == []
    created = np_.create(result.inputs)
    assert created.id == before, "adoption must keep the network, not make a new one"
    live = xmlmodel.Network.from_xml(conn.networkLookupByName("default").XMLDesc(0))
    assert [h.ip for h in live.dns_hosts] == ["192.168.122.9"], "declared DNS record applied to the adopted network"
    # Once adopted it is an ordinary resource: the next diff is empty.
    assert np_.diff(created.id, np_.read(created.id, created.outs).outs, result.inputs).changes is False
    np_.update(created.id, created.outs, dict(result.inputs, dns_hosts=[]))  # leave the driver as found


def test_adopting_a_network_that_differs_in_a_replace_property_fails_at_preview(conn):
    np_ = NetworkProvider()
    props = _default_network(cidr="10.55.0.0/24")
    failures = check(np_, props).failures
    assert [(f.property, f.reason) for f in failures] == [
        ("cidr", "cidr: the existing 'default' has '192.168.122.0/24', declared '10.55.0.0/24'; adoption never "
                 "replaces, so declare what exists")]
    with pytest.raises(VdeskError, match="cannot adopt 'default': cidr"):
        np_.create(dict(props, autostart=True, dhcp=True, dhcp_hosts=[], dns_hosts=[]))
    live = xmlmodel.Network.from_xml(conn.networkLookupByName("default").XMLDesc(0))
    assert live.ips[0].address == "192.168.122.1", "nothing was changed"


def test_without_adopt_an_existing_name_is_refused_and_says_how_to_adopt(conn):
    np_ = NetworkProvider()
    props = check(np_, _default_network(adopt=False)).inputs
    with pytest.raises(VdeskError, match="already exists.*set adopt: true"):
        np_.create(props)


def test_adopt_creates_what_does_not_exist_yet(conn):
    np_ = NetworkProvider()
    props = check(np_, {"host_uri": URI, "name": "adopt-new", "cidr": "10.56.0.0/24", "adopt": True}).inputs
    created = np_.create(props)
    try:
        assert conn.networkLookupByName("adopt-new").UUIDString() == created.id
    finally:
        np_.delete(created.id, created.outs)


def test_an_existing_pool_is_adopted_and_a_wrong_path_is_named(conn):
    pp = PoolProvider()
    existing = conn.storagePoolLookupByName("default-pool")
    path = xmlmodel.Pool.from_xml(existing.XMLDesc(0)).target_path
    wrong = check(pp, {"host_uri": URI, "name": "default-pool", "path": "/srv/elsewhere", "adopt": True}).failures
    assert [f.property for f in wrong] == ["path"] and path in wrong[0].reason
    result = check(pp, {"host_uri": URI, "name": "default-pool", "path": path, "adopt": True, "autostart": False})
    assert result.failures == []
    created = pp.create(result.inputs)
    assert created.id == existing.UUIDString()
    assert existing.autostart() == 0, "in-place property (autostart) brought to the declared value"
    pp.update(created.id, created.outs, dict(result.inputs, autostart=True))


def test_an_existing_volume_is_adopted_not_recreated(conn):
    """(Growing an adopted volume is update()'s grow, tested on the real libvirtd: the test driver cannot resize.)"""
    pool = conn.storagePoolLookupByName("default-pool")
    vol = pool.createXML(xmlmodel.Volume(name="adopt-disk.qcow2", format="qcow2", capacity=1024**3).to_xml(), 0)
    try:
        vp = VolumeProvider()
        props = check(vp, {"host_uri": URI, "pool": "default-pool", "name": "adopt-disk.qcow2",
                           "capacity_bytes": 1024**3, "adopt": True}).inputs
        created = vp.create(props)
        assert created.id == vol.key() and created.outs["path"] == vol.path()
        assert [v.name() for v in pool.listAllVolumes(0)].count("adopt-disk.qcow2") == 1
    finally:
        vol.delete(0)


def _domain(**over):
    return {"host_uri": URI, "name": "adopt-vm", "domain_type": "test", "memory_mib": 768, "vcpus": 1,
            "kernel": "/boot/vmlinuz", "cmdline": "root=/dev/vda", "disks": [], "nics": [], "adopt": True,
            "running": True, "shutdown_timeout_s": 1, **over}


@pytest.fixture
def foreign_domain(conn):
    """A running domain that vdesk did not make."""
    xml = xmlmodel.Domain(type="test", name="adopt-vm", memory_kib=512 * 1024, current_memory_kib=512 * 1024,
                          vcpus=1, os_type="hvm", arch="x86_64").to_xml()
    dom = conn.defineXML(xml)
    dom.create()
    yield dom
    if "adopt-vm" in [d.name() for d in conn.listAllDomains(0)]:
        DomainProvider().delete(dom.UUIDString(), _domain())


def test_a_running_domain_is_adopted_updated_and_booted_once_with_its_seed(conn, foreign_domain):
    dp = DomainProvider()
    uuid, first_boot = foreign_domain.UUIDString(), foreign_domain.ID()
    created = dp.create(check(dp, _domain()).inputs)
    dom = conn.lookupByName("adopt-vm")
    assert created.id == uuid, "adopted, not replaced"
    assert xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).memory_kib == 768 * 1024
    assert dom.isActive() and dom.ID() != first_boot, "restarted once, so the guest boots with vdesk's seed"
    assert created.outs["pending_restart"] is False


def test_with_restart_policy_never_an_adopted_domain_keeps_running_and_says_so(conn, foreign_domain):
    dp = DomainProvider()
    first_boot = foreign_domain.ID()
    created = dp.create(check(dp, _domain(restart_policy="never")).inputs)
    assert conn.lookupByName("adopt-vm").ID() == first_boot
    assert created.outs["pending_restart"] is True


def _config(**pool_or_network):
    raw = {"hosts": {"local": {}}, "pools": {"default": {"host": "local"}},
           "networks": {"lan": {"host": "local", "cidr": "10.60.0.0/24"}}}
    for section, entry in pool_or_network.items():
        raw[section.rstrip("_")][next(iter(raw[section.rstrip("_")]))].update(entry)
    return raw


def test_config_adopt_takes_true_or_the_existing_name():
    cfg = parse(_config(pools={"adopt": "default", "path": "/var/lib/libvirt/images",
                                      "keep_on_destroy": True},
                               networks={"adopt": True}), stack="dev")
    assert (cfg.pools["default"].adopt, cfg.pools["default"].libvirt_name, cfg.pools["default"].keep_on_destroy) \
        == (True, "default", True)
    assert (cfg.networks["lan"].adopt, cfg.networks["lan"].libvirt_name) == (True, None)


@pytest.mark.parametrize("section,entry,path,message", [
    ("pools", {"adopt": "default"}, "pools.default.path", "is required to adopt a pool by name: declare its directory"),
    ("networks", {"adopt": 3}, "networks.lan.adopt", "must be true, false or the name of the existing object, got 3"),
    ("networks", {"keep_on_destroy": "yes"}, "networks.lan.keep_on_destroy", "must be true or false"),
])
def test_bad_adoption_settings_are_named(section, entry, path, message):
    with pytest.raises(InputError) as err:
        parse(_config(**{section: entry}), stack="dev")
    assert (path, message) in err.value.problems
