"""Console links can be revoked before they expire: one by its id, or all of a desktop's made so far."""
from __future__ import annotations

import os
import socket
import stat
import time

import pytest

from components.cli import console as cli
from components.console import gateway, service, tokens
from components.console.settings import ConsoleSettings
from components.console.tokens import Refused


@pytest.fixture
def console_dir(tmp_path):
    tokens.signing_key(tmp_path, create=True)
    return tmp_path


def _verify(console_dir, token, desktop="ci-ci"):
    return tokens.verify(tokens.signing_key(console_dir), token, desktop, tokens.revocations(console_dir))


def test_one_link_revoked_by_its_id_and_the_others_still_work(console_dir):
    key = tokens.signing_key(console_dir)
    first, _ = tokens.mint(key, "ci-ci", 60)
    second, _ = tokens.mint(key, "ci-ci", 60)
    tokens.revoke(console_dir, "ci-ci", tokens.link_id(first))
    with pytest.raises(Refused, match="^revoked link$"):
        _verify(console_dir, first)
    assert _verify(console_dir, second).link == tokens.link_id(second)
    assert stat.S_IMODE(os.lstat(console_dir / tokens.REVOKED_FILE).st_mode) == 0o600


def test_all_of_a_desktops_links_so_far_and_only_those(console_dir):
    key = tokens.signing_key(console_dir)
    old, _ = tokens.mint(key, "ci-ci", 60, now=time.time() - 2)
    other, _ = tokens.mint(key, "ci-other", 60)
    desktop = {"name": "ci-ci", "console": {"dir": str(console_dir), "desktop": "ci-ci"}}
    assert cli.revoke(desktop, "all") == "every link made so far"
    with pytest.raises(Refused, match="^revoked link$"):
        _verify(console_dir, old)
    assert _verify(console_dir, other, "ci-other")                 # another desktop's links are untouched
    tokens.revoke(console_dir, "ci-ci", now=time.time() - 1)        # as if revoked a second ago
    with pytest.raises(Refused, match="^revoked link$"):
        _verify(console_dir, old)
    assert _verify(console_dir, tokens.mint(key, "ci-ci", 60)[0])   # a link minted after the revocation works


def test_an_unreadable_revocation_list_refuses_every_link(console_dir):
    token, _ = tokens.mint(tokens.signing_key(console_dir), "ci-ci", 60)
    (console_dir / tokens.REVOKED_FILE).write_text("{not json")
    with pytest.raises(Refused, match="revocation list is unreadable"):
        _verify(console_dir, token)


@pytest.mark.skipif(not os.path.isdir(gateway.NOVNC_DIR), reason="needs the novnc package")
def test_the_gateway_refuses_a_revoked_link_before_any_display(tmp_path, monkeypatch):
    monkeypatch.setenv("VDESK_LIBEXEC", str(tmp_path / "libexec"))
    console_dir = (tmp_path / "console")
    base = service.ensure_running(console_dir, ConsoleSettings(bind="127.0.0.1"), libvirt_uri="test:///default",
                                  netns=None)
    try:
        token, _ = tokens.mint(tokens.signing_key(console_dir), "test", 60)
        tokens.revoke(console_dir, "test", tokens.link_id(token))
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(f"GET /websockify?desktop=test&token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n".encode())
            assert s.recv(12) == b"HTTP/1.1 403"
        deadline = time.monotonic() + 10
        while "reason=revoked link" not in (console_dir / service.LOG_FILE).read_text():
            assert time.monotonic() < deadline, (console_dir / service.LOG_FILE).read_text()[-2000:]
            time.sleep(0.05)
    finally:
        service.stop(console_dir)
