"""Storage breadth on libvirt's test driver: full-copy volumes, logical (LVM) and netfs pools,
the pool-type capability check, and the config keys that reach them (disk_clone, pool sources).

The test driver is a real libvirt API without a daemon; it accepts logical and netfs pools
without touching devices or mounting anything. What only a real host can show (pvcreate on a
loop device, the missing device-mapper, bytes copied) is in
tests/integration/test_storage_breadth_live.py.
"""
from __future__ import annotations

import copy

import libvirt
import pulumi
import pytest

from components import xmlmodel
from components.config.resolve import parse
from components.errors import InputError, VdeskError
from components.resources.pool import PoolProvider, owns_storage, require_support, support_problem
from components.resources.volume import VolumeProvider
from components.xmlmodel import declared_properties
from tests.support.providers import checked
from tests.unit.config.test_program import after, mocks, raw_config  # noqa: F401  (mocks is a fixture)

URI = "test:///default"
GiB = 1024**3


def failures(provider, props):
    return [(f.property, f.reason) for f in provider.check({}, props).failures]


def _gone(conn, name):
    return name not in conn.listStoragePools() + conn.listDefinedStoragePools()


# --- the XML model ----------------------------------------------------------------------------------


def test_logical_and_netfs_pool_models_round_trip_through_libvirt(conn):
    logical = xmlmodel.Pool(type="logical", name="model-vg", source_name="model-vg", source_format="lvm2",
                            source_devices=[xmlmodel.PoolDevice(path="/dev/vdb"),
                                            xmlmodel.PoolDevice(path="/dev/vdc")],
                            target_path="/dev/model-vg")
    netfs = xmlmodel.Pool(type="netfs", name="model-nfs", source_host="files.example", source_dir="/srv/desks",
                          source_format="nfs", target_path="/mnt/model-nfs")
    for desired in (logical, netfs):
        assert xmlmodel.Pool.from_xml(desired.to_xml()) == desired
        pool = conn.storagePoolDefineXML(desired.to_xml(), 0)
        try:
            assert desired.differences(xmlmodel.Pool.from_xml(pool.XMLDesc(0))) == []
        finally:
            pool.undefine()


def test_storage_pool_capabilities_parse():
    caps = xmlmodel.StoragePoolCapabilities(pools=[
        xmlmodel.PoolTypeSupport(type="dir", supported=True),
        xmlmodel.PoolTypeSupport(type="zfs", supported=False)])
    parsed = xmlmodel.StoragePoolCapabilities.from_xml(caps.to_xml())
    assert [(p.type, p.supported) for p in parsed.pools] == [("dir", True), ("zfs", False)]


@pytest.mark.parametrize("cls,samples", [
    (xmlmodel.Pool, lambda: [
        xmlmodel.Pool(type="logical", name="a", uuid="u", source_devices=[xmlmodel.PoolDevice(path="/dev/x")],
                      source_name="a", source_format="lvm2", target_path="/dev/a", capacity=1, allocation=1,
                      available=1),
        xmlmodel.Pool(type="netfs", source_host="h", source_dir="/d")]),
    (xmlmodel.PoolDevice, lambda: [xmlmodel.PoolDevice(path="/dev/x")]),
    (xmlmodel.PoolTypeSupport, lambda: [xmlmodel.PoolTypeSupport(type="dir", supported=True)]),
    (xmlmodel.StoragePoolCapabilities, lambda: [xmlmodel.StoragePoolCapabilities(
        pools=[xmlmodel.PoolTypeSupport(type="dir", supported=True)])]),
])
def test_every_declared_pool_property_is_exercised(cls, samples):
    """Guard: a property no test sets is a property nobody knows works."""
    built = [cls.from_xml(s.to_xml()) for s in samples()]
    unset = [name for name, _ in declared_properties(cls) if all(getattr(s, name) in (None, []) for s in built)]
    assert unset == [], f"{cls.__name__} properties never exercised: {unset}"


# --- capability detection ---------------------------------------------------------------------------


def test_an_unsupported_pool_type_is_named_with_its_host():
    caps = xmlmodel.StoragePoolCapabilities(pools=[
        xmlmodel.PoolTypeSupport(type="dir", supported=True),
        xmlmodel.PoolTypeSupport(type="netfs", supported=True),
        xmlmodel.PoolTypeSupport(type="logical", supported=False)])
    assert support_problem(caps, "dir", "qemu+ssh://far/system") is None
    assert support_problem(caps, "logical", "qemu+ssh://far/system") == (
        "host qemu+ssh://far/system does not support 'logical' storage pools (its libvirt supports: dir, netfs)")
    # A type the host does not even list is unsupported too.
    assert "does not support 'zfs'" in support_problem(caps, "zfs", "qemu:///system")


def test_a_host_that_cannot_report_capabilities_is_not_refused(conn):
    with pytest.raises(libvirt.libvirtError) as no_call:
        conn.getStoragePoolCapabilities(0)   # the test driver lacks the call ...
    assert no_call.value.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT
    require_support(conn, "logical", URI)      # ... so defining the pool is left to tell


# --- logical pools ---------------------------------------------------------------------------------


def test_logical_pool_on_devices_fills_in_what_libvirt_would(conn):
    pp = PoolProvider()
    props = checked(pp, {"host_uri": URI, "name": "unit-vg", "type": "logical",
                         "source_devices": ["/dev/vdb", "/dev/vdc"]})
    assert (props["source_name"], props["path"]) == ("unit-vg", "/dev/unit-vg")
    assert owns_storage(props)
    created = pp.create(props)
    try:
        outs = created.outs
        assert outs["active"] and outs["capacity_bytes"] > 0 and outs["available_bytes"] > 0
        assert outs["source_devices"] == ["/dev/vdb", "/dev/vdc"] and outs["source_name"] == "unit-vg"
        live = xmlmodel.Pool.from_xml(conn.storagePoolLookupByName("unit-vg").XMLDesc(0))
        assert (live.type, live.source_format, live.target_path) == ("logical", "lvm2", "/dev/unit-vg")
        # read back: nothing to change, nothing to replace
        refreshed = pp.read(created.id, outs)
        assert refreshed.id == created.id
        diff = pp.diff(created.id, refreshed.outs, props)
        assert diff.changes is False and diff.replaces == []
        # another device is another volume group: replace
        assert pp.diff(created.id, refreshed.outs, dict(props, source_devices=["/dev/vdb"])).replaces == [
            "source_devices"]
    finally:
        pp.delete(created.id, created.outs)
    assert _gone(conn, "unit-vg")


def test_logical_pool_on_an_existing_volume_group_is_not_built_or_removed(conn):
    pp = PoolProvider()
    props = checked(pp, {"host_uri": URI, "name": "unit-premade", "type": "logical", "source_name": "team-vg"})
    assert props["path"] == "/dev/team-vg" and not owns_storage(props)
    created = pp.create(props)
    try:
        assert pp.diff(created.id, pp.read(created.id, created.outs).outs, props).changes is False
        assert created.outs["source_devices"] is None
    finally:
        pp.delete(created.id, created.outs)
    assert _gone(conn, "unit-premade")


def test_volumes_in_a_logical_pool_are_plain_block_volumes_on_the_test_driver(conn):
    """The test driver has no device-mapper to miss; the real failure is in the live tier."""
    pp, vp = PoolProvider(), VolumeProvider()
    pool = pp.create(checked(pp, {"host_uri": URI, "name": "unit-vg2", "type": "logical",
                                  "source_devices": ["/dev/vdd"]}))
    try:
        vol = vp.create(checked(vp, {"host_uri": URI, "pool": "unit-vg2", "name": "lv1", "format": "raw",
                                     "capacity_bytes": GiB}))
        assert vol.outs["path"] == "/dev/unit-vg2/lv1"
        with pytest.raises(VdeskError, match="still holds volumes vdesk does not own: lv1"):
            pp.delete(pool.id, pool.outs)
        vp.delete(vol.id, vol.outs)
    finally:
        pp.delete(pool.id, pool.outs)


# --- netfs pools -----------------------------------------------------------------------------------


def test_netfs_pool_lifecycle_with_the_default_format(conn, tmp_path):
    pp = PoolProvider()
    props = checked(pp, {"host_uri": URI, "name": "unit-nfs", "type": "netfs", "source_host": "127.0.0.1",
                         "source_dir": "/srv/desktops", "path": str(tmp_path / "mnt")})
    assert props["source_format"] == "auto"
    created = pp.create(props)
    try:
        outs = created.outs
        assert (outs["source_host"], outs["source_dir"], outs["source_format"]) == (
            "127.0.0.1", "/srv/desktops", "auto")
        assert outs["capacity_bytes"] > 0 and outs["path"] == str(tmp_path / "mnt")
        assert pp.diff(created.id, pp.read(created.id, outs).outs, props).changes is False
        assert pp.diff(created.id, outs, dict(props, source_format="nfs")).replaces == ["source_format"]
    finally:
        pp.delete(created.id, created.outs)
    assert _gone(conn, "unit-nfs")


def test_a_dir_pool_reads_back_without_source_properties(conn, tmp_path):
    pp = PoolProvider()
    props = checked(pp, {"host_uri": URI, "name": "unit-dir", "path": str(tmp_path / "dir")})
    created = pp.create(props)
    try:
        assert all(created.outs[k] is None for k in ("source_devices", "source_name", "source_host",
                                                      "source_dir", "source_format"))
        assert pp.diff(created.id, pp.read(created.id, created.outs).outs, props).changes is False
    finally:
        pp.delete(created.id, created.outs)


# --- check(): per type, naming the field -------------------------------------------------------------


BASE = {"host_uri": URI, "name": "p"}


@pytest.mark.parametrize("props,expected", [
    ({"type": "zfs", "path": "/x"}, [("type", "type: 'zfs' is not one of dir, logical, netfs")]),
    ({"type": "dir"}, [("path", "path is required for a dir pool (its target directory)")]),
    ({"type": "dir", "path": "/p", "source_devices": ["/dev/vdb"]},
     [("source_devices", "source_devices: only for logical pools, not dir")]),
    ({"type": "dir", "path": "/p", "source_host": "nas"},
     [("source_host", "source_host: only for netfs pools, not dir")]),
    ({"type": "logical", "source_devices": []},
     [("source_devices", "source_devices: must list at least one block device, e.g. [/dev/sdb]")]),
    ({"type": "logical", "source_devices": ["dev/vdb"]},
     [("source_devices", "source_devices: 'dev/vdb' must be a normalised absolute block device path, e.g. /dev/sdb")]),
    ({"type": "logical", "source_devices": ["/dev/vdb", "/dev/vdb"]},
     [("source_devices", "source_devices: lists a device twice")]),
    ({"type": "logical", "source_name": "-vg"},
     [("source_name", "source_name: '-vg' is not a volume group name: use letters, digits, '+', '_', '.' and '-', "
                      "not starting with '-'")]),
    ({"type": "logical", "source_name": "vg", "path": "/srv/vg"},
     [("path", "path: a logical pool's target is /dev/<source_name> (/dev/vg), not '/srv/vg'; leave path unset")]),
    ({"type": "logical", "source_name": "vg", "source_dir": "/x"},
     [("source_dir", "source_dir: only for netfs pools, not logical")]),
    ({"type": "netfs", "path": "/mnt/p"}, [("source_host", "source_host is required for a netfs pool"),
                                           ("source_dir", "source_dir is required for a netfs pool")]),
    ({"type": "netfs", "path": "/mnt/p", "source_host": "nas", "source_dir": "/x", "source_format": "smb"},
     [("source_format", "source_format: 'smb' is not one of nfs, cifs, glusterfs, auto")]),
    ({"type": "netfs", "path": "/mnt/p", "source_host": "nas box", "source_dir": "/x"},
     [("source_host", "source_host: 'nas box' is not a host name or IP address")]),
    ({"type": "netfs", "path": "/mnt/p", "source_host": "nas", "source_dir": "/share", "source_format": "cifs"},
     [("source_dir", "source_dir: '/share': a cifs share is named without a leading '/', e.g. 'desktops'")]),
    ({"type": "netfs", "path": "/mnt/p", "source_host": "nas", "source_dir": "export"},
     [("source_dir", "source_dir: 'export' must be the absolute exported path, e.g. /srv/desktops")]),
    ({"type": "netfs", "source_host": "nas", "source_dir": "/x"},
     [("path", "path is required for a netfs pool (its target directory)")]),
], ids=lambda v: "" if isinstance(v, list) else "-".join(f"{k}" for k in v))
def test_pool_check_names_the_field(props, expected):
    assert failures(PoolProvider(), {**BASE, **props}) == expected


def test_good_pools_of_every_type_pass_check():
    pp = PoolProvider()
    checked(pp, {**BASE, "path": "/srv/p"})
    checked(pp, {**BASE, "type": "logical", "source_devices": ["/dev/vdb"], "source_name": "vg0"})
    checked(pp, {**BASE, "type": "logical", "source_name": "vg0", "path": "/dev/vg0"})
    checked(pp, {**BASE, "type": "netfs", "path": "/mnt/p", "source_host": "10.0.0.5", "source_dir": "/export",
                 "source_format": "nfs"})
    checked(pp, {**BASE, "type": "netfs", "path": "/mnt/p", "source_host": "nas", "source_dir": "desktops",
                 "source_format": "cifs"})


# --- full-copy volumes -----------------------------------------------------------------------------


@pytest.fixture
def dir_pool(tmp_path, conn):
    pp = PoolProvider()
    created = pp.create(checked(pp, {"host_uri": URI, "name": "unit-copies", "path": str(tmp_path / "pool")}))
    yield "unit-copies"
    for vol in conn.storagePoolLookupByName("unit-copies").listAllVolumes(0):
        vol.delete(0)
    pp.delete(created.id, created.outs)


def test_full_copy_has_no_backing_store_and_does_not_pin_its_source(dir_pool, conn):
    vp = VolumeProvider()
    base = vp.create(checked(vp, {"host_uri": URI, "pool": dir_pool, "name": "base.qcow2", "capacity_bytes": GiB}))
    copy_in = checked(vp, {"host_uri": URI, "pool": dir_pool, "name": "copy.qcow2", "capacity_bytes": 3 * GiB,
                           "copy_of": base.outs["path"]})
    copied = vp.create(copy_in)
    live = xmlmodel.Volume.from_xml(conn.storageVolLookupByPath(copied.outs["path"]).XMLDesc(0))
    assert live.backing_path is None and live.capacity == 3 * GiB and live.format == "qcow2"
    assert vp.diff(copied.id, vp.read(copied.id, copied.outs).outs, copy_in).changes is False
    assert vp.diff(copied.id, copied.outs, dict(copy_in, copy_of="/elsewhere.qcow2")).replaces == ["copy_of"]

    vp.delete(base.id, base.outs)          # not a backing store: deleting the source is allowed
    assert conn.storagePoolLookupByName(dir_pool).listVolumes() == ["copy.qcow2"]
    vp.delete(copied.id, copied.outs)


def test_full_copy_of_a_path_that_is_no_volume_names_copy_of(dir_pool):
    vp = VolumeProvider()
    with pytest.raises(VdeskError, match=r"volume 'c.qcow2': copy_of '/nowhere/x.qcow2' is not a volume on "
                                         r"test:///default"):
        vp.create(checked(vp, {"host_uri": URI, "pool": dir_pool, "name": "c.qcow2",
                               "copy_of": "/nowhere/x.qcow2"}))


@pytest.mark.parametrize("extra,expected", [
    ({"backing_path": "/p/base.qcow2"},
     [("copy_of", "copy_of (full copy) excludes backing_path: give only one of source_path (import), "
                  "backing_path (linked clone) or copy_of (full copy)")]),
    ({"source_path": __file__},
     [("copy_of", "copy_of (full copy) excludes source_path: give only one of source_path (import), "
                  "backing_path (linked clone) or copy_of (full copy)")]),
])
def test_copy_of_is_exclusive_with_the_other_sources(extra, expected):
    props = {"host_uri": URI, "pool": "p", "name": "x.qcow2", "copy_of": "/p/base.qcow2", **extra}
    assert failures(VolumeProvider(), props) == expected


def test_copy_of_must_be_an_absolute_path():
    assert failures(VolumeProvider(), {"host_uri": URI, "pool": "p", "name": "x.qcow2", "copy_of": "base.qcow2"}) \
        == [("copy_of", "copy_of: 'base.qcow2' must be the absolute path of a volume on the host")]


# --- config ----------------------------------------------------------------------------------------

CONFIG = {
    "hosts": {"local": {"uri": "embedded", "accelerator": "tcg"}},
    "pools": {"main": {"host": "local"}},
    "networks": {"lan": {"host": "local", "cidr": "10.77.0.0/24"}},
    "images": {"debian12": {"golden": "debian12"}},
    "desktops": {"kiosk": {"pool": "main", "network": "lan", "image": "debian12", "disk_clone": "full"}},
    "profiles": {"standard": {"pool": "main", "network": "lan", "image": "debian12", "disk_clone": "full"},
                 "plain": {"pool": "main", "network": "lan", "image": "debian12"}},
    "users": [{"name": "alice", "profile": "standard"},
              {"name": "bob", "profile": "standard", "disk_clone": "linked"},
              {"name": "carol", "profile": "plain"}],
}


def problems_of(raw):
    with pytest.raises(InputError) as exc:
        parse(raw, stack="unit")
    return exc.value.problems


def test_disk_clone_default_profile_and_user_override():
    cfg = parse(CONFIG, stack="unit")
    assert cfg.profiles["standard"].disk_clone == "full" and cfg.profiles["plain"].disk_clone == "linked"
    assert {n: d.settings.disk_clone for n, d in cfg.desktops.items()} == {
        "kiosk": "full", "alice": "full", "bob": "linked", "carol": "linked"}


def test_bad_disk_clone_values_are_named_by_path():
    raw = copy.deepcopy(CONFIG)
    raw["desktops"]["kiosk"]["disk_clone"] = "deep"
    raw["profiles"]["plain"]["disk_clone"] = True
    raw["users"][1]["disk_clone"] = "fast"
    assert problems_of(raw) == [
        ("desktops.kiosk.disk_clone", "'deep' is not one of linked, full"),
        ("profiles.plain.disk_clone", "True is not one of linked, full"),
        ("users[1].disk_clone", "'fast' is not one of linked, full"),
    ]


def test_pool_types_and_sources_in_config():
    raw = copy.deepcopy(CONFIG)
    raw["pools"].update({
        "fast": {"host": "local", "type": "logical", "source_devices": ["/dev/vdb"]},
        "team": {"host": "local", "type": "logical", "source_name": "team-vg"},
        "nas": {"host": "local", "type": "netfs", "source_host": "nas.example", "source_dir": "/export/desks"},
    })
    pools = parse(raw, stack="unit").pools
    assert pools["main"].type == "dir" and pools["main"].source_devices == ()
    assert (pools["fast"].type, pools["fast"].source_devices, pools["fast"].source_name) == (
        "logical", ("/dev/vdb",), None)
    assert pools["team"].source_name == "team-vg"
    assert (pools["nas"].source_host, pools["nas"].source_dir, pools["nas"].source_format) == (
        "nas.example", "/export/desks", "auto")


def test_bad_pool_settings_are_named_by_path():
    raw = copy.deepcopy(CONFIG)
    raw["pools"].update({
        "a": {"host": "local", "type": "zfs"},
        "b": {"host": "local", "type": "logical"},
        "c": {"host": "local", "type": "logical", "path": "/srv/c", "source_devices": ["/dev/vdb", "vdc", "/dev/vdb"],
              "source_name": "-c"},
        "d": {"host": "local", "type": "netfs", "source_format": "smb"},
        "e": {"host": "local", "source_host": "nas", "source_name": "vg"},
        "f": {"host": "local", "type": "netfs", "source_host": "nas", "source_dir": "/share", "source_format": "cifs"},
        "g": {"host": "local", "type": "logical", "source_devices": "/dev/vdb"},
    })
    assert problems_of(raw) == [
        ("pools.a.type", "'zfs' is not one of dir, logical, netfs"),
        ("pools.b", "a logical pool needs source_devices (block devices vdesk builds a volume group on) "
                    "or source_name (an existing volume group), or both"),
        ("pools.c.path", "a logical pool's target is /dev/<source_name>: leave path unset"),
        ("pools.c.source_devices[1]", "'vdc' must be an absolute block device path, e.g. /dev/sdb"),
        ("pools.c.source_devices[2]", "'/dev/vdb' is listed twice"),
        ("pools.c.source_name", "'-c' is not a volume group name: use letters, digits, '+', '_', '.' and '-', "
                                "not starting with '-'"),
        ("pools.d.source_format", "'smb' is not one of nfs, cifs, glusterfs, auto"),
        ("pools.d.source_host", "is required for a netfs pool (the file server)"),
        ("pools.d.source_dir", "is required for a netfs pool (the exported directory, or a cifs share)"),
        ("pools.e.source_name", "only for logical pools (this pool's type is dir)"),
        ("pools.e.source_host", "only for netfs pools (this pool's type is dir)"),
        ("pools.f.source_dir", "'/share': a cifs share is named without a leading '/', e.g. desktops"),
        ("pools.g.source_devices", "must be a non-empty list of block device paths, e.g. [/dev/sdb]"),
    ]


# --- the program: what reaches the resources ------------------------------------------------------


@pulumi.runtime.test
def test_disk_clone_full_declares_a_copy_and_pool_sources_reach_the_pool(mocks, tmp_path):  # noqa: F811
    from components.config.loader import declare
    raw = raw_config(tmp_path, desktops=("alice", "bob"))
    raw["desktops"]["alice"]["disk_clone"] = "full"
    raw["pools"]["fast"] = {"host": "local", "type": "logical", "source_devices": ["/dev/vdb"],
                            "source_name": "fast-vg"}
    raw["desktops"]["bob"]["pool"] = "fast"
    outputs = declare("unit", raw)

    def check(_):
        alice, bob = mocks.named("alice-disk"), mocks.named("bob-disk")
        image = mocks.named("image-own-main-disk")
        assert alice["copy_of"] == f"/pools/unit-main/{image['name']}"   # the imported image, copied whole
        assert alice.get("backing_path") is None and alice.get("backing_format") is None
        assert bob["backing_path"] and bob.get("copy_of") is None
        fast = mocks.named("pool-fast")
        assert (fast["type"], fast["source_devices"], fast["source_name"]) == ("logical", ["/dev/vdb"], "fast-vg")
        assert fast.get("path") is None     # /dev/fast-vg, filled in by the provider's check
        main = mocks.named("pool-main")
        assert main["type"] == "dir" and main["path"] == "/pools/unit-main"

    return after(outputs, check)
