"""Tests for `make check`: the CLI's core against an in-process SSH server on 127.0.0.1, and reading outputs."""

import io
import json
import os
import socket

import pytest

from components.cli import checks as checks_cli
from tests.unit.guest.test_guest_ssh import USER, LoopbackSshServer, _ed25519, _public_line


@pytest.fixture
def server():
    host_key, _ = _ed25519()
    user_key, user_pair = _ed25519()
    srv = LoopbackSshServer([host_key], user_key)
    srv.host_line = _public_line(host_key)
    srv.private_key = user_pair.private_openssh
    yield srv
    srv.close()


@pytest.fixture
def listening_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


def _desktop(server, checks=None, **extra):
    desktop = {
        "name": "vdesk-x",
        "ip": "127.0.0.1",
        "state": "running",
        "user": USER,
        "host_key": server.host_line,
        "login_private_key": server.private_key,
        **extra,
    }
    if checks is not None:
        desktop["checks"] = checks
    return desktop


def _outputs(desktops):
    return {"host_uri": "test:///default", "hosts": {"local": {"uri": "test:///default", "netns": None}},
            "desktops": desktops}


def _run(outputs, server, **kw):
    out = io.StringIO()
    status = checks_cli.run(outputs, port=server.port, timeout_s=10, out=out, **kw)
    return status, out.getvalue()


def _table(text):
    """Table rows as lists of cells split on runs of 2+ spaces (header and rule excluded)."""
    lines = text.split("\n\n")[0].splitlines()
    assert lines[0].split() == ["desktop", "check", "result", "detail"]
    return [[cell for cell in line.split("  ") if cell.strip()] for line in lines[2:]]


def test_passing_and_failing_desktops(server, listening_port):
    outputs = _outputs({
        "dev": _desktop(server, [
            {"package": "bash"},
            {"file": "/etc/hostname"},
            {"port": listening_port},
            {"user": "root"},
            {"command": "echo ready", "output_matches": "^ready$"},
            {"absent_package": "vdesk-no-such-package"},
        ], name="vdesk-dev"),
        "ops": _desktop(server, [
            {"package": "bash"},
            {"package": "vdesk-no-such-package"},
            {"command": "echo 'disk full' >&2; exit 5"},
        ], name="vdesk-ops"),
        "spare": {"name": "vdesk-spare", "ip": None, "state": "stopped"},
    })
    status, text = _run(outputs, server)
    assert status == 1
    rows = [[c.strip() for c in row] for row in _table(text)]
    assert rows[:8] == [
        ["dev", "SSH login with the pinned host key", "ok"],
        ["dev", "package bash is installed", "ok"],
        ["dev", "file /etc/hostname exists", "ok"],
        ["dev", f"port tcp/{listening_port} is listening", "ok"],
        ["dev", "user root exists", "ok"],
        ["dev", "command `echo ready` succeeds with output matching '^ready$'", "ok"],
        ["dev", "package vdesk-no-such-package is not installed", "ok"],
        ["ops", "SSH login with the pinned host key", "ok"],
    ]
    assert rows[8] == ["ops", "package bash is installed", "ok"]
    assert rows[9] == [
        "ops", "package vdesk-no-such-package is installed", "FAILED",
        "dpkg does not know this package; exit 1: dpkg-query --show '--showformat=${Status}\\n' -- vdesk-no-such-package",
    ]
    assert rows[10] == [
        "ops", "command `echo 'disk full' >&2; exit 5` succeeds", "FAILED",
        "non-zero exit code; exit 5: echo 'disk full' >&2; exit 5",
    ]
    assert rows[11] == ["spare", "(all checks)", "skipped", "desktop is stopped"]
    assert len(rows) == 12
    # The full report follows for the failing desktop only, with the command's output.
    assert "desktop ops: 2 of 3 checks failed" in text
    assert "            disk full" in text.splitlines()
    assert "desktop dev:" not in text
    assert text.rstrip().endswith("1 of 3 desktop(s) failed their checks")
    # Every check really went over SSH.
    assert "echo ready" in server.commands
    assert "echo 'disk full' >&2; exit 5" in server.commands


def test_all_passing_exits_zero_and_json(server):
    outputs = _outputs({"dev": _desktop(server, [{"command": "true"}, {"user": "root", "groups": ["root"]}])})
    status, text = _run(outputs, server)
    assert status == 0
    assert text.rstrip().endswith("all 1 desktop(s) passed their checks")
    status, text = _run(outputs, server, as_json=True)
    assert status == 0
    data = json.loads(text)
    assert data["failed"] == 0
    dev = data["desktops"]["dev"]
    assert (dev["passed"], dev["error"], dev["skipped"]) == (True, None, None)
    assert [(c["check"], c["passed"], c["rc"], c["command"]) for c in dev["checks"]] == [
        ("command `true` succeeds", True, 0, "true"),
        ("user root exists and is in group(s) root", True, 0, "id -Gn -- root"),
    ]


def test_desktop_without_checks_still_proves_login(server):
    status, text = _run(_outputs({"dev": _desktop(server)}), server)
    assert status == 0
    assert [[c.strip() for c in r] for r in _table(text)] == [["dev", "SSH login with the pinned host key", "ok"]]


def test_wrong_host_key_and_bad_checks_fail_without_running_anything(server):
    other, _ = _ed25519()
    outputs = _outputs({
        "dev": _desktop(server, [{"command": "true"}], host_key=_public_line(other)),
        "ops": _desktop(server, [{"port": "abc"}, {"file": "relative"}]),
        "lost": _desktop(server, [{"command": "true"}], ip=None),
    })
    status, text = _run(outputs, server)
    assert status == 1
    rows = {r[0].strip(): [c.strip() for c in r[1:]] for r in _table(text)}
    assert rows["dev"][:2] == ["SSH login with the pinned host key", "FAILED"]
    assert rows["dev"][2].startswith("cannot log in: host key mismatch for 127.0.0.1:")
    assert rows["ops"] == [
        "(checks config)", "FAILED",
        "invalid checks: desktops.ops.checks[0].port: 'abc' is not a port; "
        "desktops.ops.checks[1].file: 'relative' is not an absolute path",
    ]
    assert rows["lost"] == [
        "(all checks)", "FAILED", "outputs.desktops.lost.ip is empty: the desktop has no known address (is it running?)"
    ]
    assert "desktop dev: could not be checked: cannot log in: host key mismatch for 127.0.0.1:" in text
    assert "Refusing to log in" in text  # the full message, not the table's cut one
    assert server.commands == []


def test_missing_outputs_and_unknown_host_are_named(server):
    desktop = _desktop(server, [{"command": "true"}], host="elsewhere")
    del desktop["user"]
    status, text = _run(_outputs({"dev": desktop, "ops": _desktop(server, host="elsewhere")}), server)
    assert status == 1
    rows = {r[0].strip(): r[-1].strip() for r in _table(text)}
    assert rows == {
        "dev": "outputs.desktops.dev lacks user; cannot log in",
        "ops": "outputs.desktops.ops.host names host 'elsewhere', which is not in outputs.hosts",
    }


def test_host_netns_is_used_for_the_login(server, monkeypatch):
    seen = []

    def recording_connect(target, *, timeout_s):
        seen.append(target)
        raise checks_cli.GuestError("stop here")

    outputs = _outputs({"dev": _desktop(server, host="remote")})
    outputs["hosts"]["remote"] = {"uri": "qemu+ssh://x/system", "netns": "vdesk-local"}
    status = checks_cli.run(outputs, connect_fn=recording_connect, out=io.StringIO())
    assert status == 1
    assert [(t.host, t.user, t.port, t.netns) for t in seen] == [("127.0.0.1", USER, 22, "vdesk-local")]
    assert seen[0].host_public_key == server.host_line


def test_a_remote_hosts_guests_are_reached_through_its_ssh_jump(server):
    seen = []

    def recording_connect(target, *, timeout_s):
        seen.append(target)
        raise checks_cli.GuestError("stop here")

    outputs = _outputs({"dev": _desktop(server, host="far")})
    outputs["hosts"]["far"] = {"uri": "qemu+ssh://admin@kvm2:2222/system", "netns": None,
                               "ssh_jump": "admin@kvm2:2222"}
    assert checks_cli.run(outputs, connect_fn=recording_connect, out=io.StringIO()) == 1
    assert [(str(t.jump), t.netns) for t in seen] == [("admin@kvm2:2222", None)]


def _fake_pulumi(tmp_path, monkeypatch, script):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pulumi = bin_dir / "pulumi"
    pulumi.write_text("#!/bin/sh\n" + script)
    pulumi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_main_reads_outputs_with_pulumi(server, tmp_path, monkeypatch, capsys):
    outputs = _outputs({"dev": _desktop(server, [{"command": "false"}])})
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    _fake_pulumi(tmp_path, monkeypatch, f'echo "$@" > {tmp_path}/args\ncat {tmp_path}/outputs.json\n')
    status = checks_cli.main(["dev", "--port", str(server.port), "--timeout", "10", "--json"])
    assert status == 1
    assert (tmp_path / "args").read_text() == "stack output --json --show-secrets --stack dev\n"
    data = json.loads(capsys.readouterr().out)
    assert data["desktops"]["dev"]["checks"][0]["rc"] == 1


def test_main_reports_pulumi_failure_with_status_2(tmp_path, monkeypatch, capsys):
    _fake_pulumi(tmp_path, monkeypatch, 'echo "error: no stack named \'nope\' found" >&2\nexit 255\n')
    assert checks_cli.main(["nope"]) == 2
    assert capsys.readouterr().err == (
        "vdesk check: cannot read the outputs of stack 'nope': error: no stack named 'nope' found\n"
    )


@pytest.fixture
def sleeper(conn):
    """A desktop's domain on libvirt's test driver, as the Domain provider defines it, put to sleep."""
    from components.lifecycle import actions
    from components.resources.domain import DomainProvider
    provider = DomainProvider()
    created = provider.create(provider.check({}, {
        "host_uri": "test:///default", "name": "vdesk-sleepy", "owner": "unit", "domain_type": "test",
        "memory": 256 * 1024**2, "vcpus": 1, "boot": "bios", "disks": [], "nics": []}).inputs)
    dom = conn.lookupByName("vdesk-sleepy")
    actions.suspend(dom)
    yield dom
    if dom.hasManagedSaveImage(0):
        dom.managedSaveRemove(0)
    provider.delete(created.id, created.outs)


def test_an_asleep_desktop_is_reported_asleep_and_left_asleep(server, sleeper):
    from components.lifecycle import actions

    def no_login(*_a, **_kw):
        raise AssertionError("an asleep desktop is not logged in to")
    # the outputs of the `up` before it slept still say running, with its address
    outputs = _outputs({"dev": _desktop(server, [{"command": "true"}], name="vdesk-sleepy",
                                        host_uri="test:///default")})
    out = io.StringIO()
    assert checks_cli.run(outputs, port=server.port, timeout_s=10, out=out, connect_fn=no_login) == 0
    assert [[c.strip() for c in r] for r in _table(out.getvalue())] == [[
        "dev", "(all checks)", "skipped", "desktop is asleep (suspended by its host's lifecycle service); not woken "
        "for its checks (--wake, or make check WAKE=1, wakes it)"]]
    assert actions.asleep(sleeper)


def test_with_wake_it_is_woken_and_checked(server, sleeper):
    outputs = _outputs({"dev": _desktop(server, [{"command": "true"}], name="vdesk-sleepy",
                                        host_uri="test:///default")})
    status, text = _run(outputs, server, wake=True)
    assert status == 0, text
    assert sleeper.isActive() and not sleeper.hasManagedSaveImage(0)
    assert [[c.strip() for c in r] for r in _table(text)] == [
        ["dev", "SSH login with the pinned host key", "ok"], ["dev", "command `true` succeeds", "ok"]]


def test_one_off_outside_its_schedule_is_not_started_even_with_wake(server, sleeper):
    from components.lifecycle import actions
    sleeper.managedSaveRemove(0)
    actions.mark_off(sleeper, "schedule")
    outputs = _outputs({"dev": _desktop(server, name="vdesk-sleepy", host_uri="test:///default")})
    status, text = _run(outputs, server, wake=True)
    assert status == 0 and "desktop is off outside its schedule; not started for its checks" in text
    assert not sleeper.isActive()
