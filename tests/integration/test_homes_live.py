"""Homes that survive: a volume per user's desktop, kept through a system-disk replacement, kept (or not)
when the user goes, found again when they come back, and a destroy that says what it keeps.

Desktops are declared stopped (no boot): the home's data is written with qemu-io.
The guest side (formatted only when empty, mounted at /home) is proven on a booted
desktop by the end-to-end tier.
"""
from __future__ import annotations

import json
import subprocess

import libvirt
import pytest

from components import xmlmodel
from components.host import embedded
from tests.support.cli import Front
from tests.support.host import inventory

pytestmark = pytest.mark.integration
STACK = "homes"


def _config(users, *, clone="linked", on_removal="keep") -> dict:
    return {
        "vdesk:hosts": {"local": {"uri": "embedded", "accelerator": "tcg"}},
        "vdesk:pools": {"main": {"host": "local"}},
        "vdesk:networks": {"lan": {"host": "local", "cidr": "10.87.0.0/24"}},
        "vdesk:images": {"debian12": {"golden": "debian12"}},
        "vdesk:profiles": {"desk": {"pool": "main", "network": "lan", "image": "debian12", "memory": "512MiB",
                                    "disk": "4GiB", "home": "1GiB", "home_on_removal": on_removal,
                                    "disk_clone": clone, "running": False}},
        "vdesk:users": [{"name": u, "profile": "desk"} for u in users],
    }


def _marker(path: str, write: bool = False) -> bool:
    command = "write -P 0xcd 64M 64k" if write else "read -P 0xcd 64M 64k"
    done = subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, path], capture_output=True, text=True)
    return done.returncode == 0 and "verification failed" not in done.stdout + done.stderr


def test_homes_are_kept_through_replacements_and_removals_and_found_again(tmp_path):
    front = Front(tmp_path, STACK, _config(["alice", "bob"]))
    host = embedded.embedded_host("local", state_root=front.state)
    try:
        front.run("up")
        out = json.loads(front.run("outputs").stdout)["desktops"]
        alice_home, bob_home = out["alice"]["home"], out["bob"]["home"]
        assert alice_home.endswith("/homes-alice-home.qcow2")
        conn = libvirt.open(host.uri)
        disks = xmlmodel.Domain.from_xml(conn.lookupByName("homes-alice").XMLDesc(0)).disks
        assert [(d.source_file, d.serial) for d in disks][2] == (alice_home, "vdesk-home")
        bob_key = conn.storageVolLookupByPath(bob_home).key()
        assert _marker(alice_home, write=True) and _marker(bob_home, write=True)

        # A new system disk (disk_clone linked -> full) leaves the home as it was.
        front.write(_config(["alice", "bob"], clone="full"))
        front.run("up")
        assert _marker(alice_home), "alice's files are still in her home"

        # bob leaves: his desktop goes, his home stays (home_on_removal: keep).
        front.write(_config(["alice"], clone="full"))
        front.run("up")
        held = inventory(host.uri)
        assert "homes-bob" not in held["domains"] and "homes-bob.qcow2" not in held["volumes"]
        assert "homes-bob-home.qcow2" in held["volumes"]

        # bob comes back: the same home, with his files, attached again.
        front.write(_config(["alice", "bob"], clone="full"))
        front.run("up")
        assert conn.storageVolLookupByPath(bob_home).key() == bob_key and _marker(bob_home)
        disks = xmlmodel.Domain.from_xml(conn.lookupByName("homes-bob").XMLDesc(0)).disks
        assert bob_home in [d.source_file for d in disks]

        # destroy says what it keeps, and keeps it: the homes and the pool that holds them.
        gone = front.run("destroy")
        assert "keeps on the hosts (declared so): homes-alice-home.qcow2, homes-bob-home.qcow2" in gone.stdout
        held = inventory(host.uri)
        assert held["domains"] == {} and held["networks"] == {}
        assert sorted(held["volumes"]) == ["homes-alice-home.qcow2", "homes-bob-home.qcow2"]
        assert list(held["pools"]) == ["homes-main"]

        # Everything comes back around the kept homes.
        front.run("up")
        assert _marker(alice_home) and _marker(bob_home)
        conn.close()

        # Declared `delete`: now destroy removes the homes too, and leaves nothing.
        front.write(_config(["alice", "bob"], clone="full", on_removal="delete"))
        front.run("up")
    finally:
        front.run("destroy")
        left = inventory(host.uri)
        embedded.stop(host, purge=True)
    assert all(not names for names in left.values()), left
