"""Tests for declarative guest checks: validation, sentences and digests (running them: test_checkrun.py)."""

import re

import pytest
import yaml

from components.errors import InputError
from components.guest.checkspec import Check, CheckSpecError, checks_digest, parse_checks

KINDS = "package, absent_package, service, file, port, user, command, session"


@pytest.mark.parametrize(
    "raw, path, message",
    [
        ("ssh", "checks", "must be a list of checks, got str"),
        ([{"port": "abc"}], "checks[0].port", "'abc' is not a port"),
        ([{"port": 70000}], "checks[0].port", "70000 is not a port (use 1-65535)"),
        ([{"port": "tcp/0"}], "checks[0].port", "'tcp/0' is not a port (use 1-65535)"),
        ([{"port": "icmp/7"}], "checks[0].port", "'icmp/7' has an unknown protocol 'icmp' (use tcp or udp)"),
        ([{"port": "tcp/1.2.3:22"}], "checks[0].port", "'tcp/1.2.3:22' has an invalid address '1.2.3'"),
        ([{"port": True}], "checks[0].port", "must be a port number or 'PROTOCOL/[ADDRESS:]PORT', got bool True"),
        (["ssh"], "checks[0]", f"must be a mapping with one of: {KINDS}; got str 'ssh'"),
        ([{}], "checks[0]", f"names no check kind (use one of: {KINDS}); it is empty"),
        ([{"pkg": "vim"}], "checks[0]", f"names no check kind (use one of: {KINDS}); got key(s): pkg"),
        (
            [{"service": "ssh", "package": "openssh-server"}],
            "checks[0]",
            "has more than one check kind (service, package); write one check per item",
        ),
        ([{"package": "Vim_Editor"}], "checks[0].package", "'Vim_Editor' is not a valid Debian package name"),
        ([{"absent_package": ""}], "checks[0].absent_package", "must be a non-empty string (a Debian package name), got str ''"),
        ([{"service": "ss h"}], "checks[0].service", "'ss h' is not a valid systemd unit name"),
        ([{"service": "ssh", "enabled": "yes"}], "checks[0].enabled", "must be true or false, got str 'yes'"),
        (
            [{"service": "ssh", "enabled": False}],
            "checks[0].enabled",
            "only `enabled: true` is supported; leave it out to not check it",
        ),
        ([{"file": "etc/hostname"}], "checks[0].file", "'etc/hostname' is not an absolute path"),
        ([{"file": "/etc/hostname", "contains": 3}], "checks[0].contains", "must be a non-empty string, got int 3"),
        (
            [{"file": "/etc/hostname", "enabled": True}],
            "checks[0].enabled",
            "unknown option for a file check (allowed: contains)",
        ),
        ([{"package": "vim", "sudo": True}], "checks[0].sudo", "unknown option for a package check (allowed: none)"),
        ([{"user": "bad user"}], "checks[0].user", "'bad user' is not a valid user name"),
        ([{"user": "alice", "groups": "sudo"}], "checks[0].groups", "must be a non-empty list of group names, got str 'sudo'"),
        ([{"user": "alice", "groups": ["sudo", 5]}], "checks[0].groups[1]", "5 is not a valid group name"),
        ([{"command": None}], "checks[0].command", "must be a non-empty string (a shell command line), got NoneType None"),
        (
            [{"command": "true", "output_matches": "a("}],
            "checks[0].output_matches",
            "'a(' is not a valid regular expression: missing ), unterminated subpattern at position 1",
        ),
        ([{"command": "true", "sudo": "yes"}], "checks[0].sudo", "must be true or false, got str 'yes'"),
    ],
)
def test_bad_check_configs(raw, path, message):
    with pytest.raises(CheckSpecError) as info:
        parse_checks(raw)
    assert info.value.problems == [(path, message)]
    assert str(info.value) == f"{path}: {message}"


def test_all_problems_are_collected_with_the_callers_path():
    raw = [{"package": "bash"}, {"port": "abc"}, {"file": "rel"}, {"service": "ssh", "contains": "x"}]
    with pytest.raises(CheckSpecError) as info:
        parse_checks(raw, path="desktops.dev.checks")
    assert info.value.problems == [
        ("desktops.dev.checks[1].port", "'abc' is not a port"),
        ("desktops.dev.checks[2].file", "'rel' is not an absolute path"),
        ("desktops.dev.checks[3].contains", "unknown option for a service check (allowed: enabled)"),
    ]
    assert str(info.value).splitlines() == [
        "desktops.dev.checks[1].port: 'abc' is not a port",
        "desktops.dev.checks[2].file: 'rel' is not an absolute path",
        "desktops.dev.checks[3].contains: unknown option for a service check (allowed: enabled)",
    ]
    assert isinstance(info.value, InputError)  # reported like every other config problem


def test_yaml_config_form_parses_to_sentences():
    raw = yaml.safe_load(
        """
        checks:
          - package: openssh-server
          - service: ssh
            enabled: true
          - file: /etc/hostname
            contains: "dev"
          - port: 22
          - port: udp/53
          - port: "tcp/0.0.0.0:22"
          - port: "tcp/[::1]:3389"
          - user: alice
            groups: [sudo, audio]
          - command: "test -d /home/alice"
          - command: "cat /etc/os-release"
            output_matches: "^VERSION_ID=\\"12\\""
            sudo: true
          - absent_package: telnetd
          - service: cron
          - file: /etc/motd
          - user: bob
        """
    )
    checks = parse_checks(raw["checks"])
    assert [c.sentence for c in checks] == [
        "package openssh-server is installed",
        "service ssh is running and enabled",
        "file /etc/hostname contains 'dev'",
        "port tcp/22 is listening",
        "port udp/53 is listening",
        "port tcp/0.0.0.0:22 is listening",
        "port tcp/[::1]:3389 is listening",
        "user alice exists and is in group(s) sudo, audio",
        "command `test -d /home/alice` succeeds",
        "command `cat /etc/os-release` succeeds as root with output matching '^VERSION_ID=\"12\"'",
        "package telnetd is not installed",
        "service cron is running",
        "file /etc/motd exists",
        "user bob exists",
    ]
    assert checks[1] == Check("service", "ssh", {"enabled": True}, "service ssh is running and enabled")
    assert checks[9].options == {"output_matches": '^VERSION_ID="12"', "sudo": True}


def test_absent_or_empty_checks_are_no_checks():
    assert parse_checks(None) == []
    assert parse_checks([]) == []


def test_digest_is_stable_and_follows_changes():
    base = [{"package": "bash"}, {"service": "ssh", "enabled": True}, {"port": 22}]
    digest = checks_digest(parse_checks(base))
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert checks_digest(parse_checks(base)) == digest
    assert checks_digest(parse_checks(list(reversed(base)))) == digest  # order does not matter
    assert checks_digest(parse_checks([{"package": "bash"}, {"service": "ssh", "enabled": True},
                                       {"port": "tcp/22"}])) == digest  # same check, other spelling
    changed = [
        [{"package": "bash"}, {"service": "ssh"}, {"port": 22}],
        [{"package": "bash"}, {"service": "ssh", "enabled": True}, {"port": 2222}],
        [{"absent_package": "bash"}, {"service": "ssh", "enabled": True}, {"port": 22}],
        base[:2],
    ]
    digests = {checks_digest(parse_checks(c)) for c in changed}
    assert len(digests) == len(changed) and digest not in digests
    assert checks_digest([]) == checks_digest(parse_checks(None))


# --- session: the user's graphical session, through logind ------------------------------------------

def _session_check(user="alice", **options):
    return parse_checks([{"session": user, **options}])[0]


def test_session_check_reads_as_a_sentence_and_validates_its_options():
    assert _session_check().sentence == "user alice has an active graphical session"
    assert _session_check(within=30).options == {"within": 30}
    with pytest.raises(CheckSpecError) as err:
        parse_checks([{"session": "alice", "within": -1}, {"session": "Not A User"}, {"session": "a", "x": 1}])
    assert [p for p, _ in err.value.problems] == ["checks[0].within", "checks[1].session", "checks[2].x"]


