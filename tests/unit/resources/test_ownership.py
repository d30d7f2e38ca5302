"""Objects belong to a stack: another stack can neither adopt, refresh nor delete them.

On libvirt's test driver. Stack `team-a` makes a network (its owner is its <metadata>), a domain (likewise),
a pool and a volume (their owner is the creation journal); stack `team-b` then declares the same names with
`adopt: true` and is refused at check (the preview), naming `adopt` and the owner, with nothing changed.
"""
import datetime as dt

import pytest

from components import xmlmodel
from components.errors import VdeskError
from components.resources import backups, journal, ownership
from components.resources.domain import DomainProvider
from components.resources.network import NetworkProvider
from components.resources.pool import PoolProvider
from components.resources.volume import VolumeProvider
from tests.support.providers import checked

URI = "test:///default"


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("VDESK_STATE", str(tmp_path / "state"))
    return tmp_path / "state"


def _network(owner, **over):
    return {"host_uri": URI, "name": "own-lan", "cidr": "10.61.0.0/24", "owner": owner, **over}


def _domain(owner, **over):
    return {"host_uri": URI, "name": "own-vm", "owner": owner, "domain_type": "test", "memory_mib": 64,
            "vcpus": 1, "kernel": "/boot/vmlinuz", "running": False, **over}


def _volume(owner, **over):
    return {"host_uri": URI, "pool": "default-pool", "name": "own-disk.qcow2", "format": "qcow2",
            "capacity_bytes": 1024**2, "owner": owner, **over}


def _refusals(provider, props):
    return [(f.property, f.reason) for f in provider.check({}, props).failures]


@pytest.mark.parametrize("provider,props,kind,name", [
    (NetworkProvider, _network, "network", "own-lan"),
    (DomainProvider, _domain, "domain", "own-vm"),
    (VolumeProvider, _volume, "volume", "own-disk.qcow2"),
])
def test_another_stacks_object_is_refused_at_preview_and_at_create_and_left_alone(conn, provider, props, kind, name):
    made = provider().create(checked(provider(), props("team-a")))
    before = made.outs
    try:
        assert _refusals(provider(), props("team-b", adopt=True)) == [
            ("adopt", f"adopt: {kind} {name!r} belongs to stack 'team-a'; a stack never adopts, changes or "
                      "removes another stack's objects")]
        theirs = dict(provider().check({}, props("team-b", adopt=True)).inputs)
        with pytest.raises(VdeskError, match="belongs to stack 'team-a'"):
            provider().create(theirs)
        assert provider().read(made.id, theirs).id == "", "a refresh of team-b does not take team-a's object"
        provider().delete(made.id, {**before, "owner": "team-b"})
        assert provider().read(made.id, before).id == made.id, "team-b's delete left team-a's object"
        assert provider().read(made.id, before).outs["name"] == name
    finally:
        provider().delete(made.id, before)


def test_this_stacks_own_object_is_adopted(conn):
    made = NetworkProvider().create(checked(NetworkProvider(), _network("team-a")))
    try:
        assert _refusals(NetworkProvider(), _network("team-a", adopt=True)) == []
    finally:
        NetworkProvider().delete(made.id, made.outs)


def test_a_network_carries_its_owner_in_metadata(conn):
    made = NetworkProvider().create(checked(NetworkProvider(), _network("team-a")))
    try:
        live = xmlmodel.Network.from_xml(conn.networkLookupByName("own-lan").XMLDesc(0))
        assert live.owner == xmlmodel.NetworkOwner(stack="team-a", resource="own-lan")
        journal.forget("team-a", "network", URI, "own-lan")      # the metadata alone says whose it is
        assert ownership.owners(URI, "network", "own-lan") == ["team-a"]
    finally:
        NetworkProvider().delete(made.id, made.outs)


def test_an_object_no_stack_owns_can_be_adopted_and_is_then_the_adopters(conn):
    pool = conn.storagePoolLookupByName("default-pool")
    vol = pool.createXML(xmlmodel.Volume(name="own-free.qcow2", format="qcow2", capacity=1024**2).to_xml(), 0)
    try:
        props = checked(VolumeProvider(), _volume("team-b", name="own-free.qcow2", adopt=True))
        VolumeProvider().create(props)
        assert ownership.owners(URI, "volume", "default-pool/own-free.qcow2") == ["team-b"]
        assert _refusals(VolumeProvider(), _volume("team-a", name="own-free.qcow2", adopt=True))[0][0] == "adopt"
    finally:
        vol.delete(0)


def test_removing_a_pool_takes_only_this_stacks_backups(conn, tmp_path):
    pp = PoolProvider()
    made = pp.create(checked(pp, {"host_uri": URI, "name": "own-pool", "path": str(tmp_path / "pool"),
                                  "owner": "team-b"}))
    pool = conn.storagePoolLookupByName("own-pool")
    disks = {stack: pool.createXML(xmlmodel.Volume(name=f"{stack}-d.qcow2", format="qcow2",
                                                   capacity=1024**2).to_xml(), 0) for stack in ("team-a", "team-b")}
    taken = {stack: backups.take(pool, vol, 3, owner=stack, uri=URI) for stack, vol in disks.items()}
    for vol in disks.values():
        vol.delete(0)
    with pytest.raises(VdeskError, match=f"does not own: {taken['team-a']}"):
        pp.delete(made.id, made.outs)
    assert pool.listVolumes() == [taken["team-a"]], "team-b's backup went, team-a's stayed"
    assert journal.lookup("team-b", "volume", URI, f"own-pool/{taken['team-b']}") is None
    pool.storageVolLookupByName(taken["team-a"]).delete(0)
    pp.delete(made.id, made.outs)


def test_pruning_removes_only_this_stacks_expired_backups(conn):
    pool = conn.storagePoolLookupByName("default-pool")
    disk = pool.createXML(xmlmodel.Volume(name="own-p.qcow2", format="qcow2", capacity=1024**2).to_xml(), 0)
    old = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    try:
        mine = backups.take(pool, disk, 1, old, owner="team-b", uri=URI)
        theirs = backups.take(pool, disk, 1, old + dt.timedelta(seconds=1), owner="team-a", uri=URI)
        assert backups.prune(pool, owner="team-b", uri=URI) == [mine]
        assert theirs in pool.listVolumes()
        assert backups.prune(pool, owner="team-a", uri=URI) == [theirs]
    finally:
        disk.delete(0)


def test_owner_metadata_names_the_project_and_a_stack_of_another_project_is_not_this_one(conn):
    made = DomainProvider().create(checked(DomainProvider(), _domain("dev", project="vdesk")))
    try:
        live = xmlmodel.Domain.from_xml(conn.lookupByName("own-vm").XMLDesc(0))
        assert live.owner == xmlmodel.Owner(stack="dev", resource="own-vm", project="vdesk")
        journal.forget("dev", "domain", URI, "own-vm")
        assert ownership.others(URI, "domain", "own-vm", "dev", project="vdesk") == []
        assert ownership.others(URI, "domain", "own-vm", "dev", project="lab") == ["vdesk/dev"]
        assert _refusals(DomainProvider(), _domain("dev", project="lab", adopt=True))[0][1].startswith(
            "adopt: domain 'own-vm' belongs to stack 'vdesk/dev'")
    finally:
        DomainProvider().delete(made.id, made.outs)


def test_a_network_names_its_project_too(conn):
    made = NetworkProvider().create(checked(NetworkProvider(), _network("team-a", project="vdesk")))
    try:
        live = xmlmodel.Network.from_xml(conn.networkLookupByName("own-lan").XMLDesc(0))
        assert live.owner == xmlmodel.NetworkOwner(stack="team-a", resource="own-lan", project="vdesk")
    finally:
        NetworkProvider().delete(made.id, made.outs)


def test_another_stacks_container_is_neither_refreshed_nor_deleted(conn, tmp_path):
    """A container's owner is its metadata alone (no journal): read and delete of team-b leave team-a's."""
    from components.resources.container import ContainerProvider
    from components.xmlmodel.container import Container, ContainerOwner
    dom = conn.defineXML(Container(type="test", name="own-ct", memory_kib=65536, vcpus=1, os_type="exe",
                                   init="/sbin/init", owner=ContainerOwner(stack="team-a", resource="own-ct")).to_xml())
    try:
        theirs = {"host_uri": URI, "name": "own-ct", "owner": "team-b", "containers_dir": str(tmp_path)}
        assert ContainerProvider().read(dom.UUIDString(), theirs).id == ""
        ContainerProvider().delete(dom.UUIDString(), theirs)
        assert conn.lookupByName("own-ct").UUIDString() == dom.UUIDString()
    finally:
        dom.undefine()


def test_runners_with_their_own_state_see_each_others_pools_and_volumes_on_a_shared_host(tmp_path, monkeypatch):
    """Two runners on one machine, each with its own $VDESK_STATE, and qemu:///system between them: the pool and
    volume that runner 1 makes for team-a (no libvirt metadata) are team-a's to runner 2 too."""
    import os
    import stat
    system, records = "qemu:///system", tmp_path / "owners"
    monkeypatch.setenv("VDESK_HOST_RECORDS", str(records))
    runner1, runner2 = tmp_path / "runner1", tmp_path / "runner2"
    monkeypatch.setenv("VDESK_STATE", str(runner1))
    journal.note("team-a", "pool", system, "team-a-main", journal.CREATED)
    journal.note("team-a", "volume", system, "team-a-main/team-a-ann.qcow2", journal.CREATED)
    embedded = f"qemu:///system?socket={runner1}/run/libvirt/libvirt-sock"
    journal.note("team-a", "pool", embedded, "team-a-main", journal.CREATED)     # runner 1's own host: not shared
    assert stat.S_IMODE(os.stat(records).st_mode) == 0o700
    monkeypatch.setenv("VDESK_STATE", str(runner2))
    assert ownership.others(system, "pool", "team-a-main", "team-b") == ["team-a"]
    assert ownership.others(system, "volume", "team-a-main/team-a-ann.qcow2", "team-b") == ["team-a"]
    assert ownership.refusal("pool", "team-a-main", ["team-a"]).startswith("pool 'team-a-main' belongs to stack "
                                                                           "'team-a'")
    assert journal.lookup("team-a", "pool", system, "team-a-main") is None   # taking over reads one's own journal
    assert journal.owners("pool", embedded, "team-a-main") == []
    monkeypatch.setenv("VDESK_STATE", str(runner1))
    journal.forget("team-a", "pool", system, "team-a-main")                  # team-a's destroy
    monkeypatch.setenv("VDESK_STATE", str(runner2))
    assert ownership.others(system, "pool", "team-a-main", "team-b") == []
