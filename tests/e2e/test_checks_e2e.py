"""The readiness gate on a real guest: checks that must fail do, a swapped host key
fails closed, a static address works without DHCP, and an unreachable guest times
out within its configured bound.

One guest is booted, with a static address on a network without DHCP, for
everything but the timeout (checks and keys change; the gate re-runs without a
new boot: each TCG boot costs minutes); the unreachable guest is a second stack.
"""
from __future__ import annotations

import copy
import io
import time

import pytest
from pulumi import automation as auto

from components.cli import checks as checks_cli
from components.host import embedded
from components.guest.ssh import SshTarget, connect
from tests.support.project import isolated_env, make_project, open_stack, stack_config

pytestmark = [pytest.mark.e2e, pytest.mark.guests]

PASSING = [{"service": "ssh"}, {"file": "/etc/hostname", "contains": "ci"}]
MUST_FAIL = PASSING + [
    {"absent_package": "openssh-server"},
    {"file": "/etc/vdesk-never-written"},
    {"command": "false"},
]


def config(stack_prefix: str, cidr: str, checks=None, **network):
    cfg = copy.deepcopy(stack_config("ci"))
    cfg["vdesk:networks"]["lan"].update(cidr=cidr, **network)
    if checks is not None:
        cfg["vdesk:desktops"]["ci"]["checks"] = checks
    return cfg


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    state = tmp_path_factory.mktemp("vdesk-state")
    yield state
    embedded.stop(embedded.embedded_host("local", state_root=state), purge=True)


@pytest.fixture
def stack_factory(state, tmp_path):
    stacks = []

    def make(name: str, cfg: dict):
        project = make_project(tmp_path / name, name, cfg)
        stack = open_stack(project, name, isolated_env(state))
        stacks.append(stack)
        return stack, project

    yield make
    for stack in stacks:
        stack.destroy()


def test_a_static_address_desktop_fails_closed_on_failing_checks_and_a_swapped_host_key(stack_factory):
    # No lease and no agent needed: the seed configures the address and the gate goes straight to SSH.
    cfg = config("gate", "10.79.0.0/24", PASSING, dhcp=False)
    cfg["vdesk:desktops"]["ci"]["address"] = "10.79.0.50"
    stack, project = stack_factory("gate", cfg)
    outputs = {k: v.value for k, v in stack.up().outputs.items()}
    desk = outputs["desktops"]["ci"]
    assert desk["ip"] == "10.79.0.50"
    target = SshTarget(host=desk["ip"], user="ci", private_key=desk["login_private_key"],
                       host_public_key=desk["host_key"], netns=outputs["hosts"]["local"]["netns"])
    with connect(target, timeout_s=60) as session:
        route = session.run("ip -4 route show default").stdout
    assert "via 10.79.0.1" in route, route

    # A set that must fail: one readable report with sentence, command and exit code per failure.
    def gate_config(checks):
        changed = copy.deepcopy(cfg)
        changed["vdesk:desktops"]["ci"]["checks"] = checks
        return changed

    make_project(project, "gate", gate_config(MUST_FAIL))
    with pytest.raises(auto.CommandError) as err:
        stack.up()
    text = str(err.value)
    assert "desktop gate-ci: 3 of 5 checks failed" in text
    assert "FAILED  package openssh-server is not installed" in text
    assert "FAILED  file /etc/vdesk-never-written exists" in text
    assert "command:   false" in text and "exit code: 1" in text

    # Swap the guest's host key behind vdesk's back: every later connection must fail closed.
    with connect(target, timeout_s=60) as session:
        swapped = session.run("rm -f /tmp/k /tmp/k.pub && ssh-keygen -q -t ed25519 -N '' -f /tmp/k && "
                              "cp /tmp/k /etc/ssh/ssh_host_ed25519_key && "
                              "cp /tmp/k.pub /etc/ssh/ssh_host_ed25519_key.pub && systemctl restart ssh", sudo=True)
        assert swapped.rc == 0, swapped
    make_project(project, "gate", gate_config(PASSING + [{"port": 22}]))
    started = time.monotonic()
    with pytest.raises(auto.CommandError) as err:
        stack.up()
    assert "host key" in str(err.value).lower() and "desktop 'gate-ci' is not ready" in str(err.value)
    assert time.monotonic() - started < 120  # refused at once, not after the SSH timeout (300 s)

    out = io.StringIO()
    assert checks_cli.run(outputs, out=out, timeout_s=30) == 1
    assert "host key" in out.getvalue().lower()


def test_unreachable_guest_times_out_within_its_bound(stack_factory):
    cfg = config("lost", "10.80.0.0/24", PASSING, dhcp=False)   # no DHCP: the guest never gets an address
    cfg["vdesk:timeouts"]["address"] = 10
    # Destroy finds it early in its boot, where it ignores the ACPI power button: no graceful wait.
    cfg["vdesk:timeouts"]["shutdown"] = 1
    stack, _ = stack_factory("lost", cfg)
    events = []
    started = time.monotonic()
    with pytest.raises(auto.CommandError) as err:
        stack.up(on_event=events.append)
    elapsed = time.monotonic() - started
    text = str(err.value)
    assert "timed out after 10 s waiting for an IPv4 address for desktop 'lost-ci'" in text, text
    assert elapsed < 10 + 90, elapsed   # the bound, plus creating pool, image volumes and domain
