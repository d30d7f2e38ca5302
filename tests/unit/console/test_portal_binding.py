"""A console link opened from the portal belongs to that person's session: the gateway itself checks it.

The portal signs `bnd` (the digest of a per-session value it set as the HttpOnly console cookie) into the
grant. A forwarded link arrives without that cookie, or with another session's, and the real gateway
refuses it before anything reaches a display; links from `make console` carry no binding.
"""
from __future__ import annotations

import os
import socket
import time

import pytest

from components.console import gateway, service, tokens
from components.console.settings import ConsoleSettings


def _upgrade(port: int, token: str, cookie: str | None) -> bytes:
    """The status line the gateway answers a WebSocket upgrade for libvirt test driver's domain `test`."""
    header = f"Cookie: {cookie}\r\n" if cookie is not None else ""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET /websockify?desktop=test&token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\n{header}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        return s.recv(12)


def _logged(console_dir, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in (console_dir / service.LOG_FILE).read_text():
        assert time.monotonic() < deadline, (console_dir / service.LOG_FILE).read_text()[-2000:]
        time.sleep(0.05)


def test_a_grant_carries_its_binding_and_a_plain_link_none(tmp_path):
    key = tokens.signing_key(tmp_path, create=True)
    bound, _ = tokens.mint(key, "test", 60, extra={"bnd": tokens.binding_of("session-value")})
    plain, _ = tokens.mint(key, "test", 60)
    assert tokens.verify(key, bound, "test").bound == tokens.binding_of("session-value")
    assert tokens.verify(key, plain, "test").bound is None
    tokens.refuse_unbound(None, None)                      # an administrator's link needs no cookie
    tokens.refuse_unbound(tokens.binding_of("session-value"), f"a=1; {tokens.CONSOLE_COOKIE}=session-value")
    for cookie in (None, "", f"{tokens.CONSOLE_COOKIE}=someone-else", "a=1"):
        with pytest.raises(tokens.Refused, match="another person's session"):
            tokens.refuse_unbound(tokens.binding_of("session-value"), cookie)


@pytest.mark.skipif(not os.path.isdir(gateway.NOVNC_DIR), reason="needs the novnc package")
def test_the_gateway_refuses_a_forwarded_portal_link(tmp_path, monkeypatch):
    monkeypatch.setenv("VDESK_LIBEXEC", str(tmp_path / "libexec"))
    console_dir = tmp_path / "console"
    base = service.ensure_running(console_dir, ConsoleSettings(bind="127.0.0.1"), libvirt_uri="test:///default",
                                  netns=None)
    try:
        port = int(base.rsplit(":", 1)[1])
        token, _ = tokens.mint(tokens.signing_key(console_dir), "test", 60,
                               extra={"bnd": tokens.binding_of("ada-session")})
        assert _upgrade(port, token, None) == b"HTTP/1.1 403"                                    # forwarded
        assert _upgrade(port, token, f"{tokens.CONSOLE_COOKIE}=grace-session") == b"HTTP/1.1 403"  # another's
        _logged(console_dir, "reason=a link of another person's session")
        # ada's own browser gets past the binding: the test driver's domain then has no display to offer
        assert _upgrade(port, token, f"{tokens.CONSOLE_COOKIE}=ada-session") == b"HTTP/1.1 403"
        _logged(console_dir, "reason=the desktop has no VNC display")
    finally:
        service.stop(console_dir)
