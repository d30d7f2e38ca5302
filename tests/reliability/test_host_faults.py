"""Host faults and concurrent runs: libvirtd restarted mid-run, a pool that runs out of space, two runs
of one stack, and two stacks on one host.

Desktops are declared stopped: the faults are in provisioning, not in guests.
"""
from __future__ import annotations

import json
import subprocess

import pytest

from components.host import embedded
from tests.reliability import ledger
from tests.support.cli import Front, kill_tree
from tests.support.host import inventory

pytestmark = pytest.mark.reliability


def _config(cidr: str, **pool) -> dict:
    return {
        "vdesk:hosts": {"local": {"uri": "embedded", "accelerator": "tcg"}},
        "vdesk:pools": {"main": {"host": "local", **pool}},
        "vdesk:networks": {"lan": {"host": "local", "cidr": cidr}},
        "vdesk:images": {"debian12": {"golden": "debian12"}},
        "vdesk:profiles": {"desk": {"pool": "main", "network": "lan", "image": "debian12", "memory": "512MiB",
                                    "disk": "4GiB", "running": False}},
        "vdesk:users": [{"name": "d1", "profile": "desk"}, {"name": "d2", "profile": "desk"}],
    }


def _ours(uri: str, prefix: str) -> dict[str, list[str]]:
    return {kind: sorted(n for n in names if n.startswith(f"{prefix}-")) for kind, names in inventory(uri).items()}


def _count_leaks(uri: str, prefix: str) -> list[str]:
    leaked = [f"{kind} {name}" for kind, names in _ours(uri, prefix).items() for name in names]
    ledger.FAULTS["leaked_objects"] += len(leaked)
    ledger.LEAKS.extend(leaked)
    return leaked


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One state dir, so every stack here lands on the same embedded host."""
    root = tmp_path_factory.mktemp("faults")
    yield root
    embedded.stop(embedded.embedded_host("local", state_root=root / "state"), purge=True)


def test_a_second_run_of_the_same_stack_is_refused_saying_who_holds_it(shared):
    ledger.FAULTS["scenarios"] += 1
    front = Front(shared, "one", _config("10.94.0.0/24"))
    first, marker = front.pause_at("up", "define")
    try:
        second = front.run("up", ok=False)
        assert "stack one is being changed by `up` (pid" in second.stderr and "this run changed nothing" in \
            second.stderr
        assert "root on" in second.stderr and "since 20" in second.stderr
    finally:
        marker.unlink()
        assert first.wait(timeout=600) == 0, front.said()
    front.run("destroy")
    assert _count_leaks(embedded.embedded_host("local", state_root=front.state).uri, "one") == []


def test_two_stacks_on_one_host_never_touch_each_others_objects(shared):
    ledger.FAULTS["scenarios"] += 1
    a = Front(shared, "alpha", _config("10.95.0.0/24"))
    b = Front(shared, "beta", _config("10.96.0.0/24"))
    uri = embedded.embedded_host("local", state_root=a.state).uri
    a.run("up")
    b.run("up")
    before = _ours(uri, "beta")
    assert len(before["domains"]) == 2
    # A third stack that claims alpha's names (prefix: alpha) is refused before anything is made (the names
    # are alpha's objects), and alpha's objects stay as they were.
    c = Front(shared, "gamma", {**_config("10.97.0.0/24"), "vdesk:prefix": "alpha"})
    alpha = inventory(uri)
    refused = c.run("up", ok=False)
    assert "vdesk:prefix: 'alpha' makes the name of pool 'alpha-main', which belongs to stack 'alpha'" in \
        refused.stdout + refused.stderr
    assert {k: {n: v for n, v in names.items() if n.startswith("alpha-")} for k, names in inventory(uri).items()} \
        == {k: {n: v for n, v in names.items() if n.startswith("alpha-")} for k, names in alpha.items()}
    c.run("destroy")
    a.run("destroy")
    assert _ours(uri, "beta") == before, "destroying alpha touched nothing of beta's"
    assert _count_leaks(uri, "alpha") == []
    b.run("destroy")
    assert _count_leaks(uri, "beta") == []


def test_libvirtd_restarted_in_the_middle_of_an_up(shared):
    ledger.FAULTS["scenarios"] += 1
    front = Front(shared, "restart", _config("10.98.0.0/24"))
    host = embedded.embedded_host("local", state_root=front.state)
    run, marker = front.pause_at("up", "clone")
    try:
        embedded.stop(host)                       # the daemon goes away mid-run (its guests and config stay)
        embedded.ensure_running(host)
        ledger.FAULTS["faults_injected"] += 1
    finally:
        marker.unlink()
    code = run.wait(timeout=900)
    said = front.said()
    if code != 0:                                  # it may fail, but clearly
        assert "lost the connection to libvirt host" in said and "run it again" in said, said[-3000:]
    front.run("up")                               # the next run converges
    held = _ours(host.uri, "restart")
    assert held["domains"] == ["restart-d1", "restart-d2"]
    assert len(held["volumes"]) == 7, held["volumes"]
    front.run("destroy")
    assert _count_leaks(host.uri, "restart") == []


def test_a_pool_that_runs_out_of_space_fails_clearly_and_leaves_nothing_half_made(shared):
    ledger.FAULTS["scenarios"] += 1
    front = Front(shared, "full", _config("10.99.0.0/24"))
    host = embedded.embedded_host("local", state_root=front.state)
    embedded.ensure_running(host)
    small = shared / "small-pool"
    small.mkdir()
    daemon = int((host.state_dir / "run" / "libvirtd.pid").read_text())
    # A 64 MiB tmpfs where the daemon sees it (its own mount namespace): far too small for the image.
    subprocess.run(["nsenter", "-t", str(daemon), "-m", "mount", "-t", "tmpfs", "-o", "size=64m", "vdesk-full",
                    str(small)], check=True)
    try:
        front.write(_config("10.99.0.0/24", path=str(small)))
        failed = front.run("up", ok=False)
        ledger.FAULTS["faults_injected"] += 1
        out = failed.stdout + failed.stderr
        assert "No space left on device" in out or "space" in out.lower(), out[-3000:]
        volumes = _ours(host.uri, "full")["volumes"]
        assert not any(v.endswith("-disk.qcow2") for v in volumes), f"the image that did not fit is left: {volumes}"
        assert not any(v in ("full-d1.qcow2", "full-d2.qcow2") for v in volumes), volumes
        # Every file in the pool is a whole volume the stack's state knows (destroy below removes them).
        inside = subprocess.run(["nsenter", "-t", str(daemon), "-m", "ls", "-A", str(small)], capture_output=True,
                                text=True, check=True).stdout.split()
        assert sorted(inside) == volumes, f"files in the full pool that are no volume: {set(inside) - set(volumes)}"
        exported = json.loads(subprocess.run(["pulumi", "stack", "export", "--stack", "full"], env=front.env,
                                             cwd=front.state / "workdirs" / "full", capture_output=True, text=True,
                                             check=True).stdout)
        recorded = {r.get("outputs", {}).get("name") for r in exported["deployment"]["resources"]}
        assert set(volumes) <= recorded, f"volumes the state does not know: {set(volumes) - recorded}"
    finally:
        front.run("destroy")
        subprocess.run(["nsenter", "-t", str(daemon), "-m", "umount", str(small)], check=False)
    assert _count_leaks(host.uri, "full") == []
