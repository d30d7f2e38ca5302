"""The `lab` stack: a desktop and a system container on one network.

The container's own checks pass inside it; the desktop reaches the container's
SSH port over that network (tested over SSH from the desktop); root in the
container is an unprivileged uid on the host; destroy leaves nothing.
"""
from __future__ import annotations

from pathlib import Path

import libvirt
import pytest

from components.host import embedded
from components.resources.container import ContainerExec
from components.guest.ssh import SshTarget, connect
from tests.support.project import isolated_env, make_project, open_stack, stack_config

pytestmark = [pytest.mark.e2e, pytest.mark.guests]


def host_uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def count(uri: str) -> int:
    conn = libvirt.open(uri)
    try:
        return len(conn.listAllDomains(0))
    finally:
        conn.close()


def test_desktop_reaches_container_and_container_root_is_unprivileged(tmp_path):
    state = tmp_path / "state"
    host = embedded.embedded_host("local", state_root=state)
    stack = open_stack(make_project(tmp_path / "project", "lab", stack_config("lab")), "lab", isolated_env(state))
    try:
        outputs = {k: v.value for k, v in stack.up().outputs.items()}
        box, desk = outputs["containers"]["files"], outputs["desktops"]["desk"]
        assert box["ip"].startswith("10.83.0.") and box["state"] == "running"

        # root inside the container is an unprivileged uid on the host
        init = ContainerExec(host.lxc_uri, box["name"]).pid()
        assert host_uid_of(init) == box["uid_base"] >= 100000
        inside = ContainerExec(host.lxc_uri, box["name"]).run("id -u")
        assert inside.stdout.strip() == "0"

        # the desktop reaches the container over the lab network
        target = SshTarget(host=desk["ip"], user="lab", private_key=desk["login_private_key"],
                           host_public_key=desk["host_key"], netns=outputs["hosts"]["local"]["netns"])
        with connect(target, timeout_s=60) as session:
            banner = session.run(["timeout", "10", "bash", "-c",
                                  f"exec 3<>/dev/tcp/{box['ip']}/22; head -c 8 <&3"])
        assert banner.stdout.startswith("SSH-2.0"), banner

        # Applied twice, the declaration is a no-op.
        again = stack.up()
        assert {k: v for k, v in (again.summary.resource_changes or {}).items() if k != "same"} == {}
        stack.preview(expect_no_changes=True)

        stack.destroy()
        assert count(host.uri) == 0 and count(host.lxc_uri) == 0
        leftovers = [p for p in Path("/var/lib/vdesk", host.netns_name).rglob("*") if not p.is_dir()]
        assert leftovers == []
        assert not any(p.is_file() for p in (state / "hosts" / "local" / "pools").rglob("*"))
    finally:
        stack.destroy()
        embedded.stop(host, purge=True)
