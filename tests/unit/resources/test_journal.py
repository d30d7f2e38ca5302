"""The creation journal: what an interrupted run of a stack left behind is its own, provably.

On libvirt's test driver: every create is recorded before it starts, so the next
run takes a complete leftover over (same identity), removes and remakes a half-made
one, and still refuses an object that no journal entry of this stack speaks for.
"""
import pytest

from components.errors import VdeskError
from components.resources import journal
from components.resources.domain import DomainProvider
from components.resources.volume import VolumeProvider
from tests.support.providers import checked

URI = "test:///default"
KERNEL = "/boot/vmlinuz"


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("VDESK_STATE", str(tmp_path / "state"))
    return tmp_path / "state"


def _volume(name="jr-disk.qcow2", owner="dev", **over):
    return checked(VolumeProvider(), {"host_uri": URI, "pool": "default-pool", "name": name, "format": "qcow2",
                                      "capacity_bytes": 1024**2, "owner": owner, **over})


def _domain(owner="dev", **over):
    return checked(DomainProvider(), {"host_uri": URI, "name": "jr-vm", "owner": owner, "domain_type": "test",
                                      "memory_mib": 64, "vcpus": 1, "kernel": KERNEL, "running": False, **over})


def test_a_create_is_journaled_and_a_delete_forgets_it(conn):
    vp, props = VolumeProvider(), _volume()
    created = vp.create(props)
    assert journal.lookup("dev", "volume", URI, "default-pool/jr-disk.qcow2").state == journal.CREATED
    vp.delete(created.id, created.outs)
    assert journal.entries("dev") == []


def test_a_complete_leftover_of_an_interrupted_run_is_taken_over(conn):
    vp, props = VolumeProvider(), _volume()
    first = vp.create(props)              # the run that was killed before its checkpoint
    again = vp.create(props)              # the next run: its state never heard of the volume
    assert again.id == first.id
    assert len([v for v in conn.storagePoolLookupByName("default-pool").listVolumes() if v == "jr-disk.qcow2"]) == 1
    vp.delete(again.id, again.outs)


def test_a_half_made_leftover_is_removed_and_made_again(conn):
    dp, props = DomainProvider(), _domain()
    journal.note("dev", "domain", URI, "jr-vm", journal.CREATING)     # killed between define and start
    stale = conn.defineXML("<domain type='test'><name>jr-vm</name><memory unit='MiB'>32</memory>"
                           "<os><type>hvm</type></os></domain>").UUIDString()
    created = dp.create(props)
    assert created.id != stale, "remade, not adopted"
    assert conn.lookupByName("jr-vm").maxMemory() == 64 * 1024
    assert journal.lookup("dev", "domain", URI, "jr-vm").state == journal.CREATED
    dp.delete(created.id, created.outs)


def test_a_complete_leftover_that_differs_in_a_replace_property_is_remade(conn):
    vp = VolumeProvider()
    old = vp.create(_volume(format="raw", name="jr-raw"))
    journal.note("dev", "volume", URI, "default-pool/jr-raw", journal.CREATED)
    new = vp.create(_volume(format="qcow2", name="jr-raw"))
    assert new.outs["format"] == "qcow2" and old.outs["format"] == "raw"
    vp.delete(new.id, new.outs)


def test_an_object_no_entry_of_this_stack_speaks_for_is_still_refused(conn):
    vp = VolumeProvider()
    theirs = vp.create(_volume(owner="other"))                # another stack's, with the same name
    with pytest.raises(VdeskError, match="already exists"):
        vp.create(_volume(owner="dev"))
    assert journal.lookup("other", "volume", URI, "default-pool/jr-disk.qcow2").state == journal.CREATED
    vp.delete(theirs.id, theirs.outs)


def test_a_failed_create_leaves_no_entry(conn):
    with pytest.raises(Exception):
        VolumeProvider().create(_volume(pool="no-such-pool"))
    assert journal.entries("dev") == []


def test_without_an_owner_nothing_is_journaled(conn, state):
    vp = VolumeProvider()
    created = vp.create(_volume(owner=""))
    assert not (state / "journal").exists()
    vp.delete(created.id, created.outs)


def test_refusing_another_stacks_object_leaves_no_entry_that_could_later_remove_it(conn):
    vp = VolumeProvider()
    theirs = vp.create(_volume(owner="other"))
    for _ in range(2):                            # refused twice: the second time must not "recover" it away
        with pytest.raises(VdeskError, match="already exists"):
            vp.create(_volume(owner="dev"))
        assert journal.lookup("dev", "volume", URI, "default-pool/jr-disk.qcow2") is None
    assert conn.storagePoolLookupByName("default-pool").storageVolLookupByName("jr-disk.qcow2").key() == theirs.id
    vp.delete(theirs.id, theirs.outs)
