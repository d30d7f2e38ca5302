"""Providers against libvirt's own test driver: a real libvirt API with no daemon."""
import libvirt
import pytest

from components import xmlmodel
from components.resources.domain import DomainProvider, desired_model
from components.errors import VdeskError
from components.resources.network import NetworkProvider
from components.resources.pool import PoolProvider
from components.resources.volume import VolumeProvider
from tests.support.providers import checked

URI = "test:///default"


@pytest.fixture
def pool(tmp_path, conn):
    provider = PoolProvider()
    props = checked(provider, {"host_uri": URI, "name": "unit-pool", "path": str(tmp_path / "pool")})
    created = provider.create(props)
    yield created.outs
    if "unit-pool" in conn.listStoragePools():  # a test may have deleted it already
        for vol in conn.storagePoolLookupByName("unit-pool").listAllVolumes(0):
            vol.delete(0)
        provider.delete(created.id, created.outs)


def test_pool_create_read_delete(pool, conn):
    assert pool["active"] and pool["path"].endswith("/pool")
    provider = PoolProvider()
    assert provider.read(pool["uuid"], pool).id == pool["uuid"]
    provider.delete(pool["uuid"], pool)
    assert "unit-pool" not in conn.listStoragePools() + conn.listDefinedStoragePools()
    assert provider.read(pool["uuid"], pool).id == ""   # deleted out of band -> recreated on next up
    provider.delete(pool["uuid"], pool)                  # deleting what is gone is quiet


def test_pool_refuses_to_delete_volumes_it_does_not_own(pool, conn):
    p = conn.storagePoolLookupByName("unit-pool")
    p.createXML(xmlmodel.Volume(name="someone-elses.qcow2", capacity=1024**2, format="qcow2").to_xml(), 0)
    with pytest.raises(VdeskError, match="still holds volumes vdesk does not own: someone-elses.qcow2"):
        PoolProvider().delete(pool["uuid"], pool)
    assert p.isActive()


def test_volume_linked_clone_grow_and_backing_protection(pool, conn):
    vp = VolumeProvider()
    base = vp.create(checked(vp, {"host_uri": URI, "pool": "unit-pool", "name": "base.qcow2",
                                  "capacity_bytes": 2 * 1024**3}))
    clone_in = checked(vp, {"host_uri": URI, "pool": "unit-pool", "name": "desk.qcow2",
                            "capacity_bytes": 4 * 1024**3, "backing_path": base.outs["path"]})
    clone = vp.create(clone_in)
    live = xmlmodel.Volume.from_xml(conn.storageVolLookupByPath(clone.outs["path"]).XMLDesc(0))
    assert live.backing_path == base.outs["path"] and live.capacity == 4 * 1024**3

    with pytest.raises(VdeskError, match="backing store of desk.qcow2"):
        vp.delete(base.id, base.outs)

    # Growing is an in-place update (the resize itself is exercised on the project's libvirtd:
    # the test driver has no virStorageVolResize).
    grown = dict(clone_in, capacity_bytes=6 * 1024**3)
    assert vp.diff(clone.id, clone.outs, grown).replaces == []

    shrink = vp.check(grown, dict(grown, capacity_bytes=1024**3))
    assert [f.property for f in shrink.failures] == ["capacity_bytes"]
    assert "only growing is supported" in shrink.failures[0].reason

    vp.delete(clone.id, clone.outs)
    vp.delete(base.id, base.outs)
    assert conn.storagePoolLookupByName("unit-pool").listVolumes() == []


def test_volume_check_rejects_missing_import_source():
    result = VolumeProvider().check({}, {"host_uri": URI, "pool": "p", "name": "x.qcow2",
                                         "source_path": "/nonexistent/image.qcow2"})
    assert [(f.property, f.reason) for f in result.failures] == [
        ("source_path", "'/nonexistent/image.qcow2' does not exist or is not a file")]


def test_volume_check_waits_for_an_import_source_known_only_after_apply():
    """A recipe image's files exist once its build has run: at preview, the path is unknown."""
    from pulumi.output import Unknown
    for unknown in (Unknown(), "04da6b54-80e4-46f7-96ec-b56ff0331ba9"):
        result = VolumeProvider().check({}, {"host_uri": URI, "pool": "p", "name": "x.qcow2",
                                             "source_path": unknown, "source_id": "0123456789ab"})
        assert result.failures == []


def test_network_create_overlap_and_drift(conn):
    np_ = NetworkProvider()
    props = checked(np_, {"host_uri": URI, "name": "unit-lan", "cidr": "10.91.0.0/24"})
    created = np_.create(props)
    try:
        live = xmlmodel.Network.from_xml(conn.networkLookupByName("unit-lan").XMLDesc(0))
        assert live.ips[0].address == "10.91.0.1"
        assert live.ips[0].dhcp_ranges[0].start == "10.91.0.2"
        with pytest.raises(VdeskError, match="overlaps 10.91.0.0/24 of existing network 'unit-lan'"):
            np_.create(checked(np_, {"host_uri": URI, "name": "unit-lan2", "cidr": "10.91.0.128/25"}))
        # A refresh reports what libvirt has; diff against the declaration then shows the change.
        refreshed = np_.read(created.id, created.outs)
        assert np_.diff(created.id, refreshed.outs, props).changes is False
    finally:
        np_.delete(created.id, created.outs)
    assert "unit-lan" not in conn.listNetworks() + conn.listDefinedNetworks()


def test_network_check_names_bad_fields():
    failures = NetworkProvider().check({}, {"host_uri": URI, "name": "Bad_Name", "cidr": "10.0.0.1/24",
                                            "mode": "bridged"}).failures
    assert sorted(f.property for f in failures) == ["cidr", "mode", "name"]


def domain_props(**over):
    props = {"host_uri": URI, "name": "unit-desk", "domain_type": "test", "memory_mib": 512, "vcpus": 1,
             "kernel": "/boot/vmlinuz", "cmdline": "root=/dev/vda", "disks": [], "nics": []}
    props.update(over)
    return checked(DomainProvider(), props)


def test_domain_lifecycle_and_in_place_updates(conn):
    dp = DomainProvider()
    props = domain_props()
    created = dp.create(props)
    try:
        dom = conn.lookupByName("unit-desk")
        assert dom.isActive() and created.outs["state"] == "running"
        # memory and vCPU changes update the same domain, never replace it
        bigger = dict(props, memory=768 * 1024**2, vcpus=2)
        diff = dp.diff(created.id, created.outs, bigger)
        assert diff.changes and diff.replaces == []
        updated = dp.update(created.id, created.outs, bigger).outs
        live = xmlmodel.Domain.from_xml(conn.lookupByName("unit-desk").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert (live.memory_kib, live.vcpus) == (768 * 1024, 2)
        assert conn.lookupByName("unit-desk").UUIDString() == created.id
        # desired power state
        stopped = dp.update(created.id, updated, dict(bigger, running=False)).outs
        assert stopped["state"] == "stopped" and not conn.lookupByName("unit-desk").isActive()
        # drift: memory changed behind vdesk's back shows up in a refresh as a diff
        conn.lookupByName("unit-desk").setMemoryFlags(1024 * 1024, libvirt.VIR_DOMAIN_AFFECT_CONFIG
                                                      | libvirt.VIR_DOMAIN_MEM_MAXIMUM)
        conn.lookupByName("unit-desk").setMemoryFlags(1024 * 1024, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        refreshed = dp.read(created.id, stopped).outs
        assert refreshed["memory"] == 1024 * 1024**2
        assert dp.diff(created.id, refreshed, dict(bigger, running=False)).changes
    finally:
        dp.delete(created.id, created.outs)
    assert "unit-desk" not in [d.name() for d in conn.listAllDomains(0)]
    assert dp.read(created.id, created.outs).id == ""


def test_domain_name_change_replaces_and_boot_kernel_needs_a_kernel():
    dp = DomainProvider()
    props = domain_props()
    assert dp.diff("id", props, dict(props, name="other")).replaces == ["name"]
    failures = dp.check({}, dict(props, kernel=None)).failures
    assert [f.property for f in failures] == ["kernel"]


def test_domain_refuses_to_adopt_an_existing_domain_silently(conn):
    dp = DomainProvider()
    created = dp.create(domain_props(name="unit-twice"))
    try:
        with pytest.raises(VdeskError, match="already exists.*set adopt: true"):
            dp.create(domain_props(name="unit-twice"))
    finally:
        dp.delete(created.id, created.outs)


def test_numbers_arrive_as_integers_even_when_the_wire_made_them_floats(conn):
    """protobuf sends 22 as 22.0, also inside lists; providers must see 22 again."""
    from components.resources.readiness import ReadinessProvider
    seen = {}

    class Probe(ReadinessProvider):
        def create(self, props):
            seen.update(props)
            return None

    Probe().create({"checks": [{"port": 22.0}], "address_timeout_s": 600.0, "ratio": 0.5})
    assert seen == {"checks": [{"port": 22}], "address_timeout_s": 600, "ratio": 0.5}
    assert type(seen["checks"][0]["port"]) is int


def test_check_accepts_values_known_only_after_apply():
    """In a preview, inputs that come from other resources' outputs arrive as Unknown objects."""
    from pulumi.output import Unknown
    from components.resources.seed import SeedProvider
    result = SeedProvider().check({}, {"host_uri": URI, "pool": Unknown(), "name": "s.iso", "user_data": Unknown(),
                                       "meta_data": "x", "network_config": "y"})
    assert result.failures == []


def test_a_rewritten_seed_is_updated_in_place():
    """A template change (a new seed file for every desktop) rewrites each seed volume at its path: the
    domain, which names only that path, sees no change and no running desktop restarts."""
    from components.resources.seed import SeedProvider
    olds = {"host_uri": URI, "pool": "default", "name": "s.iso", "user_data": "#cloud-config\n", "meta_data": "x",
            "network_config": "y"}
    diff = SeedProvider().diff("key", olds, {**olds, "user_data": "#cloud-config\nwrite_files: []\n"})
    assert diff.changes and diff.replaces == []


# -- vCPU hot-plug: max_vcpus reserves room, vcpus moves within it live -----------------------------

def _vcpu_element(props):
    from components.resources.domain import desired_model
    return desired_model(props).to_element().find("vcpu")


def test_vcpu_xml_declares_maximum_and_current_only_when_there_is_room():
    """Unset max_vcpus keeps the XML vdesk always wrote; set, it is <vcpu placement current>MAX</vcpu>."""
    plain = _vcpu_element(domain_props(vcpus=2))
    assert (plain.text, dict(plain.attrib)) == ("2", {})
    assert dict(_vcpu_element(domain_props(vcpus=2, max_vcpus=2)).attrib) == {}
    room = _vcpu_element(domain_props(vcpus=2, max_vcpus=4))
    assert (room.text, dict(room.attrib)) == ("4", {"placement": "static", "current": "2"})


def test_check_requires_max_vcpus_at_least_vcpus():
    dp = DomainProvider()
    failures = dp.check({}, dict(domain_props(), vcpus=4, max_vcpus=2)).failures
    assert [(f.property, f.reason) for f in failures] == [("max_vcpus", "max_vcpus: must be >= vcpus (4), got 2")]
    assert [f.property for f in dp.check({}, dict(domain_props(), max_vcpus=0)).failures] == ["max_vcpus"]
    from pulumi.output import Unknown
    assert dp.check({}, dict(domain_props(), vcpus=Unknown(), max_vcpus=2)).failures == []


@pytest.mark.parametrize("max_vcpus", [None, 1, 3])
def test_fresh_domain_reads_back_without_a_diff(conn, max_vcpus):
    """Declared or not, max_vcpus and vcpus read back as declared: no spurious diff after create."""
    dp = DomainProvider()
    props = domain_props(name="unit-vcpu-read", max_vcpus=max_vcpus)
    created = dp.create(props)
    try:
        refreshed = dp.read(created.id, created.outs).outs
        assert (refreshed["vcpus"], refreshed["max_vcpus"]) == (1, max_vcpus)
        assert dp.diff(created.id, refreshed, props).changes is False
    finally:
        dp.delete(created.id, created.outs)


def test_vcpus_within_max_are_hot_plugged_without_a_restart(conn, caplog):
    """On the test driver a restart gives the domain a new id, so an unchanged id means live."""
    caplog.set_level("INFO", logger="components.resources.domain")
    dp = DomainProvider()
    props = domain_props(name="unit-hotplug", memory_mib=512, vcpus=1, max_vcpus=3)
    created = dp.create(props)
    try:
        dom = conn.lookupByName("unit-hotplug")
        boot_id = dom.ID()

        def run_id():   # a fresh handle: virDomain.ID() answers from the handle it was looked up with
            return conn.lookupByName("unit-hotplug").ID()

        def config():
            live = xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            return live.vcpu_current or live.vcpus, live.vcpus

        up = dict(props, vcpus=3)
        assert dp.diff(created.id, created.outs, up).replaces == []
        outs = dp.update(created.id, created.outs, up).outs
        assert (run_id(), dom.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE), config()) == (boot_id, 3, (3, 3))
        assert outs["pending_restart"] is False and "vCPUs set to 3 live" in caplog.text

        # memory decrease and vCPU unplug together: both live
        down = dict(up, vcpus=2, memory=384 * 1024**2)
        outs = dp.update(created.id, outs, down).outs
        assert (run_id(), dom.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE), config()) == (boot_id, 2, (2, 3))
        assert dom.info()[2] == 384 * 1024 and outs["pending_restart"] is False

        # drift: `virsh setvcpus` on the running guest shows in a refresh, and an update puts it back live
        dom.setVcpusFlags(1, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        refreshed = dp.read(created.id, outs).outs
        assert (refreshed["vcpus"], refreshed["max_vcpus"]) == (1, 3)
        assert dp.diff(created.id, refreshed, down).changes
        dp.update(created.id, refreshed, down)
        assert (run_id(), dom.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE)) == (boot_id, 2)
        assert dp.diff(created.id, dp.read(created.id, outs).outs, down).changes is False
    finally:
        dp.delete(created.id, created.outs)


def test_declaring_the_maximum_that_is_already_there_changes_nothing(conn):
    """max_vcpus unset -> equal to vcpus: the same boot-time maximum, so no restart."""
    dp = DomainProvider()
    props = domain_props(name="unit-samemax", vcpus=2)
    created = dp.create(props)
    try:
        boot_id = conn.lookupByName("unit-samemax").ID()
        outs = dp.update(created.id, created.outs, dict(props, max_vcpus=2)).outs
        assert conn.lookupByName("unit-samemax").ID() == boot_id and outs["pending_restart"] is False
    finally:
        dp.delete(created.id, created.outs)


@pytest.mark.parametrize("policy", ["on-change", "never"])
def test_a_new_maximum_or_a_count_beyond_it_waits_for_a_restart(conn, policy):
    dp = DomainProvider()
    props = domain_props(name="unit-newmax", vcpus=1, max_vcpus=2, restart_policy=policy, shutdown_timeout_s=1)
    created = dp.create(props)
    try:
        dom = conn.lookupByName("unit-newmax")
        boot_id = dom.ID()
        wider = dict(props, vcpus=3, max_vcpus=4)
        outs = dp.update(created.id, created.outs, wider).outs
        live = xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert (live.vcpu_current, live.vcpus) == (3, 4)
        if policy == "on-change":   # restarted onto the new maximum
            assert conn.lookupByName("unit-newmax").ID() != boot_id and outs["pending_restart"] is False
            assert dom.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_VCPU_MAXIMUM) == 4
        else:                       # left running as it was, and said so
            assert conn.lookupByName("unit-newmax").ID() == boot_id and outs["pending_restart"] is True
            assert dom.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE) == 1
        # either way the refresh reports the declared (configured) counts: nothing to do again
        assert dp.diff(created.id, dp.read(created.id, outs).outs, wider).changes is False
    finally:
        dp.delete(created.id, created.outs)


def test_a_console_log_is_kept_by_libvirt_from_each_start_and_goes_with_the_domain(conn, tmp_path):
    """On an embedded host the serial console is logged to a file of vdesk's (append off: the current boot's),
    the log is inert (declaring one restarts nothing), and destroy removes it and its rotations."""
    dp = DomainProvider()
    log = tmp_path / "unit-console-log-console.log"
    created = dp.create(domain_props(name="unit-console-log", console_log_file=str(log)))
    try:
        live = xmlmodel.Domain.from_xml(conn.lookupByName("unit-console-log").XMLDesc(0))
        assert [(s.type, s.log_file, s.log_append) for s in live.serials] == [("pty", str(log), "off")]
        plain = domain_props(name="unit-console-log")
        assert dp.diff(created.id, created.outs, plain).changes is False
        assert [(s.log_file, s.log_append) for s in desired_model(plain).serials] == [(None, None)]
    finally:
        log.write_text("booted\n")              # (the test driver runs no virtlogd: the host's would write it)
        (tmp_path / f"{log.name}.0").write_text("the boot before\n")
        dp.delete(created.id, created.outs)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
