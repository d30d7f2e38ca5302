"""A preview changes nothing on the host: the console gateway other stacks' sessions run through stays as it is.

The integration tier's own libvirtd, and its gateway started as `up` starts it; no guest runs. A host entry
with other console settings (another port, another link validity) is resolved as a preview resolves it: the
same gateway process, on the same port, still serves a connection opened before. The same entry resolved as
`up` does apply the new settings (a new process), so the test would see a preview that did.
"""
from __future__ import annotations

import json
import socket

import pytest
from pulumi.runtime import settings as pulumi_settings

from components.console import service
from components.console.gateway import SETTINGS_FILE
from components.console.settings import ConsoleSettings
from components.host.resolve import EMBEDDED, resolve_host

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _page_over(sock: socket.socket) -> bytes:
    """GET the noVNC page over a connection that was opened earlier: it answers only if that is still open."""
    sock.sendall(b"GET /vnc.html HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.fixture
def running_gateway(own_host, monkeypatch):
    console_dir = own_host.state_dir / "console"
    url = service.ensure_running(console_dir, ConsoleSettings(), libvirt_uri=own_host.uri, netns=own_host.netns)
    monkeypatch.setenv("VDESK_STATE", str(own_host.state_dir.parent.parent))   # resolve_host finds this host
    yield console_dir, url
    service.stop(console_dir)


def test_a_preview_with_other_console_settings_leaves_the_running_gateway_as_it_was(own_host, running_gateway,
                                                                                    monkeypatch):
    console_dir, url = running_gateway
    before, supervisor = service.runtime(console_dir), service.supervisor_pid(console_dir)
    written = (console_dir / SETTINGS_FILE).read_text()
    other = ConsoleSettings(port=_free_port(), link_validity_s=60)
    held = socket.create_connection(("127.0.0.1", before["port"]), timeout=10)   # a live session's connection
    try:
        monkeypatch.setattr(pulumi_settings.SETTINGS, "dry_run", True)
        host = resolve_host(own_host.name, EMBEDDED, "tcg", probe_kernel=None, console=other)
        assert host.console == other and host.console_dir == str(console_dir)     # checked, described, not applied
        after = service.runtime(console_dir)
        assert (after["pid"], after["port"], after["url"]) == (before["pid"], before["port"], url)
        assert service.supervisor_pid(console_dir) == supervisor
        assert (console_dir / SETTINGS_FILE).read_text() == written
        assert _page_over(held).split(b"\r\n", 1)[0] in (b"HTTP/1.0 200 OK", b"HTTP/1.1 200 OK")
    finally:
        held.close()
    monkeypatch.setattr(pulumi_settings.SETTINGS, "dry_run", False)          # `up`: the settings are applied
    resolve_host(own_host.name, EMBEDDED, "tcg", probe_kernel=None, console=other)
    applied = service.runtime(console_dir)
    assert applied["pid"] != before["pid"] and applied["port"] == other.port
    assert json.loads((console_dir / SETTINGS_FILE).read_text())["settings"]["link_validity_s"] == 60
