"""Ten desktops created in one `pulumi up`, in parallel on one pool, five times over.

The failure users of other tools report ("pool has asynchronous jobs running",
port clashes) would show here. The desktops are declared stopped, so the run
measures provisioning, not ten TCG boots on two cores. A last run starts all
ten guests before destroy: destroy must shut running guests down and still
leave no object and no file behind. Only that one is marked `guests`: the five
runs boot nothing, so they need not wait in the guests' stream (tests/conftest.py).
"""
from __future__ import annotations

import copy

import libvirt
import pytest

from components.host import embedded
from tests.support.host import counts
from tests.support.project import isolated_env, make_project, open_stack, stack_config

pytestmark = pytest.mark.integration
COUNT, RUNS = 10, 5


def ten_desktops() -> dict:
    cfg = copy.deepcopy(stack_config("ci"))
    template = cfg["vdesk:desktops"].pop("ci")
    template["running"] = False
    template.pop("checks", None)
    cfg["vdesk:networks"]["lan"]["cidr"] = "10.81.0.0/24"
    for i in range(COUNT):
        cfg["vdesk:desktops"][f"d{i}"] = dict(template, users=[{"name": f"u{i}"}])
    return cfg


def files_of(state, names: list[str]) -> list[str]:
    """Files on the host side that belong to these desktops (disks, seeds, display sockets, run files)."""
    root = state / "hosts" / "local"
    return sorted(str(f.relative_to(root)) for f in root.rglob("*")
                  if any(n in f.name for n in names) and not f.is_dir())


def test_ten_desktops_in_parallel_five_times(tmp_path):
    state = tmp_path / "state"
    stack = open_stack(make_project(tmp_path / "project", "par", ten_desktops()), "par", isolated_env(state))
    host = embedded.embedded_host("local", state_root=state)
    try:
        for run in range(RUNS):
            result = stack.up(parallel=32)
            assert result.summary.result == "succeeded", f"run {run}"
            uri = result.outputs["host_uri"].value
            # 10 desktops: disk + seed each, plus the imported image (disk, kernel, initrd)
            assert counts(uri) == {"domains": COUNT, "networks": 1, "pools": 1,
                                         "volumes": 2 * COUNT + 3}, f"run {run}"
            stack.destroy(parallel=32)
            assert counts(uri) == {"domains": 0, "networks": 0, "pools": 0, "volumes": 0}, f"run {run}"
            assert not any((state / "hosts" / "local" / "pools").rglob("*.*")), f"run {run}: files left"
    finally:
        stack.destroy()
        embedded.stop(host, purge=True)


@pytest.mark.guests
def test_destroy_of_ten_running_desktops_leaves_nothing(tmp_path):
    state = tmp_path / "state"
    stack = open_stack(make_project(tmp_path / "project", "run10", ten_desktops()), "run10", isolated_env(state))
    host = embedded.embedded_host("local", state_root=state)
    names = [f"run10-d{i}" for i in range(COUNT)]
    try:
        uri = stack.up(parallel=32).outputs["host_uri"].value
        conn = libvirt.open(uri)
        for name in names:   # started out of band: booting guests, the hardest moment to be stopped
            conn.lookupByName(name).create()
        assert sum(d.isActive() for d in conn.listAllDomains(0)) == COUNT
        assert files_of(state, names), "the running desktops have files (the check below is not vacuous)"
        conn.close()
        stack.destroy(parallel=32)
        assert counts(uri) == {"domains": 0, "networks": 0, "pools": 0, "volumes": 0}
        assert files_of(state, names) == []
        assert not any((state / "hosts" / "local" / "pools").rglob("*.*"))
    finally:
        stack.destroy()
        embedded.stop(host, purge=True)
