"""Tests for testinfra-style guest checks, run against this machine through a subprocess backend."""

import os
import shutil
import socket
import subprocess

import pytest

from components.guest import GuestError
from components.guest.checks import GuestHost, is_listening_in, parse_socket_spec, parse_ss
from components.guest.ssh import CommandResult, render_command


class LocalBackend:
    """Runs commands on this machine with sh (we are root, so sudo is not needed)."""

    def __init__(self):
        self.commands = []

    def run(self, command, *, timeout_s=60, sudo=False):
        line = render_command(command, sudo=sudo and os.geteuid() != 0)
        self.commands.append(line)
        proc = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=timeout_s)
        return CommandResult(line, proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def host():
    return GuestHost(LocalBackend())


def test_run_returns_non_zero_without_raising(host):
    result = host.run("echo oops >&2; exit 7")
    assert (result.rc, result.stderr) == (7, "oops\n")


def test_user(host):
    root = host.user("root")
    assert root.exists
    assert root.uid == 0
    assert root.home == "/root"
    assert root.shell.endswith("sh")
    assert "root" in root.groups
    missing = host.user("vdesk-no-such-user")
    assert not missing.exists
    with pytest.raises(GuestError, match="does not exist"):
        missing.home


def test_file(host, tmp_path):
    assert host.file("/etc/hostname").exists
    assert host.file("/etc/hostname").is_file
    assert not host.file("/etc/hostname").is_directory
    assert host.file("/etc").is_directory
    assert not host.file("/nonexistent/vdesk").exists

    path = tmp_path / "it's a file.conf"
    path.write_text("PermitRootLogin no\n[x] literal.*\n-e dash\n")
    path.chmod(0o640)
    f = host.file(str(path))
    assert f.contains("PermitRootLogin no")
    assert f.contains("[x] literal.*")  # literal, not a regex
    assert f.contains("-e dash")
    assert f.contains("no\n[x]")  # across lines
    assert not f.contains("PermitRootLogin yes")
    assert not f.contains("literal.+")
    assert not host.file(str(tmp_path / "missing")).contains("x")
    assert f.content_string == path.read_text()
    assert f.mode == 0o640
    assert f.owner == "root"

    link = tmp_path / "link"
    link.symlink_to(path)
    assert host.file(str(link)).is_symlink
    assert not f.is_symlink
    with pytest.raises(GuestError, match="cannot read"):
        host.file(str(tmp_path / "missing")).content_string


def test_package(host):
    bash = host.package("bash")
    assert bash.is_installed
    assert bash.version and bash.version[0].isdigit()
    missing = host.package("vdesk-no-such-package")
    assert not missing.is_installed
    assert missing.version is None


def test_service_absent_is_neither_running_nor_enabled(host):
    if shutil.which("systemctl") is None:
        pytest.skip("systemctl not installed")
    svc = host.service("vdesk-no-such-service")
    assert not svc.is_running
    assert not svc.is_enabled


def test_service_queries_systemctl():
    backend = LocalBackend()
    host = GuestHost(backend)
    host.service("ssh").is_running
    host.service("ssh").is_enabled
    assert backend.commands == ["systemctl is-active -- ssh", "systemctl is-enabled -- ssh"]


def test_socket_listening_on_loopback(host):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        assert not host.socket(f"tcp://127.0.0.1:{port}").is_listening  # bound, not listening yet
        listener.listen(1)
        assert host.socket(f"tcp://{port}").is_listening
        assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
        assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening  # not on all addresses
        assert not host.socket(f"udp://{port}").is_listening
    finally:
        listener.close()
    assert not host.socket(f"tcp://{port}").is_listening


def test_udp_socket(host):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        assert host.socket(f"udp://127.0.0.1:{port}").is_listening
        assert not host.socket(f"tcp://{port}").is_listening
    finally:
        sock.close()


SS_OUTPUT = """\
tcp   LISTEN 0      128          0.0.0.0:22        0.0.0.0:*
tcp   LISTEN 0      4096   127.0.0.53%lo:53        0.0.0.0:*
tcp   LISTEN 0      128             [::]:22           [::]:*
tcp   LISTEN 0      5                  *:3389            *:*
udp   UNCONN 0      0          127.0.0.1:323       0.0.0.0:*
udp   UNCONN 0      0       [fe80::1%eth0]:123        [::]:*
"""


@pytest.mark.parametrize(
    "spec, listening",
    [
        ("tcp://22", True),
        ("tcp://0.0.0.0:22", True),
        ("tcp://10.1.2.3:22", True),  # covered by the 0.0.0.0 listener
        ("tcp://[::1]:22", True),  # covered by the :: listener
        ("tcp://127.0.0.53:53", True),
        ("tcp://0.0.0.0:53", False),
        ("tcp://127.0.0.1:53", False),
        ("tcp://0.0.0.0:3389", True),  # "*" is every address
        ("udp://323", True),
        ("udp://0.0.0.0:323", False),
        ("udp://[fe80::1]:123", True),
        ("tcp://323", False),
    ],
)
def test_socket_matching_on_ss_output(spec, listening):
    assert is_listening_in(spec, parse_ss(SS_OUTPUT)) is listening


def test_parse_ss_skips_noise():
    assert parse_ss("State Recv-Q\nnonsense\n") == []
    assert [(l.protocol, l.address, l.port) for l in parse_ss(SS_OUTPUT)][:2] == [
        ("tcp", "0.0.0.0", 22),
        ("tcp", "127.0.0.53", 53),
    ]


@pytest.mark.parametrize("spec", ["22", "unix:///run/x.sock", "tcp://", "tcp://host:22", "tcp://70000", "tcp://1.2.3.4:x"])
def test_bad_socket_specs(spec):
    with pytest.raises(GuestError):
        parse_socket_spec(spec)
