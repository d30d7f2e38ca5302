"""The gateway's RFB security handshake, each side against the other over a socket pair."""
from __future__ import annotations

import socket
import threading

import pytest

from components.console import vncauth


def _reader(sock):
    def read(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise vncauth.LoginFailed("closed")
            data += chunk
        return data
    return read


def _pair(server_side):
    ours, theirs = socket.socketpair()
    errors = []

    def serve():
        try:
            server_side(_reader(theirs), theirs.sendall)
        except Exception as exc:   # noqa: BLE001 - reported by the test
            errors.append(exc)
    thread = threading.Thread(target=serve)
    thread.start()
    return ours, thread, errors


def test_the_browser_is_admitted_with_security_none_and_nothing_else():
    ours, thread, errors = _pair(vncauth.admit)
    vncauth.log_in(_reader(ours), ours.sendall, None)           # as a browser would, asking no password
    thread.join(10)
    assert not errors


def test_a_client_with_a_password_is_not_offered_vnc_authentication():
    ours, thread, errors = _pair(vncauth.admit)
    with pytest.raises(vncauth.LoginFailed, match=r"offers security types \[1\]"):
        vncauth.log_in(_reader(ours), ours.sendall, "secret")
    ours.close()
    thread.join(10)


def test_a_refusal_carries_its_reason_to_the_browser():
    ours, thread, errors = _pair(lambda read, send: vncauth.refuse(read, send, "the display refused"))
    with pytest.raises(vncauth.LoginFailed, match="the display refused: the display refused"):
        vncauth.log_in(_reader(ours), ours.sendall, None)
    thread.join(10)


def test_the_answer_to_a_challenge_is_des_with_mirrored_key_bits():
    # (that a real display accepts it is proven against qemu: tests/integration/test_display_live.py)
    challenge = bytes(range(16))
    assert vncauth.response("password", challenge) == vncauth.response("password\0", challenge)
    assert vncauth.response("password", challenge) != vncauth.response("passwore", challenge)
    assert len(vncauth.response("", challenge)) == 16
