"""Guests reached through their host's sshd (an SSH jump), with both host keys pinned.

The jump host is an in-process paramiko server on loopback that opens direct-tcpip channels; the guest
is the loopback SSH server of test_guest_ssh. The jump host's key comes from a known_hosts file, as the
runner's own would provide it; nothing is ever trusted on first use.
"""
from __future__ import annotations

import select
import socket
import threading

import paramiko
import pytest

from components.guest import GuestError, GuestTimeout, HostKeyMismatch
from components.guest.jump import JumpHost, open_transport
from components.guest.ssh import connect
from tests.unit.guest.test_guest_ssh import _ed25519, _public_line, _target, keys, servers  # noqa: F401


class _Jump(paramiko.ServerInterface):
    def __init__(self, server):
        self.server = server
        self.destinations = {}

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        ok = username == "root" and key.asbytes() == self.server.user_key.asbytes()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_direct_tcpip_request(self, chanid, origin, destination):
        try:
            self.destinations[chanid] = socket.create_connection(destination, timeout=5)
        except OSError:
            return paramiko.OPEN_FAILED_CONNECT_FAILED
        self.server.forwarded.append(destination)
        return paramiko.OPEN_SUCCEEDED


class JumpServer:
    """An SSH server on 127.0.0.1 that lets `root` (with one key) open TCP channels, as a host's sshd does."""

    def __init__(self, host_key, user_key):
        self.host_key, self.user_key = host_key, user_key
        self.forwarded, self.logins = [], 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.transports = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.logins += 1
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            interface = _Jump(self)
            self.transports.append(transport)
            try:
                transport.start_server(server=interface)
            except (paramiko.SSHException, EOFError, OSError):
                continue
            threading.Thread(target=self._channels, args=(transport, interface), daemon=True).start()

    def _channels(self, transport, interface):
        while transport.is_active():
            channel = transport.accept(1)
            if channel is not None:
                far = interface.destinations.pop(channel.get_id())
                threading.Thread(target=_pump, args=(channel, far), daemon=True).start()

    def close(self):
        self.sock.close()
        for t in self.transports:
            t.close()


def _pump(channel, sock):
    try:
        while True:
            readable, _, _ = select.select([channel, sock], [], [], 1)
            if channel in readable:
                data = channel.recv(65536)
                if not data:
                    break
                sock.sendall(data)
            if sock in readable:
                data = sock.recv(65536)
                if not data:
                    break
                channel.sendall(data)
    except OSError:
        pass
    finally:
        channel.close()
        sock.close()


@pytest.fixture
def jump_host(tmp_path):
    host_key, _ = _ed25519()
    login, login_pair = _ed25519()
    server = JumpServer(host_key, login)
    identity = tmp_path / "id_ed25519"
    identity.write_text(login_pair.private_openssh)
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{server.port} {_public_line(host_key)}\n")
    yield server, JumpHost("127.0.0.1", server.port, "root", known_hosts=(str(known),),
                           identities=(str(identity),)), known
    server.close()


def test_a_guest_is_reached_through_its_host_with_both_keys_pinned(servers, keys, jump_host):  # noqa: F811
    host_key, user_key, user_pair = keys
    guest = servers([host_key], user_key)
    jump_server, jump, _known = jump_host
    with connect(_target(guest, user_pair, _public_line(host_key), jump=jump), timeout_s=10) as session:
        assert session.run("echo through", timeout_s=10).stdout == "through\n"
        assert f"via root@127.0.0.1:{jump_server.port}" in repr(session)
    assert jump_server.forwarded == [("127.0.0.1", guest.port)]


def test_a_guest_still_booting_is_retried_over_one_jump_connection(servers, keys, jump_host):  # noqa: F811
    host_key, user_key, user_pair = keys
    guest = servers([host_key], user_key, listen=False)
    jump_server, jump, _known = jump_host
    threading.Timer(1.0, guest.start).start()
    with connect(_target(guest, user_pair, _public_line(host_key), jump=jump), timeout_s=15) as session:
        assert session.run("true", timeout_s=10).rc == 0
    assert jump_server.logins == 1


def test_an_unknown_jump_host_is_refused_without_connecting(servers, keys, jump_host):  # noqa: F811
    host_key, user_key, user_pair = keys
    guest = servers([host_key], user_key)
    jump_server, jump, known = jump_host
    known.write_text("[127.0.0.1]:1 " + _public_line(host_key) + "\n")
    with pytest.raises(HostKeyMismatch, match="is not in the runner's known_hosts .* does not trust a host key on "
                                              "first use"):
        connect(_target(guest, user_pair, _public_line(host_key), jump=jump), timeout_s=5)
    assert jump_server.logins == 0


def test_a_jump_host_with_another_key_is_refused(servers, keys, jump_host):  # noqa: F811
    host_key, user_key, user_pair = keys
    guest = servers([host_key], user_key)
    jump_server, jump, known = jump_host
    impostor, _ = _ed25519()
    known.write_text(f"[127.0.0.1]:{jump_server.port} {_public_line(impostor)}\n")
    with pytest.raises(HostKeyMismatch, match=f"host key mismatch for jump host root@127.0.0.1:{jump_server.port}"):
        connect(_target(guest, user_pair, _public_line(host_key), jump=jump), timeout_s=5)
    assert jump_server.forwarded == []


def test_a_swapped_guest_behind_the_jump_still_fails_closed(servers, keys, jump_host):  # noqa: F811
    host_key, user_key, user_pair = keys
    guest = servers([host_key], user_key)
    other, _ = _ed25519()
    _server, jump, _known = jump_host
    with pytest.raises(HostKeyMismatch, match="host key mismatch for 127.0.0.1"):
        connect(_target(guest, user_pair, _public_line(other), jump=jump), timeout_s=5)


def test_a_refused_login_on_the_jump_host_says_which_keys_were_tried(servers, keys, jump_host, tmp_path):  # noqa: F811
    host_key, user_key, user_pair = keys
    guest = servers([host_key], user_key)
    _server, jump, _known = jump_host
    stranger = tmp_path / "id_other"
    stranger.write_text(_ed25519()[1].private_openssh)
    wrong = JumpHost(jump.host, jump.port, "root", known_hosts=jump.known_hosts, identities=(str(stranger),))
    with pytest.raises(GuestError, match=f"cannot log in to jump host .*no key was accepted .*{stranger}"):
        connect(_target(guest, user_pair, _public_line(host_key), jump=wrong), timeout_s=5)


def test_no_guest_there_times_out_at_its_bound(servers, keys, jump_host):  # noqa: F811
    host_key, user_key, user_pair = keys
    guest = servers([host_key], user_key, listen=False)
    _server, jump, _known = jump_host
    with pytest.raises(GuestTimeout, match="via root@127.0.0.1"):
        connect(_target(guest, user_pair, _public_line(host_key), jump=jump), timeout_s=2)


@pytest.mark.parametrize("text,parsed", [
    ("root@kvm2:2222", ("kvm2", 2222, "root", "[kvm2]:2222")),
    ("admin@10.0.0.5", ("10.0.0.5", 22, "admin", "10.0.0.5")),
    ("ops@[fd00::5]:22", ("fd00::5", 22, "ops", "fd00::5")),
])
def test_jump_hosts_are_written_as_ssh_writes_them(text, parsed):
    jump = JumpHost.parse(text)
    assert (jump.host, jump.port, jump.user, jump.known_hosts_name) == parsed


def test_the_jump_is_opened_once_and_closed_with_the_session(jump_host):
    jump_server, jump, _known = jump_host
    transport = open_transport(jump, 5)
    assert transport.is_authenticated()
    transport.close()
