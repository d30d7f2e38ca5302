"""End to end: an idle desktop on the project's own host is warned, suspended (managed save) and woken.

The `ci` stack's console-image desktop is brought up; its domain is given a
short idle policy (the stack file cannot declare one yet: the hook is the
domain's metadata, set here as `up` will set it). The host's lifecycle service,
supervised in the host's state dir, sees no input (no console, no SSH terminal,
no graphical session; the guest agent answers), warns, then suspends: qemu is
gone and libvirt holds a managed save image. Woken, the guest is the same one:
a file in RAM (/dev/shm) and one in the home written before the sleep are
there, and a process started then still runs, checked over SSH.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import libvirt
import pytest

from components.guest.ssh import SshTarget, connect
from components.host import embedded
from components.lifecycle import IdlePolicy, LifecycleSettings, asleep, set_policy, supervisor, wake
from tests.support.host import qemu_pid
from tests.support.project import isolated_env, make_project, open_stack, stack_config

pytestmark = [pytest.mark.e2e, pytest.mark.guests]
STACK = "ci"
DOMAIN = f"{STACK}-{STACK}"
POLICY = IdlePolicy(after="60s", warn="15s")


def wait_for(condition, timeout_s: float, what: str, log: Path, poll_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not within {timeout_s:g}s\n--- {log} ---\n{_read(log)}")
        time.sleep(poll_s)
    return value


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else "(no log)"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    state = tmp_path_factory.mktemp("vdesk-state")
    config = stack_config(STACK)
    config["vdesk:networks"]["lan"]["cidr"] = "10.89.0.0/24"
    project = make_project(tmp_path_factory.mktemp("project"), STACK, config)
    stack = open_stack(project, STACK, isolated_env(state))
    host = embedded.embedded_host("local", state_root=state)
    yield {"stack": stack, "host": host}
    try:
        supervisor.stop(host.state_dir / "lifecycle")
        stack.destroy(on_output=print)
    finally:
        embedded.stop(host, purge=True)


def test_idle_desktop_is_warned_suspended_and_woken_as_it_was(world):
    result = world["stack"].up(on_output=print)
    assert result.summary.result == "succeeded"
    outputs = {k: v.value for k, v in result.outputs.items()}
    desk = outputs["desktops"][STACK]
    host = world["host"]
    target = SshTarget(host=desk["ip"], user="ci", private_key=desk["login_private_key"],
                       host_public_key=desk["host_key"], netns=outputs["hosts"]["local"]["netns"])
    with connect(target, timeout_s=60) as session:
        assert session.run("echo kept-in-ram > /dev/shm/before-sleep && echo kept-on-disk > ~/before-sleep").rc == 0
        started = session.run("nohup sleep 86400 >/dev/null 2>&1 & echo $!")
        sleeper = int(started.stdout.strip())
    qemu = qemu_pid(host, DOMAIN)

    conn = libvirt.open(outputs["host_uri"])
    try:
        dom = conn.lookupByName(DOMAIN)
        set_policy(dom, POLICY)
        lifecycle_dir = host.state_dir / "lifecycle"
        supervisor.ensure_running(lifecycle_dir, LifecycleSettings(libvirt_uri=outputs["host_uri"], poll=2))
        log = lifecycle_dir / supervisor.LOG_FILE
        wait_for(lambda: f"warn desktop={DOMAIN}" in _read(log), 240, "the warning", log)
        wait_for(lambda: asleep(dom), 240, "the managed save", log)
        text = _read(log)
        print(text)
        assert f"suspend desktop={DOMAIN} how=suspended (managed save) reason=no input for" in text, text
        assert "left alone" not in text, text                  # the guest agent answered every time
        assert not os.path.exists(f"/proc/{qemu}")             # the host's memory is given back

        assert wake(conn, DOMAIN) == "restored"
        assert dom.isActive() and not dom.hasManagedSaveImage(0)
        with connect(target, timeout_s=120) as session:
            assert session.run("cat /dev/shm/before-sleep").stdout == "kept-in-ram\n"
            assert session.run("cat ~/before-sleep").stdout == "kept-on-disk\n"
            assert session.run(f"kill -0 {sleeper}").rc == 0   # the same boot, its processes still running
        assert dom.isActive()                                  # a wake is a start: not suspended again at once
    finally:
        conn.close()
