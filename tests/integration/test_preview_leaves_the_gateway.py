"""Neither a preview nor an `up` of a stack changes the host's console gateway, which other stacks' sessions use.

The integration tier's own libvirtd, and its gateway started as `up` starts it; no guest runs. A stack's host
entry with its own console setting (how long its links last: all a stack may choose) is resolved as a preview
and then as an `up` resolves it: the same gateway process, on the same port, with the same settings, still serves
a connection opened before. Other gateway settings (another port) are refused, naming the policy key.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from pulumi.runtime import settings as pulumi_settings

from components.console import service
from components.console.gateway import SETTINGS_FILE
from components.console.settings import ConsoleSettings
from components.errors import InputError
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


def test_a_preview_and_an_up_with_other_console_settings_leave_the_running_gateway_as_it_was(
        own_host, running_gateway, monkeypatch):
    console_dir, url = running_gateway
    before, supervisor = service.runtime(console_dir), service.supervisor_pid(console_dir)
    written = (console_dir / SETTINGS_FILE).read_text()
    own_links = ConsoleSettings(link_validity_s=60)
    held = socket.create_connection(("127.0.0.1", before["port"]), timeout=10)   # a live session's connection
    try:
        for dry_run in (True, False):                                           # preview, then up
            monkeypatch.setattr(pulumi_settings.SETTINGS, "dry_run", dry_run)
            host = resolve_host(own_host.name, EMBEDDED, "tcg", probe_kernel=None, console=own_links)
            assert host.console == own_links and host.console_dir == str(console_dir)
            after = service.runtime(console_dir)
            assert (after["pid"], after["port"], after["url"]) == (before["pid"], before["port"], url), dry_run
            assert service.supervisor_pid(console_dir) == supervisor
            assert (console_dir / SETTINGS_FILE).read_text() == written
        assert _page_over(held).split(b"\r\n", 1)[0] in (b"HTTP/1.0 200 OK", b"HTTP/1.1 200 OK")
    finally:
        held.close()
    assert "link_validity_s" not in json.loads(written)["settings"]      # a stack's links: never the gateway's

    with pytest.raises(InputError) as refused:                           # another port: the host's to set
        resolve_host(own_host.name, EMBEDDED, "tcg", probe_kernel=None, console=ConsoleSettings(port=_free_port()))
    assert "the host's: its administrator sets them as `console`" in dict(refused.value.problems)[
        f"hosts.{own_host.name}.console"]
    assert service.runtime(console_dir)["pid"] == before["pid"]


def test_a_preview_of_a_stopped_embedded_host_starts_its_libvirtd_only_and_says_so(tmp_path_factory, monkeypatch,
                                                                                  caplog):
    """What preview judges a stack against is only known by asking the host's libvirtd; nothing else starts."""
    from components.host import embedded
    from components.portal.accounts import portal_dir_of
    from components.portal import service as portal
    monkeypatch.setenv("VDESK_STATE", str(tmp_path_factory.mktemp("dry")))
    stopped = embedded.embedded_host("dry")
    monkeypatch.setattr(pulumi_settings.SETTINGS, "dry_run", True)
    try:
        with caplog.at_level("INFO", logger="components.host.resolve"):
            host = resolve_host("dry", EMBEDDED, "tcg", probe_kernel=None)
        assert embedded.is_running(stopped)
        assert "host dry: the embedded host's libvirtd was down; the preview starts it" in caplog.text
        console_dir = Path(host.console_dir)
        assert service.runtime(console_dir) is None and service.supervisor_pid(console_dir) is None
        assert portal.runtime(portal_dir_of(console_dir)) is None
        caplog.clear()
        with caplog.at_level("INFO", logger="components.host.resolve"):
            resolve_host("dry", EMBEDDED, "tcg", probe_kernel=None)
        assert "was down" not in caplog.text                         # a running one: nothing to say
    finally:
        embedded.stop(stopped, purge=True)
