"""The gateway's limits: headers within HEADER_TIMEOUT_S, at most MAX_CONNECTIONS at once, TLS as Python's defaults."""
from __future__ import annotations

import os
import socket
import ssl
import time

import pytest

from components.console import gateway, service
from components.console.settings import ConsoleSettings

pytestmark = pytest.mark.skipif(not os.path.isdir(gateway.NOVNC_DIR), reason="needs the novnc package")


@pytest.fixture
def port(tmp_path, monkeypatch):
    monkeypatch.setenv("VDESK_LIBEXEC", str(tmp_path / "libexec"))
    console_dir = tmp_path / "console"
    service.ensure_running(console_dir, ConsoleSettings(bind="127.0.0.1"), libvirt_uri="test:///default", netns=None)
    yield service.runtime(console_dir.resolve())["port"]
    service.stop(console_dir)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except (socket.timeout, ConnectionResetError):
        return False


def _page(port: int, timeout_s: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(b"GET /vnc.html HTTP/1.1\r\nHost: x\r\n\r\n")
        return s.recv(12)


def test_a_client_that_trickles_its_headers_is_dropped(port):
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(b"GET /vnc.html HTTP/1.1\r\n")           # and never the rest
        started = time.monotonic()
        assert _closed_within(slow, gateway.HEADER_TIMEOUT_S + 10)
        assert time.monotonic() - started < gateway.HEADER_TIMEOUT_S + 5


def test_connections_beyond_the_cap_wait_until_one_ends(port):
    held = []
    try:
        for _ in range(gateway.MAX_CONNECTIONS):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.1\r\n")                 # each holds a process until its header timeout
            held.append(s)
        with pytest.raises(socket.timeout):
            _page(port, 2)                                   # accepted by the kernel, not served
        for s in held:
            s.close()
        assert _page(port, 20).startswith(b"HTTP/1.1 200")
    finally:
        for s in held:
            s.close()


def test_tls_keeps_pythons_defaults_and_refuses_tls_1_0_and_1_1():
    options = gateway.tls_options()
    defaults = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).options
    assert options & defaults == defaults
    assert options & ssl.OP_NO_TLSv1 and options & ssl.OP_NO_TLSv1_1 and options & ssl.OP_NO_COMPRESSION


def test_the_gateway_hands_websockify_those_options(tmp_path):
    settings = ConsoleSettings(tls_cert=str(tmp_path / "cert.pem"))
    served = gateway.ConsoleGateway(tmp_path, settings, "test:///default", None, web=str(tmp_path))
    assert served.ssl_options == gateway.tls_options() and served.ssl_only
