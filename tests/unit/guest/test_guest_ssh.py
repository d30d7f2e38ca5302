"""Tests for SSH sessions with pinned host keys against an in-process paramiko server on loopback."""

import io
import socket
import subprocess
import threading
import time

import paramiko
import pytest

from components.guest import GuestError, GuestTimeout, HostKeyMismatch
from components.guest import ssh as guest_ssh
from components.guest.keys import generate_ed25519
from components.guest.ssh import CommandResult, SshTarget, connect, render_command

USER = "vdesk"


def _ed25519():
    """(paramiko key, OpenSSH public line) for a fresh ed25519 key."""
    pair = generate_ed25519("test")
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pair.private_openssh)), pair


def _public_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


class _Interface(paramiko.ServerInterface):
    """Accepts publickey auth for one user key and executes commands with the local sh."""

    def __init__(self, server: "LoopbackSshServer", transport: paramiko.Transport):
        self.server = server
        self.transport = transport

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        with self.server.lock:
            self.server.auth_attempts += 1
            if self.server.reject_logins > 0:
                self.server.reject_logins -= 1
                return paramiko.AUTH_FAILED
        if username == self.server.user and key.asbytes() == self.server.user_key_blob:
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        text = command.decode("utf-8")
        with self.server.lock:
            self.server.commands.append(text)
        threading.Thread(target=self._execute, args=(channel, text), daemon=True).start()
        return True

    def _execute(self, channel, command):
        proc = subprocess.Popen(
            ["sh", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        while True:
            try:
                out, err = proc.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if channel.closed or not self.transport.is_active():
                    proc.kill()
                    proc.communicate()
                    return
        # EOF, not close: a close could reach the client before paramiko's reply to the exec request
        # (sent after this method's caller returns), and the client would read "Channel closed."
        # The client closes the channel once it has read everything, as sshd's clients do.
        try:
            channel.sendall(out)
            channel.sendall_stderr(err)
            channel.send_exit_status(proc.returncode)
            channel.shutdown_write()
        except (OSError, EOFError, paramiko.SSHException):
            pass


class LoopbackSshServer:
    """A real SSH server on 127.0.0.1 (ephemeral port); bound at once, listening when start() runs."""

    def __init__(self, host_keys, user_key: paramiko.PKey, *, listen: bool = True, reject_logins: int = 0):
        self.host_keys = host_keys
        self.user = USER
        self.user_key_blob = user_key.asbytes()
        self.reject_logins = reject_logins
        self.lock = threading.Lock()
        self.commands: list[str] = []
        self.auth_attempts = 0
        self.transports: list[paramiko.Transport] = []
        self.listening = threading.Event()
        # Bound but not listening: connections are refused until start().
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._closed = False
        if listen:
            self.start()

    def start(self):
        self.sock.listen(16)
        self.listening.set()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while not self._closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            for key in self.host_keys:
                transport.add_server_key(key)
            with self.lock:
                self.transports.append(transport)
            try:
                transport.start_server(server=_Interface(self, transport))
            except (paramiko.SSHException, EOFError, OSError):
                transport.close()

    def close(self):
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for transport in self.transports:
                transport.close()


@pytest.fixture
def servers():
    started = []

    def make(*args, **kwargs):
        server = LoopbackSshServer(*args, **kwargs)
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


@pytest.fixture
def keys():
    host_key, _ = _ed25519()
    user_key, user_pair = _ed25519()
    return host_key, user_key, user_pair


def _target(server, user_pair, host_public_key, **kw):
    return SshTarget(
        host="127.0.0.1",
        user=USER,
        private_key=user_pair.private_openssh,
        host_public_key=host_public_key,
        port=server.port,
        **kw,
    )


def test_pinned_key_accepted_and_run_returns_rc_stdout_stderr(servers, keys):
    host_key, user_key, user_pair = keys
    server = servers([host_key], user_key)
    with connect(_target(server, user_pair, _public_line(host_key)), timeout_s=10) as session:
        result = session.run("echo out; echo err >&2; exit 3", timeout_s=10)
        assert result == CommandResult(command="echo out; echo err >&2; exit 3", rc=3, stdout="out\n", stderr="err\n")
        assert result.failed and not result.succeeded
        ok = session.run(["true"], timeout_s=10)
        assert ok.rc == 0 and ok.succeeded
    assert server.commands == ["echo out; echo err >&2; exit 3", "true"]


def test_a_command_that_ends_before_the_servers_exec_reply_is_still_read(servers, keys, monkeypatch):
    """The flake behind two "Channel closed" failures under load: the loopback server's transport thread
    was descheduled between accepting the exec and sending its reply, the command ended meanwhile, and the
    server's close overtook the reply. Delaying that reply makes it happen every time."""
    from paramiko.common import cMSG_CHANNEL_SUCCESS
    real_send = paramiko.Transport._send_user_message

    def late_exec_reply(transport, message):
        if transport.server_mode and message.asbytes()[:1] == cMSG_CHANNEL_SUCCESS:
            time.sleep(0.5)
        return real_send(transport, message)

    monkeypatch.setattr(paramiko.Transport, "_send_user_message", late_exec_reply)
    host_key, user_key, user_pair = keys
    server = servers([host_key], user_key)
    with connect(_target(server, user_pair, _public_line(host_key)), timeout_s=10) as session:
        assert session.run(["true"], timeout_s=10).rc == 0
        assert session.run("echo out; exit 3", timeout_s=10) == CommandResult("echo out; exit 3", 3, "out\n", "")


def test_list_arguments_are_quoted_once(servers, keys):
    host_key, user_key, user_pair = keys
    server = servers([host_key], user_key)
    args = ["printf", "%s|", "a b", "it's", "$HOME", ";touch /nonexistent-dir/x", "`id`"]
    with connect(_target(server, user_pair, _public_line(host_key)), timeout_s=10) as session:
        result = session.run(args, timeout_s=10)
    assert result.rc == 0, result.stderr
    assert result.stdout == "a b|it's|$HOME|;touch /nonexistent-dir/x|`id`|"


def test_large_stdout_and_stderr_do_not_deadlock(servers, keys):
    host_key, user_key, user_pair = keys
    server = servers([host_key], user_key)
    command = "head -c 1000000 /dev/zero | tr '\\0' a; head -c 300000 /dev/zero | tr '\\0' b >&2"
    with connect(_target(server, user_pair, _public_line(host_key)), timeout_s=10) as session:
        result = session.run(command, timeout_s=30)
    assert result.rc == 0
    assert result.stdout == "a" * 1_000_000
    assert result.stderr == "b" * 300_000


def test_run_timeout_raises_guest_timeout(servers, keys):
    host_key, user_key, user_pair = keys
    server = servers([host_key], user_key)
    with connect(_target(server, user_pair, _public_line(host_key)), timeout_s=10) as session:
        start = time.monotonic()
        with pytest.raises(GuestTimeout, match=r"sleep 30.*127\.0\.0\.1"):
            session.run("sleep 30", timeout_s=0.5)
        assert time.monotonic() - start < 15  # far below the command's 30 s: the 0.5 s bound held
        # The session stays usable after a timed-out command.
        assert session.run("echo again", timeout_s=10).stdout == "again\n"


def test_sudo_wraps_command_non_interactively(servers, keys):
    host_key, user_key, user_pair = keys
    server = servers([host_key], user_key)
    with connect(_target(server, user_pair, _public_line(host_key)), timeout_s=10) as session:
        result = session.run(["id", "-u"], sudo=True, timeout_s=10)
    assert result.command == "sudo -n -- id -u"
    assert server.commands == ["sudo -n -- id -u"]


def test_wrong_pinned_key_fails_fast_without_login(servers, keys):
    host_key, user_key, user_pair = keys
    server = servers([host_key], user_key)
    _, other_pair = _ed25519()
    start = time.monotonic()
    with pytest.raises(HostKeyMismatch) as info:
        connect(_target(server, user_pair, other_pair.public_openssh), timeout_s=30)
    assert time.monotonic() - start < 15  # refused at once, not retried until the 30 s deadline
    message = str(info.value)
    assert f"127.0.0.1:{server.port}" in message
    assert host_key.fingerprint in message  # what the server presented
    assert server.auth_attempts == 0
    assert server.commands == []


def test_pinned_key_type_is_negotiated_first(servers, keys):
    host_ed, user_key, user_pair = keys
    host_ecdsa = paramiko.ECDSAKey.generate()
    server = servers([host_ed, host_ecdsa], user_key)
    for pinned in (host_ecdsa, host_ed):
        # generous bounds: a loaded 2-core CI machine can take seconds for a handshake
        with connect(_target(server, user_pair, _public_line(pinned)), timeout_s=60) as session:
            assert session.run("echo hi", timeout_s=60).stdout == "hi\n"


def test_server_without_pinned_key_type_is_a_mismatch(servers, keys):
    _, user_key, user_pair = keys
    host_ecdsa = paramiko.ECDSAKey.generate()
    server = servers([host_ecdsa], user_key)
    pinned, _ = _ed25519()
    with pytest.raises(HostKeyMismatch, match="ecdsa-sha2-nistp256"):
        connect(_target(server, user_pair, _public_line(pinned)), timeout_s=30)
    assert server.commands == []


def test_closed_port_times_out_within_bound(servers, keys):
    host_key, user_key, user_pair = keys
    server = servers([host_key], user_key, listen=False)  # bound, never listening: refused
    start = time.monotonic()
    with pytest.raises(GuestTimeout) as info:
        connect(_target(server, user_pair, _public_line(host_key)), timeout_s=3)
    elapsed = time.monotonic() - start
    assert 2.5 < elapsed < 20  # the bound is honoured (not an endless retry), with room for a loaded machine
    message = str(info.value)
    assert f"127.0.0.1:{server.port}" in message
    assert "ConnectionRefusedError" in message
    assert "3 s" in message


def test_a_guest_found_stopped_between_retries_ends_the_wait_at_once(servers, keys):
    """The gate's check that the guest still runs is asked between refused attempts; its error ends the wait."""
    from components.guest.lifecycle import GuestStopped
    host_key, user_key, user_pair = keys
    server = servers([host_key], user_key, listen=False)
    asked = []

    def still_booting():
        asked.append(time.monotonic())
        if len(asked) == 2:
            raise GuestStopped("d1", "its emulator crashed", crashed=True)

    start = time.monotonic()
    with pytest.raises(GuestStopped, match="emulator crashed"):
        connect(_target(server, user_pair, _public_line(host_key)), timeout_s=60, still_booting=still_booting)
    assert len(asked) == 2 and time.monotonic() - start < 30      # not the 60 s bound


def test_retry_reaches_server_that_starts_listening_late(servers, keys, monkeypatch):
    host_key, user_key, user_pair = keys
    server = servers([host_key], user_key, listen=False)
    refused = []
    two_refusals = threading.Event()
    real_connect_tcp = guest_ssh.connect_tcp

    def counting_connect_tcp(*args, **kwargs):
        try:
            return real_connect_tcp(*args, **kwargs)
        except ConnectionRefusedError:
            refused.append(time.monotonic())
            if len(refused) >= 2:
                two_refusals.set()
            raise

    monkeypatch.setattr(guest_ssh, "connect_tcp", counting_connect_tcp)

    def start_when_refused_twice():
        if two_refusals.wait(20):
            server.start()

    threading.Thread(target=start_when_refused_twice, daemon=True).start()
    with connect(_target(server, user_pair, _public_line(host_key)), timeout_s=20) as session:
        assert session.run("echo booted", timeout_s=10).stdout == "booted\n"
    assert server.listening.is_set()
    assert len(refused) >= 2


def test_login_rejected_while_booting_is_retried(servers, keys):
    host_key, user_key, user_pair = keys
    server = servers([host_key], user_key, reject_logins=2)
    with connect(_target(server, user_pair, _public_line(host_key)), timeout_s=20) as session:
        assert session.run("echo in", timeout_s=10).stdout == "in\n"
    assert server.auth_attempts == 3


def test_wrong_user_key_times_out_naming_authentication(servers, keys):
    host_key, user_key, _ = keys
    server = servers([host_key], user_key)
    _, stranger = _ed25519()
    start = time.monotonic()
    with pytest.raises(GuestTimeout, match="Authentication"):
        connect(_target(server, stranger, _public_line(host_key)), timeout_s=2)
    assert time.monotonic() - start < 15  # the 2 s bound, with room for a loaded machine
    assert server.commands == []


def test_missing_netns_is_a_readable_error_not_a_timeout(keys):
    host_key, _, user_pair = keys
    target = SshTarget(
        host="127.0.0.1",
        user=USER,
        private_key=user_pair.private_openssh,
        host_public_key=_public_line(host_key),
        port=22,
        netns="vdesk-no-such-namespace-for-tests",
    )
    start = time.monotonic()
    with pytest.raises(GuestError, match="does not exist") as info:
        connect(target, timeout_s=30)
    assert not isinstance(info.value, GuestTimeout)
    assert time.monotonic() - start < 15  # failed at once, not after the 30 s deadline


def test_unloadable_private_key_is_a_readable_error(keys):
    host_key, _, _ = keys
    target = SshTarget("127.0.0.1", USER, "not a key", _public_line(host_key), port=22)
    with pytest.raises(GuestError, match="private key could not be loaded"):
        connect(target, timeout_s=1)


def test_run_after_close_is_a_guest_error(servers, keys):
    host_key, user_key, user_pair = keys
    server = servers([host_key], user_key)
    session = connect(_target(server, user_pair, _public_line(host_key)), timeout_s=10)
    session.close()
    session.close()
    with pytest.raises(GuestError, match="could not start"):
        session.run("true", timeout_s=5)


def test_target_repr_hides_private_key(keys):
    _, _, user_pair = keys
    target = SshTarget("10.0.0.5", USER, user_pair.private_openssh, "ssh-ed25519 AAAA")
    assert "PRIVATE" not in repr(target)


@pytest.mark.parametrize(
    "command, sudo, expected",
    [
        ("echo $HOME", False, "echo $HOME"),
        ("echo $HOME", True, "sudo -n -- sh -c 'echo $HOME'"),
        (["ls", "-l", "my file"], False, "ls -l 'my file'"),
        (["ls", "it's"], True, "sudo -n -- ls 'it'\"'\"'s'"),
    ],
)
def test_render_command(command, sudo, expected):
    assert render_command(command, sudo=sudo) == expected


@pytest.mark.parametrize("empty", ["", "  ", []])
def test_render_command_rejects_empty(empty):
    with pytest.raises(GuestError, match="empty command"):
        render_command(empty)
