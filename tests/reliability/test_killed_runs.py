"""Killed runs: `up` and `destroy` SIGKILLed at five points, then recovered by vdesk alone.

The run is killed as a power cut or a runner timeout would kill it: the engine,
the program and the providers at once. The next `tools/vdesk up` (what `make up`
runs) must converge with no person's help and no duplicates, and `destroy` must
leave nothing, counted from libvirt and the filesystem, not from vdesk's state.
"""
from __future__ import annotations

import json
import os
import signal
import time

import libvirt
import pytest

from components.host import embedded
from tests.reliability import ledger
from tests.support.cli import Front
from tests.support.host import RECORDS, inventory, qemu_pid

# Only the runs with a desktop that boots are marked `guests`: the others declare every desktop stopped, so
# they need not wait in the guests' stream (tests/conftest.py).
pytestmark = pytest.mark.reliability
STACK = "rel"


def _config(running: bool) -> dict:
    return {
        "vdesk:hosts": {"local": {"uri": "embedded", "accelerator": "tcg"}},
        "vdesk:pools": {"main": {"host": "local"}},
        "vdesk:networks": {"lan": {"host": "local", "cidr": "10.91.0.0/24"}},
        "vdesk:images": {"debian12": {"golden": "debian12"}},
        "vdesk:profiles": {"desk": {"pool": "main", "network": "lan", "image": "debian12", "memory": "768MiB",
                                    "vcpus": 1, "disk": "4GiB", "running": False,
                                    "checks": [{"service": "ssh"}]}},
        "vdesk:users": [{"name": "d1", "profile": "desk", "running": running}, {"name": "d2", "profile": "desk"}],
        "vdesk:timeouts": {"address": 300, "ssh": 300, "cloud_init": 600},
        "vdesk:quotas": {"users": {"d1": {"desktops": 1}}},      # so the host holds the stack's quota record too
    }


EXPECTED = {"domains": {f"{STACK}-d1", f"{STACK}-d2"}, "networks": {f"{STACK}-lan"}, "pools": {f"{STACK}-main"}}


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    f = Front(tmp_path_factory.mktemp("killed"), STACK, _config(running=False))
    yield f
    try:
        f.run("destroy")
    finally:
        embedded.stop(embedded.embedded_host("local", state_root=f.state), purge=True)


def _host(front) -> str:
    return embedded.embedded_host("local", state_root=front.state).uri


def _converged(front) -> None:
    """Exactly the declared objects, once each; the state knows two desktops; the journal is all 'created'."""
    held = inventory(_host(front))
    assert {k: set(v) for k, v in held.items() if k != "volumes"} == EXPECTED
    volumes = sorted(held["volumes"])
    assert volumes == sorted([f"{STACK}-d1.qcow2", f"{STACK}-d1-seed.iso", f"{STACK}-d2.qcow2",
                              f"{STACK}-d2-seed.iso", *(v for v in volumes if v.startswith(f"{STACK}-debian12-"))])
    assert len(volumes) == 7, volumes
    state = json.loads(front.run("outputs").stdout)
    assert sorted(state["desktops"]) == ["d1", "d2"]


def _nothing_left(front) -> None:
    held = inventory(_host(front))
    leaked = [f"{kind} {name}" for kind, names in held.items() for name in names]
    files = [str(p.relative_to(front.state)) for sub in ("pools", "displays", "log/qemu", *RECORDS)
             for p in (front.state / "hosts" / "local" / sub).rglob("*") if p.is_file() or p.is_socket()]
    files += [str(p.relative_to(front.state)) for p in (front.state / "journal").rglob("*.json")]
    ledger.FAULTS["leaked_objects"] += len(leaked)
    ledger.FAULTS["leaked_files"] += len(files)
    ledger.LEAKS.extend(leaked + files)
    assert leaked == [] and files == []


@pytest.mark.parametrize("point", ["import", "clone", "define"])
def test_an_up_killed_while_creating_is_recovered_by_the_next_up(front, point):
    ledger.FAULTS["scenarios"] += 1
    front.kill_at("up", point)
    ledger.FAULTS["faults_injected"] += 1
    front.run("up")
    _converged(front)
    front.run("destroy")
    _nothing_left(front)


def test_a_destroy_killed_half_way_is_finished_by_the_next_destroy(front):
    ledger.FAULTS["scenarios"] += 1
    front.run("up")
    front.kill_at("destroy", "destroy")
    ledger.FAULTS["faults_injected"] += 1
    front.run("destroy")
    _nothing_left(front)


@pytest.mark.guests
def test_an_up_killed_during_the_readiness_wait_is_recovered_and_the_desktop_works(front):
    ledger.FAULTS["scenarios"] += 1
    front.write(_config(running=True))
    front.kill_at("up", "ready")
    ledger.FAULTS["faults_injected"] += 1
    up = front.run("up")
    _converged(front)
    d1 = json.loads(front.run("outputs").stdout)["desktops"]["d1"]
    if not d1.get("ip"):
        ledger.FAULTS["unreachable"] += 1
    assert d1["state"] == "running" and d1["ip"].startswith("10.91.0."), up.stdout[-2000:]
    front.run("destroy")
    _nothing_left(front)


@pytest.mark.guests
def test_a_desktop_whose_emulator_dies_while_it_boots_is_started_again_once_and_comes_up(front):
    """QEMU died under a booting guest once in a full run (a general protection fault in its TCG thread, on a
    loaded host), and the gate waited out its 300 s for an address of a domain that was shut off. Now the gate
    sees libvirt's "crashed" at once and boots the guest again, once. SIGKILL stands in for the fault: libvirt
    reports both the same way (shut off, reason crashed), and a kill leaves no core file behind."""
    ledger.FAULTS["scenarios"] += 1
    front.write(_config(running=True))
    host = embedded.embedded_host("local", state_root=front.state)
    name = f"{STACK}-d1"
    run, marker = front.pause_at("up", "ready")          # d1 is started; its gate has not looked yet
    conn = libvirt.open(host.uri)
    try:
        first = qemu_pid(host, name)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while conn.lookupByName(name).state() != [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED]:
            assert time.monotonic() < deadline, f"libvirt never saw {name} crash: {conn.lookupByName(name).state()}"
            time.sleep(0.2)
        ledger.FAULTS["faults_injected"] += 1
    finally:
        marker.unlink()
    try:
        code = run.wait(timeout=900)
        said = front.said()
        assert code == 0, said[-3000:]
        assert f"desktop {name}: libvirt says it is shut off: its emulator crashed" in said
        assert "starting it again, once" in said
        assert conn.lookupByName(name).state()[0] == libvirt.VIR_DOMAIN_RUNNING
        second = qemu_pid(host, name)
        assert second != first
    finally:
        conn.close()
    _converged(front)
    d1 = json.loads(front.run("outputs").stdout)["desktops"]["d1"]
    if not d1.get("ip"):
        ledger.FAULTS["unreachable"] += 1
    assert d1["state"] == "running" and d1["ip"].startswith("10.91.0."), said[-2000:]
    front.run("destroy")
    _nothing_left(front)
