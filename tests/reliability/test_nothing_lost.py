"""Nothing lost: a change that replaces a desktop's system disk keeps the old one, and `make restore` puts it back.

The desktop is declared stopped (no boot needed to prove the data path): data is
written into its disk with qemu-io, the disk is replaced by a change (linked clone
-> full copy), and the old content must be found in the kept copy, standalone (no
backing store), and back in the disk after a restore. Destroy then leaves nothing.
"""
from __future__ import annotations

import json
import subprocess

import libvirt
import pytest

from components import xmlmodel
from components.host import embedded
from components.resources import backups
from tests.reliability import ledger
from tests.support.cli import Front
from tests.support.host import inventory, records_left

pytestmark = pytest.mark.reliability
STACK = "keep"


def _config(clone: str) -> dict:
    return {
        "vdesk:hosts": {"local": {"uri": "embedded", "accelerator": "tcg"}},
        "vdesk:pools": {"main": {"host": "local"}},
        "vdesk:networks": {"lan": {"host": "local", "cidr": "10.93.0.0/24"}},
        "vdesk:images": {"debian12": {"golden": "debian12"}},
        "vdesk:desktops": {"d1": {"pool": "main", "network": "lan", "image": "debian12", "memory": "512MiB",
                                  "disk": "4GiB", "disk_clone": clone, "disk_backup_days": 3, "running": False,
                                  "users": [{"name": "keep"}]}},
    }


def _qemu_io(path: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, path], capture_output=True, text=True)


def _has_marker(path: str) -> bool:
    done = _qemu_io(path, "read -P 0xab 1G 64k")
    return done.returncode == 0 and "Pattern verification failed" not in done.stdout + done.stderr


def test_a_replaced_disk_is_kept_and_restored_and_destroy_leaves_nothing(tmp_path):
    ledger.FAULTS["scenarios"] += 1
    front = Front(tmp_path, STACK, _config("linked"))
    host = embedded.embedded_host("local", state_root=front.state)
    try:
        front.run("up")
        desk = json.loads(front.run("outputs").stdout)["desktops"]["d1"]
        assert _qemu_io(desk["disk"], "write -P 0xab 1G 64k").returncode == 0
        assert _has_marker(desk["disk"])

        front.write(_config("full"))             # replaces the system disk
        up = front.run("up")
        assert not _has_marker(desk["disk"]), "the new disk is a fresh copy of the image"
        conn = libvirt.open(host.uri)
        try:
            pool = conn.storageVolLookupByPath(desk["disk"]).storagePoolLookupByVolume()
            [kept] = backups.of(pool, "keep-d1.qcow2")
            assert kept.keep_days == 3
            copy = pool.storageVolLookupByName(kept.name)
            assert xmlmodel.Volume.from_xml(copy.XMLDesc(0)).backing_path is None, "a standalone copy"
            assert _has_marker(copy.path())
        finally:
            conn.close()

        restore = subprocess.run(["python", "-m", "components.cli.restore", STACK, "d1"], env=front.env,
                                 cwd=front.state / "workdirs" / STACK, capture_output=True, text=True)
        assert restore.returncode == 0, restore.stderr
        assert f"restored d1 from {kept.name}" in restore.stdout
        assert _has_marker(desk["disk"]), "the old content is back"
        conn = libvirt.open(host.uri)
        try:
            pool = conn.storageVolLookupByPath(desk["disk"]).storagePoolLookupByVolume()
            assert len(backups.of(pool, "keep-d1.qcow2")) == 2, "the disk before the restore is kept too"
        finally:
            conn.close()
        assert "d1" in up.stdout
    finally:
        front.run("destroy")
        held = inventory(host.uri)
        leaked = [f"{kind} {name}" for kind, names in held.items() for name in names]
        files = [str(p) for p in (front.state / "hosts" / "local" / "pools").rglob("*") if p.is_file()]
        files += [str(p) for p in records_left(host.state_dir)]
        ledger.FAULTS["leaked_objects"] += len(leaked)
        ledger.FAULTS["leaked_files"] += len(files)
        ledger.LEAKS.extend(leaked + files)
        embedded.stop(host, purge=True)
    assert leaked == [] and files == []
