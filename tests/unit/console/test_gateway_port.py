"""While the gateway restarts, its port stays held: no one else can bind it and answer printed links."""
from __future__ import annotations

import errno
import os
import signal
import socket
import time

import pytest

from components.console import gateway, service
from components.console.settings import ConsoleSettings

pytestmark = pytest.mark.skipif(not os.path.isdir(gateway.NOVNC_DIR), reason="needs the novnc package")


def test_a_crashed_gateway_comes_back_on_its_port_and_no_one_can_take_it_meanwhile(tmp_path, monkeypatch):
    monkeypatch.setenv("VDESK_LIBEXEC", str(tmp_path / "libexec"))
    console_dir = tmp_path / "console"
    service.ensure_running(console_dir, ConsoleSettings(bind="127.0.0.1"), libvirt_uri="test:///default", netns=None)
    console_dir = console_dir.resolve()
    try:
        first = service.runtime(console_dir)
        os.kill(first["pid"], signal.SIGKILL)              # the gateway dies; its supervisor restarts it (backoff)
        deadline = time.monotonic() + 5
        while service.runtime(console_dir) is not None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        squatter = socket.socket()
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError) as taken:
            squatter.bind(("127.0.0.1", first["port"]))
            squatter.listen()
        squatter.close()
        assert taken.value.errno == errno.EADDRINUSE
        deadline = time.monotonic() + 30
        while (again := service.runtime(console_dir)) is None:
            assert time.monotonic() < deadline, "the gateway did not come back"
            time.sleep(0.05)
        assert again["pid"] != first["pid"] and again["port"] == first["port"]
        with socket.create_connection(("127.0.0.1", again["port"]), timeout=10) as s:
            s.sendall(b"GET /vnc.html HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(12).startswith(b"HTTP/1.1 200")
    finally:
        service.stop(console_dir)
