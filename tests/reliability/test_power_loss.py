"""A hard power-off right after `up` must not leave a dead desktop.

As a user once did it: `make up`, at once `virsh destroy` and `virsh undefine`
of the domain, then `make refresh` and `make up`. Made deterministic here: the
guest's kernel never writes dirty data back on its own (the writeback timers are
off), so whatever first boot wrote survives a power cut only because the gate
synced it before it said "ready". The desktop is powered off and undefined right
after the gate, and the next `up` must bring it back with its pinned host key.
A control file written just before the power cut, and never synced, must be gone
after it: the proof that the guest wrote nothing back on its own, so the host key
survived because of the gate's sync and not by chance. (The control rides on the
same power cut: one TCG boot fewer than a separate control run.)
"""
from __future__ import annotations

import json

import libvirt
import pytest

from components.guest.ssh import SshTarget, connect
from components.host import embedded
from tests.reliability import ledger
from tests.support.cli import Front

pytestmark = [pytest.mark.reliability, pytest.mark.guests]
STACK = "cut"
NO_WRITEBACK = ("sysctl.vm.dirty_writeback_centisecs=0 sysctl.vm.dirty_expire_centisecs=8640000 "
                "sysctl.vm.dirty_background_ratio=100 sysctl.vm.dirty_ratio=100")


def _config() -> dict:
    return {
        "vdesk:hosts": {"local": {"uri": "embedded", "accelerator": "tcg"}},
        "vdesk:pools": {"main": {"host": "local"}},
        "vdesk:networks": {"lan": {"host": "local", "cidr": "10.92.0.0/24"}},
        "vdesk:images": {"debian12": {"golden": "debian12"}},
        "vdesk:desktops": {"d1": {"pool": "main", "network": "lan", "image": "debian12", "memory": "768MiB",
                                  "vcpus": 1, "disk": "4GiB", "kernel_args": NO_WRITEBACK,
                                  "users": [{"name": "cut"}], "checks": [{"service": "ssh"}]}},
        "vdesk:timeouts": {"address": 300, "ssh": 300, "cloud_init": 600},
    }


def _ssh(front, desk: dict, host) -> SshTarget:
    key = front.state / "ssh" / STACK / "d1.key"
    return SshTarget(host=desk["ip"], user="cut", private_key=key.read_text(), host_public_key=desk["host_key"],
                     netns=host.netns)


def test_a_power_cut_right_after_up_leaves_a_desktop_that_comes_back(tmp_path):
    ledger.FAULTS["scenarios"] += 1
    front = Front(tmp_path, STACK, _config())
    host = embedded.embedded_host("local", state_root=front.state)
    try:
        front.run("up")
        desk = json.loads(front.run("outputs", "--show-secrets").stdout)["desktops"]["d1"]
        conn = libvirt.open(host.uri)
        try:
            front.run("up")               # nothing to do: the gate already passed
            # Control: a write that nobody syncs, made the moment before the power cut.
            with connect(_ssh(front, desk, host), timeout_s=120) as guest:
                assert guest.run("echo unsynced > ~/control && cat ~/control").stdout.strip() == "unsynced"
            # The scenario: power off and undefine the moment `up` has returned.
            dom = conn.lookupByName(f"{STACK}-d1")
            dom.destroy()
            dom.undefine()
            ledger.FAULTS["faults_injected"] += 1
        finally:
            conn.close()
        front.run("refresh")
        front.run("up")
        after = json.loads(front.run("outputs", "--show-secrets").stdout)["desktops"]["d1"]
        assert after["host_key"] == desk["host_key"], "the desktop keeps its pinned host key"
        with connect(_ssh(front, after, host), timeout_s=120) as guest:
            size = guest.run("sudo -n stat -c %s /etc/ssh/ssh_host_ed25519_key").stdout.strip()
            assert int(size) > 0
            assert guest.run("cat ~/control 2>/dev/null").stdout.strip() != "unsynced", \
                "the guest wrote back on its own: the scenario would not test the gate's sync"
        if not after.get("ip"):
            ledger.FAULTS["unreachable"] += 1
    finally:
        front.run("destroy")
        embedded.stop(host, purge=True)
