"""Tests for running declared checks on this machine through the check objects, and their reports."""

import socket

import pytest

from components.guest import GuestTimeout
from components.guest.checkrun import report, run_checks, trim_output
from components.guest.checks import GuestHost
from components.guest.checkspec import parse_checks
from tests.unit.guest.test_checkspec import _session_check
from tests.unit.guest.test_guest_checks import LocalBackend


@pytest.fixture
def host():
    return GuestHost(LocalBackend())


@pytest.fixture
def listening_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def closed_port():
    """A port that is bound (so nobody else takes it) but not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def test_passing_checks_on_this_machine(host, tmp_path, listening_port):
    config = tmp_path / "vdesk.conf"
    config.write_text("greeting = hello\nsecond line\n")
    checks = parse_checks(
        [
            {"package": "bash"},
            {"absent_package": "vdesk-no-such-package"},
            {"file": "/etc/hostname"},
            {"file": str(config), "contains": "greeting = hello"},
            {"file": str(config), "contains": "hello\nsecond"},
            {"port": listening_port},
            {"port": f"tcp/127.0.0.1:{listening_port}"},
            {"user": "root"},
            {"user": "root", "groups": ["root"]},
            {"command": "true"},
            {"command": "echo version 12.5", "output_matches": r"^version 12\.\d+$"},
            {"command": "id -u", "sudo": True, "output_matches": "^0$"},
        ]
    )
    outcomes = run_checks(host, checks)
    assert [(o.check.sentence, o.passed, o.reason) for o in outcomes if not o.passed] == []
    assert [o.rc for o in outcomes] == [0, 1] + [0] * (len(checks) - 2)  # dpkg-query: unknown package
    by_sentence = {o.check.sentence: o for o in outcomes}
    assert by_sentence["package bash is installed"].command == "dpkg-query --show '--showformat=${Status}\\n' -- bash"
    assert by_sentence["package bash is installed"].output == "install ok installed"
    assert by_sentence["file /etc/hostname exists"].output.startswith("regular file, mode ")
    assert by_sentence["user root exists and is in group(s) root"].command == "id -Gn -- root"
    text = report("dev", outcomes)
    assert text.splitlines()[0] == f"desktop dev: all {len(checks)} checks passed"
    assert "FAILED" not in text


def test_failing_checks_are_reported_with_command_exit_code_and_output(host, tmp_path, closed_port):
    config = tmp_path / "vdesk.conf"
    config.write_text("greeting = hello\n")
    raw = [
        {"package": "vdesk-no-such-package"},
        {"absent_package": "bash"},
        {"file": "/nonexistent/vdesk"},
        {"file": str(config), "contains": "greeting = bye"},
        {"file": str(config), "contains": "hello\nthere"},
        {"port": closed_port},
        {"port": f"udp/{closed_port}"},
        {"user": "vdesk-no-such-user"},
        {"user": "root", "groups": ["root", "vdesk-no-such-group"]},
        {"command": "false"},
        {"command": "echo 'broken thing' >&2; exit 7"},
        {"command": "echo version 11", "output_matches": r"^version 12"},
        {"service": "vdesk-no-such-service"},
    ]
    outcomes = run_checks(host, parse_checks(raw))
    assert [o.passed for o in outcomes] == [False] * len(raw)
    got = {o.check.sentence: (o.command, o.rc, o.reason) for o in outcomes}
    assert got["package vdesk-no-such-package is installed"] == (
        "dpkg-query --show '--showformat=${Status}\\n' -- vdesk-no-such-package", 1, "dpkg does not know this package")
    assert got["package bash is not installed"][1:] == (0, "the package is installed")
    assert got["file /nonexistent/vdesk exists"][1] == 1
    assert got[f"file {config} contains 'greeting = bye'"] == (
        f"grep -qF -e 'greeting = bye' -- {config}", 1, f"'greeting = bye' not found in {config}")
    assert got[f"file {config} contains 'hello\\nthere'"][2] == "the file does not contain 'hello\\nthere'"
    assert got[f"port tcp/{closed_port} is listening"][0] == "ss --no-header --listening --numeric --tcp --udp"
    assert got[f"port tcp/{closed_port} is listening"][2].startswith("nothing listens there; listening tcp ports: ")
    assert got["user vdesk-no-such-user exists"] == ("getent passwd -- vdesk-no-such-user", 2, "no such user")
    assert got["user root exists and is in group(s) root, vdesk-no-such-group"] == (
        "id -Gn -- root", 0, "not in group(s) vdesk-no-such-group")
    assert got["command `false` succeeds"] == ("false", 1, "non-zero exit code")
    assert got["command `echo version 11` succeeds with output matching '^version 12'"] == (
        "echo version 11", 0, "stdout does not match '^version 12'")
    assert got["service vdesk-no-such-service is running"][0] == "systemctl is-active -- vdesk-no-such-service"

    text = report("dev", outcomes)
    lines = text.splitlines()
    assert lines[0] == f"desktop dev: {len(raw)} of {len(raw)} checks failed"
    assert "  FAILED  command `echo 'broken thing' >&2; exit 7` succeeds" in lines
    block = lines[lines.index("  FAILED  command `echo 'broken thing' >&2; exit 7` succeeds"):][:6]
    assert block[1:] == [
        "          why:       non-zero exit code",
        "          command:   echo 'broken thing' >&2; exit 7",
        "          exit code: 7",
        "          output:",
        "            broken thing",
    ]
    assert "  FAILED  package vdesk-no-such-package is installed" in lines
    assert "            dpkg-query: no packages found matching vdesk-no-such-package" in lines
    assert "          exit code: 2" in lines  # getent for the missing user


def test_mixed_report_summary_counts_failures(host):
    checks = parse_checks([{"command": "true"}, {"command": "false"}, {"package": "bash"},
                           {"absent_package": "bash"}, {"user": "root"}, {"file": "/"}, {"command": "exit 3"}])
    outcomes = run_checks(host, checks)
    text = report("dev", outcomes)
    assert text.splitlines()[0] == "desktop dev: 3 of 7 checks failed"
    assert "  ok      package bash is installed" in text.splitlines()
    assert "  FAILED  package bash is not installed" in text.splitlines()
    assert report("dev", []) == "desktop dev: no checks declared"


def test_backend_errors_become_failed_outcomes_not_exceptions():
    class Unreachable:
        def run(self, command, sudo=False):
            raise GuestTimeout("command 'true' on 10.0.0.5:22", 5)

    outcomes = run_checks(GuestHost(Unreachable()), parse_checks([{"command": "true"}, {"package": "bash"}]))
    assert [(o.passed, o.rc) for o in outcomes] == [(False, None), (False, None)]
    assert outcomes[0].command == "true"
    assert "timed out after 5 s" in outcomes[0].output
    text = report("dev", outcomes)
    assert "          exit code: none (not run)" in text.splitlines()
    assert "          why:       the command could not be run" in text.splitlines()


def test_output_is_trimmed_to_the_last_lines(host):
    outcome = run_checks(host, parse_checks([{"command": "seq 1 100; exit 4"}]))[0]
    assert outcome.rc == 4
    assert outcome.output.splitlines() == ["[80 earlier line(s) not shown]"] + [str(i) for i in range(81, 101)]
    long_line = "x" * 5000
    trimmed = trim_output(long_line)
    assert trimmed == "..." + "x" * 2000
    assert len(trim_output("\n".join(["y" * 300] * 15))) <= 2000 + 40
    assert trim_output("a\nb\n") == "a\nb"


SESSIONS = {  # id -> (list-sessions line, show-session output)
    "c1": ("c1 111 lightdm seat0 tty7", "Id=c1\nName=lightdm\nType=x11\nClass=greeter\nActive=yes\nState=active\n"
                                        "Seat=seat0\n"),
    "3": ("3 1000 alice  pts/0", "Id=3\nName=alice\nType=tty\nClass=user\nActive=no\nState=online\nSeat=\n"),
    "2": ("2 1000 alice seat0 tty7", "Id=2\nName=alice\nType=x11\nClass=user\nActive=yes\nState=active\n"
                                     "Seat=seat0\n"),
    "4": ("4 1001 bob seat0 tty8", "Id=4\nName=bob\nType=wayland\nClass=user\nActive=no\nState=online\n"
                                   "Seat=seat0\n"),
}


@pytest.fixture
def logind(tmp_path, monkeypatch):
    """A fake `loginctl` on PATH that answers from files; returns a function that sets the sessions."""
    folder = tmp_path / "logind"
    (folder / "bin").mkdir(parents=True)
    script = folder / "bin" / "loginctl"
    script.write_text(f"""#!/bin/sh
case "$1" in
  list-sessions) cat {folder}/list ;;
  show-session) cat "{folder}/$2" ;;
  *) exit 2 ;;
esac
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder / 'bin'}:{__import__('os').environ['PATH']}")

    def set_sessions(*ids):
        (folder / "list").write_text("".join(SESSIONS[i][0] + "\n" for i in ids))
        for i in ids:
            (folder / i).write_text(SESSIONS[i][1])
    set_sessions()
    return set_sessions


def test_session_check_passes_for_an_active_x11_session(host, logind):
    logind("c1", "3", "2")
    [outcome] = run_checks(host, [_session_check(within=0)])
    assert outcome.passed, outcome
    assert "loginctl show-session" in outcome.command


def test_session_check_fails_naming_the_sessions_it_saw(host, logind):
    logind("c1", "3", "4")
    alice, bob = run_checks(host, [_session_check(within=0), _session_check("bob", within=0)])
    assert not alice.passed and alice.reason == "none of alice's sessions is graphical and active"
    assert "3: alice, tty, user, not active, online" in alice.output
    assert "c1: lightdm, x11, greeter, active, active" in alice.output
    assert not bob.passed and bob.reason == "none of bob's sessions is graphical and active"   # not active


def test_session_check_without_any_session(host, logind):
    [outcome] = run_checks(host, [_session_check(within=0)])
    assert not outcome.passed and outcome.reason == "alice has no login session"
    assert outcome.output == "(no sessions at all)"
    text = report("desk", [outcome])
    assert "FAILED  user alice has an active graphical session" in text


def test_session_check_waits_for_the_session_within_its_bound(host, logind, monkeypatch):
    from components.guest import checkrun
    now = [0.0]
    naps = []
    appears_after = [3]

    def sleep(seconds):
        naps.append(seconds)
        now[0] += seconds
        if len(naps) == appears_after[0]:     # the display manager logs alice in while the check waits
            logind("c1", "2")
    monkeypatch.setattr(checkrun, "_clock", lambda: now[0])
    monkeypatch.setattr(checkrun, "_sleep", sleep)
    logind("c1")
    [outcome] = run_checks(host, [_session_check(within=60)])
    assert outcome.passed and len(naps) == 3 and now[0] == 3 * checkrun.SESSION_POLL_S

    naps.clear()
    now[0], appears_after[0] = 0.0, None
    logind("c1")
    [outcome] = run_checks(host, [_session_check(within=10)])
    assert not outcome.passed and outcome.reason == "alice has no login session after waiting 10 s"
    assert now[0] == 10, "gave up at its bound, not before, not after"
