"""End to end: the `ci` stack on a real libvirtd, a real guest, checked over SSH.

One desktop is brought up with the Automation API, reached over SSH from
inside the host's network namespace with its pinned host key, brought up again
(zero changes), destroyed, and then every libvirt object and file is counted.
It has a home volume and a read-only share. In between, the image's recipe
changes (a rollout: a new system disk; the user's file in the home, the host
key, MAC and address stay), and then the Pulumi state is lost while the guest runs, and `adopt: true`
takes the running desktop over: same domain and disk, one controlled restart,
and the readiness gate passes with the newly pinned host key.
"""
from __future__ import annotations

import json
from pathlib import Path

import libvirt
import pytest
from pulumi import automation as auto

from components import xmlmodel
from components.host import embedded
from components.guest.ssh import SshTarget, connect
from components.guest.screenshot import measure_png
from tests.support.host import counts, inventory
from tests.support.project import isolated_env, lose_state, make_project, open_stack, rewrite_config, stack_config

pytestmark = [pytest.mark.e2e, pytest.mark.guests]
STACK = "ci"
ROLLOUT_RECIPE = {"base": "debian12", "packages": ["tree"]}    # the image rollout: one package more
IMAGE_RECIPES = [ROLLOUT_RECIPE]          # built in the background while earlier tests run (tests/support/prebuild.py)


def ci_config(share: Path) -> dict:
    """The `ci` stack, plus a home volume and a read-only share (the guest boot is paid for once)."""
    config = stack_config(STACK)
    config["vdesk:shares"] = {"docs": {"host": "local", "path": str(share)}}
    desk = config["vdesk:desktops"][STACK]
    desk.update(shares=["docs"], home="1GiB", home_on_removal="delete")
    return config


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    state = tmp_path_factory.mktemp("vdesk-state")
    env = isolated_env(state)
    share = tmp_path_factory.mktemp("share")
    share.chmod(0o755)     # pytest makes it 0700; the guest sees the host's modes, and its user is not root
    (share / "hello.txt").write_text("hello from the host\n")
    project = make_project(tmp_path_factory.mktemp("project"), STACK, ci_config(share))
    stack = open_stack(project, STACK, env)
    yield {"stack": stack, "state": state, "project": project, "share": share}
    try:
        stack.destroy(on_output=print)
    finally:
        embedded.stop(embedded.embedded_host("local", state_root=state), purge=True)


def _mac(uri: str) -> str:
    conn = libvirt.open(uri)
    try:
        return xmlmodel.Domain.from_xml(conn.lookupByName(f"{STACK}-{STACK}").XMLDesc(0)).interfaces[0].mac
    finally:
        conn.close()


def files_under(path: Path) -> list[str]:
    return sorted(str(p) for p in path.rglob("*") if p.is_file() or p.is_socket()) if path.exists() else []


def test_up_check_idempotence_and_clean_destroy(world):
    stack: auto.Stack = world["stack"]
    result = stack.up(on_output=print)
    assert result.summary.result == "succeeded"
    outputs = {k: v.value for k, v in result.outputs.items()}
    desk = outputs["desktops"][STACK]
    assert desk["state"] == "running" and desk["ip"].startswith("10.78.0.")
    assert "nsenter --net=" in desk["ssh_command"] and f"ci@{desk['ip']}" in desk["ssh_command"]
    assert desk["display_uri"].startswith("vnc+unix://")
    # Proof the display works: a non-blank PNG of the console, taken through libvirt.
    shot = measure_png(Path(desk["screenshot"]).read_bytes())
    assert shot[0] >= 640 and shot[1] >= 400 and shot[2] > 1, shot
    host_uri = outputs["host_uri"]
    netns = outputs["hosts"]["local"]["netns"]

    # The gate already required cloud-init "done"; check it again as a user would, with the pinned key.
    target = SshTarget(host=desk["ip"], user="ci", private_key=desk["login_private_key"],
                       host_public_key=desk["host_key"], netns=netns)
    with connect(target, timeout_s=60) as session:
        status = json.loads(session.run(["cloud-init", "status", "--format", "json"]).stdout)
        assert status["status"] == "done" and not status.get("errors")
        assert session.run(["systemctl", "is-active", "ssh"]).stdout.strip() == "active"
        assert session.run("hostname").stdout.strip() == STACK
        assert session.run("sudo -n true").rc == 0
        # /home is the desktop's own volume, and the user's home is on it.
        assert session.run("lsblk -no LABEL \"$(findmnt -n -o SOURCE /home)\"").stdout.strip() == "vdesk-home"
        assert session.run("test -d /home/ci").rc == 0
        # The read-only share: readable, and not writable even by root after a remount read-write in the guest.
        read = session.run("cat /mnt/shares/docs/hello.txt")
        assert read.stdout == "hello from the host\n", read.stderr
        assert session.run("sudo -n touch /mnt/shares/docs/from-guest").rc != 0
        session.run("sudo -n mount -o remount,rw /mnt/shares/docs")
        assert session.run("sudo -n touch /mnt/shares/docs/from-guest").rc != 0
    assert sorted(p.name for p in world["share"].iterdir()) == ["hello.txt"], "nothing written on the host"

    # A second up of the same declaration changes nothing.
    again = stack.up(on_output=print)
    changes = {k: v for k, v in (again.summary.resource_changes or {}).items() if k != "same"}
    assert changes == {}, again.summary.resource_changes
    stack.preview(expect_no_changes=True)          # `pulumi preview --expect-no-changes` fails on any change

    pools_dir = world["state"] / "hosts" / "local" / "pools"
    assert files_under(pools_dir)  # disk, seed, image, kernel, initrd exist while up
    before = counts(host_uri)
    assert before == {"domains": 1, "networks": 1, "pools": 1, "volumes": 6}, before

    # An image rollout: the image's recipe changes (one more package), `up` builds the new image and
    # replaces the system disk. The home volume, the pinned host key, the MAC and the address stay.
    with connect(target, timeout_s=60) as session:
        assert session.run("printf 'kept\\n' > ~/notes.txt && sync").rc == 0
        assert session.run("tree --version").rc != 0, "the old image has no tree"
    mac = _mac(host_uri)
    config = ci_config(world["share"])
    config["vdesk:images"]["debian12"] = {"recipe": dict(ROLLOUT_RECIPE)}
    rewrite_config(world["project"], STACK, config)
    rolled = stack.up(on_output=print)
    assert rolled.summary.result == "succeeded"
    assert (rolled.summary.resource_changes or {}).get("replace"), rolled.summary.resource_changes
    desk = rolled.outputs["desktops"].value[STACK]
    assert desk["host_key"] == target.host_public_key, "the pinned host key survives the rollout"
    assert desk["ip"] == target.host and _mac(host_uri) == mac, "same address, same MAC"
    with connect(target, timeout_s=60) as session:        # the same pinned key still opens it
        assert session.run("tree --version").rc == 0, "the desktop runs the new image"
        assert session.run("cat ~/notes.txt").stdout == "kept\n", "the home kept the user's file"
    assert counts(host_uri)["domains"] == 1

    # The state is lost while the desktop runs; adopt: true takes everything over.
    identity = inventory(host_uri)
    lose_state(stack)
    for section, name in (("vdesk:pools", "main"), ("vdesk:networks", "lan"), ("vdesk:desktops", STACK)):
        config[section][name]["adopt"] = True
    rewrite_config(world["project"], STACK, config)
    adopted = stack.up(on_output=print)
    assert adopted.summary.result == "succeeded"
    assert inventory(host_uri) == identity, "adopted in place: same domain, network, pool and volumes"
    desk = adopted.outputs["desktops"].value[STACK]
    assert desk["host_key"] != target.host_public_key, "a new host key was generated and pinned"
    with connect(SshTarget(host=desk["ip"], user="ci", private_key=desk["login_private_key"],
                           host_public_key=desk["host_key"], netns=netns), timeout_s=60) as session:
        assert session.run("hostname").stdout.strip() == STACK

    stack.destroy(on_output=print)
    assert counts(host_uri) == {"domains": 0, "networks": 0, "pools": 0, "volumes": 0}
    assert files_under(pools_dir) == []
    assert files_under(world["state"] / "hosts" / "local" / "displays") == []
