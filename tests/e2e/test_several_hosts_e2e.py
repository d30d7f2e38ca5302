"""End to end on two KVM hosts: this machine's embedded libvirtd, and a remote one reached only over SSH.

The remote host (tests/support/remote_host.py) is a second libvirtd in namespaces of its own with an
sshd inside them; the engine runs as a runner that reaches it only through that sshd
(qemu+ssh://root@10.251.0.2/system), with its key pinned in the runner's known_hosts. Four
users' desktops are placed by the documented rule, two on each host; one on each host runs (so
the SSH gate is proven on both, the remote one through the host's sshd) and one on each is
stopped. Then: `make check` reaches both; the remote host goes away and only its desktops
fail, naming it; the remote host is taken off the profile's list and only its desktops move;
destroy leaves nothing on either host.
"""
from __future__ import annotations

import copy
import json
import subprocess

import pytest
from pulumi import automation as auto

from components.guest.netns import connect_tcp
from components.guest.ssh import SshTarget, connect
from components.host import embedded
from components.host.placement import ranked
from tests.e2e.test_users_preview import Steps
from tests.support.host import counts, inventory
from tests.support.project import REPO, isolated_env, make_project, open_stack, rewrite_config

pytestmark = [pytest.mark.e2e, pytest.mark.guests]
STACK = "multi"
HOSTS = ("local", "far")
RUNNING = ("ann", "ben")          # ann ranks local first, ben far: one running desktop on each host
STOPPED = ("gus", "cy")           # gus local, cy far
USERS = (*RUNNING, *STOPPED)


def multi_config(remote_uri: str, *, profile_hosts="all", extra=()) -> dict:
    return {
        "vdesk:hosts": {"local": {"uri": "embedded", "accelerator": "tcg"},
                        "far": {"uri": remote_uri, "accelerator": "tcg"}},
        "vdesk:pools": {"main": {"hosts": "all"}},
        "vdesk:networks": {"lan": {"hosts": "all", "cidr": "10.79.0.0/24"}},
        "vdesk:images": {"debian12": {"golden": "debian12"}},
        "vdesk:profiles": {"desk": {
            "hosts": profile_hosts, "pool": "main", "network": "lan", "image": "debian12", "memory": "768MiB",
            "vcpus": 1, "disk": "4GiB", "running": False,
            "checks": [{"service": "ssh"}, {"file": "/etc/hostname", "contains": "{user}"}]}},
        "vdesk:users": [{"name": n, "profile": "desk", **({"running": True} if n in RUNNING else {})}
                        for n in USERS] + list(extra),
        "vdesk:timeouts": {"address": 300, "ssh": 300, "cloud_init": 600, "shutdown": 20},
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory, remote_host):
    state = tmp_path_factory.mktemp("vdesk-state")
    # Started here, outside the runner's mount namespace, so its network namespace is everyone's to see.
    local = embedded.ensure_running(embedded.embedded_host("local", state_root=state))
    env = remote_host.as_runner(isolated_env(state))
    project = make_project(tmp_path_factory.mktemp("project"), STACK, multi_config(remote_host.uri))
    stack = open_stack(project, STACK, env)
    yield {"stack": stack, "project": project, "env": env, "local": local, "far": remote_host, "state": state}
    try:
        remote_host.start_sshd() if remote_host.sshd is None else None
        stack.destroy(on_output=print)
    finally:
        embedded.stop(local, purge=True)


def uris(world) -> dict[str, str]:
    return {"local": world["local"].uri, "far": world["far"].local_uri}


def domains(world) -> dict[str, dict[str, str]]:
    return {h: inventory(uri)["domains"] for h, uri in uris(world).items()}


def test_four_desktops_are_placed_two_per_host_and_pass_the_gate_on_both(world):
    expected = {n: ranked(n, HOSTS)[0] for n in USERS}
    assert expected == {"ann": "local", "ben": "far", "gus": "local", "cy": "far"}, "the names were chosen so"
    result = world["stack"].up(on_output=print)
    assert result.summary.result == "succeeded"
    out = {k: v.value for k, v in result.outputs.items()}
    assert out["placement"] == expected
    assert {n: out["desktops"][n]["state"] for n in USERS} == {"ann": "running", "ben": "running",
                                                               "gus": "stopped", "cy": "stopped"}
    assert out["hosts"]["far"]["ssh_jump"] == "root@10.251.0.2:22"
    assert out["desktops"]["ben"]["ssh_command"].startswith("ssh -J root@10.251.0.2:22 ")
    # Each host has its pool, its network, the image once (disk, kernel, initrd) and its two desktops.
    for host, uri in uris(world).items():
        assert counts(uri) == {"domains": 2, "networks": 1, "pools": 1, "volumes": 3 + 2 * 2}, host
    assert {h: sorted(d) for h, d in domains(world).items()} == {"local": ["multi-ann", "multi-gus"],
                                                                  "far": ["multi-ben", "multi-cy"]}

    # The remote guest answers only through its host: no route from the runner, a session via the jump.
    ben = out["desktops"]["ben"]
    with pytest.raises(OSError):
        connect_tcp(ben["ip"], 22, netns=world["far"].runner_netns, timeout_s=3).close()
    target = SshTarget(host=ben["ip"], user="ben", private_key=ben["login_private_key"],
                       host_public_key=ben["host_key"], jump=world["far"].jump())
    with connect(target, timeout_s=60) as session:
        assert session.run("hostname").stdout.strip() == "ben"


def test_make_check_reaches_the_guests_on_both_hosts(world):
    run = subprocess.run(["as-runner", "python", "-m", "components.cli.checks", STACK, "--json"],
                         env=world["env"], cwd=world["project"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr + run.stdout
    report = json.loads(run.stdout)
    assert report["failed"] == 0
    assert {n: d["passed"] for n, d in report["desktops"].items()} == dict.fromkeys(USERS, True)
    assert {n for n, d in report["desktops"].items() if d["skipped"]} == set(STOPPED)
    assert all(len(report["desktops"][n]["checks"]) == 2 for n in RUNNING)


def test_an_unreachable_host_fails_only_its_own_desktops_naming_it(world):
    stack, before = world["stack"], domains(world)
    extra = [{"name": "kim", "profile": "desk", "hosts": ["local"]}, {"name": "dee", "profile": "desk",
                                                                     "hosts": ["far"]}]
    rewrite_config(world["project"], STACK, multi_config(world["far"].uri, extra=extra))
    world["far"].stop_sshd()
    try:
        with pytest.raises(auto.CommandError) as failed:
            stack.up(on_output=print)
    finally:
        world["far"].start_sshd()
    message = str(failed.value)
    assert "host 'far' (qemu+ssh://root@10.251.0.2/system?no_tty=1) cannot be reached" in message
    assert "Its desktops (ben, cy, dee) were not brought up or changed" in message
    now = domains(world)
    assert now["local"] == {**before["local"], "multi-kim": now["local"]["multi-kim"]}, "local went on"
    assert now["far"] == before["far"], "far is as it was"
    rewrite_config(world["project"], STACK, multi_config(world["far"].uri))
    back = stack.up(on_output=print)
    assert back.summary.result == "succeeded"
    assert domains(world) == before


def test_taking_a_host_off_the_list_moves_only_its_desktops(world):
    stack, before = world["stack"], domains(world)
    rewrite_config(world["project"], STACK, multi_config(world["far"].uri, profile_hosts=["local"]))
    steps = Steps()
    said = stack.preview(on_event=steps).stdout
    for name in ("ben", "cy"):
        assert f"placement: desktop {name} moves from host far to host local (far is no longer one of its hosts)" \
            in said, said
    changed = steps.changed()
    images = {name: op for name, op in changed.items() if name.startswith("image-")}
    assert {name.split("-")[0] for name in changed if name not in images} == {"ben", "cy"}, changed
    # far needs the image no more: its copy goes (the image is where desktops use it, once per host).
    assert images == {f"image-debian12-main-far-{part}": "delete" for part in ("disk", "kernel", "initrd")}
    assert {op for name, op in steps.changed().items() if name in ("ben-vm", "cy-vm", "ben-disk")} <= \
        {"replace", "create-replacement", "delete-replaced"}
    result = stack.up(on_output=print)
    assert result.summary.result == "succeeded"
    assert result.outputs["placement"].value == dict.fromkeys(USERS, "local")
    now = domains(world)
    assert now["far"] == {}
    assert {n: now["local"][n] for n in before["local"]} == before["local"], "ann and gus were not touched"
    assert result.outputs["desktops"].value["ben"]["state"] == "running"   # and passed the gate on local


def test_destroy_leaves_nothing_on_either_host(world):
    world["stack"].destroy(on_output=print)
    for host, uri in uris(world).items():
        assert counts(uri) == {"domains": 0, "networks": 0, "pools": 0, "volumes": 0}, host
