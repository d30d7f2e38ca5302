"""Storage breadth on the project's own libvirtd: full copies with real bytes, and logical (LVM)
pools built on a loop device.

This machine's kernel has no device-mapper and no NFS client. A volume group can still be
built, started, measured and removed (pvcreate/vgcreate need no device-mapper), but a logical
volume cannot be created: that failure must be a clear error. Whatever the host cannot do is
skipped with the reason read from the host itself.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import libvirt
import pytest

from components import xmlmodel
from components.errors import VdeskError
from components.resources.pool import PoolProvider, require_support, support_problem
from components.resources.volume import VolumeProvider
from tests.support.providers import checked

pytestmark = pytest.mark.integration

MiB = 1024**2
TAG = f"sb{os.getpid()}"   # volume group names are global to the machine: keep ours apart


def run(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=check)


def download(conn, vol, size: int) -> bytes:
    """A volume's bytes through libvirt (as a remote host would serve them)."""
    stream = conn.newStream(0)
    vol.download(stream, 0, size, 0)
    chunks: list[bytes] = []
    stream.recvAll(lambda _s, data, acc: acc.append(data), chunks)
    stream.finish()
    return b"".join(chunks)


def qemu_img_info(path: str) -> dict:
    import json
    return json.loads(run("qemu-img", "info", "--output=json", path).stdout)


# --- full copies -----------------------------------------------------------------------------------


@pytest.fixture
def copy_pool(own_host, tmp_path):
    pp = PoolProvider()
    created = pp.create(checked(pp, {"host_uri": own_host.uri, "name": f"{TAG}-copies",
                                     "path": str(tmp_path / "copies")}))
    yield f"{TAG}-copies"
    conn = libvirt.open(own_host.uri)
    try:
        for vol in conn.storagePoolLookupByName(f"{TAG}-copies").listAllVolumes(0):
            vol.delete(0)
    finally:
        conn.close()
    pp.delete(created.id, created.outs)


def test_full_copy_has_the_same_bytes_no_backing_store_and_outlives_its_source(own_host, copy_pool, tmp_path):
    data = bytes((i * 7 + i // 4096) % 251 for i in range(2 * MiB))   # no run of zeros: a real comparison
    (tmp_path / "source.raw").write_bytes(data)
    vp = VolumeProvider()
    common = {"host_uri": own_host.uri, "pool": copy_pool}
    source = vp.create(checked(vp, {**common, "name": "source.raw", "format": "raw",
                                    "source_path": str(tmp_path / "source.raw")}))
    raw_copy = vp.create(checked(vp, {**common, "name": "copy.raw", "format": "raw",
                                      "copy_of": source.outs["path"]}))
    grown_in = checked(vp, {**common, "name": "copy.qcow2", "format": "qcow2", "capacity_bytes": 8 * MiB,
                            "copy_of": source.outs["path"]})
    grown = vp.create(grown_in)

    conn = libvirt.open(own_host.uri)
    try:
        copy_vol = conn.storageVolLookupByPath(raw_copy.outs["path"])
        assert download(conn, copy_vol, len(data)) == data
        for out in (raw_copy.outs, grown.outs):
            live = xmlmodel.Volume.from_xml(conn.storageVolLookupByPath(out["path"]).XMLDesc(0))
            assert live.backing_path is None, f"{out['name']} has a backing store"
        info = qemu_img_info(grown.outs["path"])
        assert "backing-filename" not in info and info["format"] == "qcow2"
        assert info["virtual-size"] == 8 * MiB and grown.outs["capacity_bytes"] == 8 * MiB   # grown after the copy
        assert run("qemu-img", "compare", "-f", "raw", "-F", "qcow2", source.outs["path"],
                   grown.outs["path"]).returncode == 0
        assert vp.diff(grown.id, vp.read(grown.id, grown.outs).outs, grown_in).changes is False

        vp.delete(source.id, source.outs)        # a full copy does not pin its source
        assert not os.path.exists(source.outs["path"])
        assert download(conn, conn.storageVolLookupByPath(raw_copy.outs["path"]), len(data)) == data
        vp.delete(raw_copy.id, raw_copy.outs)
        vp.delete(grown.id, grown.outs)
        assert conn.storagePoolLookupByName(copy_pool).listVolumes() == []
    finally:
        conn.close()


# --- capabilities ----------------------------------------------------------------------------------


def test_the_host_reports_which_pool_types_it_runs(own_host):
    conn = libvirt.open(own_host.uri)
    try:
        caps = xmlmodel.StoragePoolCapabilities.from_xml(conn.getStoragePoolCapabilities(0))
        for kind in ("dir", "logical", "netfs"):
            assert support_problem(caps, kind, own_host.uri) is None, f"{kind} unsupported on {own_host.uri}"
            require_support(conn, kind, own_host.uri)
        missing = [p.type for p in caps.pools if not p.supported]
        if not missing:
            pytest.skip(f"{own_host.uri} supports every pool type it lists: no refusal to observe")
        expected = f"host {own_host.uri} does not support '{missing[0]}' storage pools (its libvirt supports: "
        with pytest.raises(VdeskError, match=re.escape(expected)):
            require_support(conn, missing[0], own_host.uri)
    finally:
        conn.close()


# --- logical pools on a loop device ----------------------------------------------------------------


def _lvm_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "loop devices and LVM need root"
    for tool in ("losetup", "pvcreate", "vgcreate", "vgs", "pvs"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (lvm2 / util-linux)"
    if not Path("/dev/loop-control").exists():
        return "no /dev/loop-control: the kernel has no loop device support"
    return None


def _has_device_mapper() -> bool:
    return Path("/sys/module/dm_mod").exists() and Path("/dev/mapper/control").exists()


def _vg_exists(name: str) -> bool:
    return run("vgs", name, check=False).returncode == 0


def _is_pv(device: str) -> bool:
    return run("pvs", device, check=False).returncode == 0


@pytest.fixture
def loop_device(tmp_path):
    """A sparse 64 MiB file on a loop device; whatever the test left on it is removed and the
    device detached afterwards."""
    if reason := _lvm_skip_reason():
        pytest.skip(reason)
    backing = tmp_path / "pv.img"
    with open(backing, "wb") as fh:
        fh.truncate(64 * MiB)
    device = run("losetup", "--find", "--show", str(backing)).stdout.strip()
    try:
        yield device
    finally:
        for vg in (f"{TAG}-vg", f"{TAG}-premade"):
            if _vg_exists(vg):
                run("vgremove", "-f", vg, check=False)
        if _is_pv(device):
            run("pvremove", "-ff", "-y", device, check=False)
        if device in run("losetup", "--list", "--noheadings", "--output", "NAME", check=False).stdout.split():
            run("losetup", "--detach", device, check=False)


def test_logical_pool_is_built_on_a_loop_device_measured_and_removed(own_host, loop_device):
    pp, vp = PoolProvider(), VolumeProvider()
    vg = f"{TAG}-vg"
    props = checked(pp, {"host_uri": own_host.uri, "name": vg, "type": "logical", "source_devices": [loop_device]})
    created = pp.create(props)
    deleted = False
    try:
        outs = created.outs
        assert _vg_exists(vg) and _is_pv(loop_device)          # built: pvcreate + vgcreate
        assert outs["active"] is True and outs["path"] == f"/dev/{vg}"
        assert outs["capacity_bytes"] > 32 * MiB and outs["available_bytes"] > 0 and outs["allocation_bytes"] == 0
        refreshed = pp.read(created.id, outs)
        assert refreshed.id == created.id
        assert pp.diff(created.id, refreshed.outs, props).changes is False

        lv = {"host_uri": own_host.uri, "pool": vg, "name": "lv0", "format": "raw", "capacity_bytes": 4 * MiB}
        if _has_device_mapper():
            vol = vp.create(checked(vp, lv))      # this host can hold logical volumes
            vp.delete(vol.id, vol.outs)
        else:
            with pytest.raises(VdeskError) as failed:
                vp.create(checked(vp, lv))
            message = str(failed.value)
            assert message.startswith(f"volume 'lv0' could not be created in logical pool '{vg}' on {own_host.uri}")
            assert "logical (LVM) volumes need the kernel's device-mapper (dm_mod), which this host lacks" in message

        pp.delete(created.id, outs)
        deleted = True
        assert not _vg_exists(vg) and not _is_pv(loop_device)     # vgremove + pvremove
        conn = libvirt.open(own_host.uri)
        try:
            assert vg not in conn.listStoragePools() + conn.listDefinedStoragePools()
        finally:
            conn.close()
        run("losetup", "--detach", loop_device)                    # nothing holds the device any more
    finally:
        if not deleted:
            pp.delete(created.id, created.outs)


def test_a_device_that_holds_data_is_never_overwritten(own_host, loop_device):
    """A pre-made volume group stays: a pool naming its device for a new one fails and removes nothing."""
    run("pvcreate", loop_device)
    run("vgcreate", f"{TAG}-premade", loop_device)
    pp = PoolProvider()
    props = checked(pp, {"host_uri": own_host.uri, "name": f"{TAG}-vg", "type": "logical",
                         "source_devices": [loop_device]})
    with pytest.raises(VdeskError, match=rf"storage pool '{TAG}-vg' \(logical\) could not be set up on .*"
                                         rf"{loop_device}.*LVM2_member"):
        pp.create(props)
    assert _vg_exists(f"{TAG}-premade") and not _vg_exists(f"{TAG}-vg")
    conn = libvirt.open(own_host.uri)
    try:
        assert f"{TAG}-vg" not in conn.listStoragePools() + conn.listDefinedStoragePools()
    finally:
        conn.close()


def test_a_pre_made_volume_group_is_used_and_kept(own_host, loop_device):
    run("pvcreate", loop_device)
    run("vgcreate", f"{TAG}-premade", loop_device)
    pp = PoolProvider()
    props = checked(pp, {"host_uri": own_host.uri, "name": f"{TAG}-team", "type": "logical",
                         "source_name": f"{TAG}-premade"})
    created = pp.create(props)
    try:
        assert created.outs["active"] and created.outs["capacity_bytes"] > 32 * MiB
        assert pp.diff(created.id, pp.read(created.id, created.outs).outs, props).changes is False
    finally:
        pp.delete(created.id, created.outs)
    assert _vg_exists(f"{TAG}-premade"), "vdesk removed a volume group it did not make"


# --- netfs -----------------------------------------------------------------------------------------


def _kernel_filesystems() -> set[str]:
    return {line.split()[-1] for line in Path("/proc/filesystems").read_text().splitlines() if line.strip()}


def test_a_netfs_pool_that_cannot_mount_fails_clearly_and_leaves_nothing(own_host, tmp_path):
    """Without the kernel's NFS client, the mount fails at once (no traffic at all)."""
    if "nfs" in _kernel_filesystems():
        pytest.skip("this kernel has an NFS client (nfs in /proc/filesystems): the mount would go to the "
                    "network; this test needs a host without one")
    pp = PoolProvider()
    target = tmp_path / "nas"
    props = checked(pp, {"host_uri": own_host.uri, "name": f"{TAG}-nas", "type": "netfs", "path": str(target),
                         "source_host": "127.0.0.1", "source_dir": "/srv/desktops", "source_format": "nfs"})
    with pytest.raises(VdeskError, match=rf"storage pool '{TAG}-nas' \(netfs\) could not be set up on "):
        pp.create(props)
    conn = libvirt.open(own_host.uri)
    try:
        assert f"{TAG}-nas" not in conn.listStoragePools() + conn.listDefinedStoragePools()
    finally:
        conn.close()
    assert not target.exists(), "the mount point vdesk made was left behind"

