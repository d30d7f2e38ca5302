"""The browser console's gateway on the project's own libvirtd, driven by a WebSocket client.

OS-less guests (firmware only) serve VNC like any other, so no guest boots
here. The gateway runs as the embedded host runs it (detached, supervised);
each test reads its log. What is proven: a token for this desktop reaches the
display, where the gateway logs in with the desktop's password itself (the
browser is offered no password: none is in a link); a wrong, an
expired and another desktop's token are refused before any byte reaches a
display; a session open when its token expires is closed within seconds; a
display on an address inside the host's network namespace is reached too; a
killed gateway comes back on the same port; with a certificate it speaks only
TLS. No log line holds a token or a password.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websocket
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.console import service, tokens
from components.console.gateway import EXPIRED
from components.console.settings import ConsoleSettings
from components.resources.domain import DomainProvider
from tests.support.providers import checked
from tests.support.rfb import RfbRefused, WebSocketTransport, handshake

pytestmark = [pytest.mark.integration, pytest.mark.guests]
PASSWORD = "cons0le!"


def _domain(host, name: str, **extra) -> dict:
    dp = DomainProvider()
    props = {"host_uri": host.uri, "name": name, "domain_type": "qemu", "boot": "bios", "memory": 128 * 1024**2,
             "vcpus": 1, "display_password": PASSWORD, "shutdown_timeout_s": 2, **extra}
    if "graphics_listen" not in extra:
        props["graphics_socket"] = str(host.state_dir / "displays" / f"{name}.vnc")
    return dp.create(checked(dp, props))


@pytest.fixture(scope="module")
def gateway(own_host):
    os.makedirs(own_host.state_dir / "displays", exist_ok=True)
    made = [_domain(own_host, "console-a"), _domain(own_host, "console-b"),
            _domain(own_host, "console-tcp", graphics_listen="127.0.0.1")]   # 127.0.0.1 of the host's netns
    console_dir = own_host.state_dir / "console"
    url = service.ensure_running(console_dir, ConsoleSettings(), libvirt_uri=own_host.uri, netns=own_host.netns)
    yield {"url": url, "dir": console_dir, "key": tokens.signing_key(console_dir), "host": own_host}
    service.stop(console_dir)
    for created in made:
        DomainProvider().delete(created.id, created.outs)


def ws_url(base: str, desktop: str, token: str) -> str:
    return base.replace("http", "ws", 1) + f"/websockify?desktop={desktop}&token={token}"


def open_ws(base: str, desktop: str, token: str, **kw) -> websocket.WebSocket:
    return websocket.create_connection(ws_url(base, desktop, token), subprotocols=["binary"], timeout=10, **kw)


def log_text(gw) -> str:
    return (gw["dir"] / service.LOG_FILE).read_text()


def wait_for_log(gw, text: str, timeout_s: float = 10) -> str:
    deadline = time.monotonic() + timeout_s
    while text not in (log := log_text(gw)):
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{log[-2000:]}"
        time.sleep(0.1)
    return log


def test_a_token_for_the_desktop_reaches_its_display_and_its_password_logs_in(gateway):
    token, _ = tokens.mint(gateway["key"], "console-a", 60)
    ws = open_ws(gateway["url"], "console-a", token)
    try:
        width, height, name = handshake(WebSocketTransport(ws), None)
    finally:
        ws.close()
    assert name == "QEMU (console-a)" and width >= 640 and height >= 400
    log = wait_for_log(gateway, "disconnect desktop=console-a")
    assert "connect desktop=console-a from=127.0.0.1" in log
    assert token not in log and PASSWORD not in log


def test_the_browser_is_offered_no_password_prompt_and_the_display_still_needs_its_password(gateway):
    token, _ = tokens.mint(gateway["key"], "console-a", 60)
    ws = open_ws(gateway["url"], "console-a", token)
    try:
        with pytest.raises(RfbRefused, match=r"no VNC authentication offered \(security types \[1\]\)"):
            handshake(WebSocketTransport(ws), "not-it")      # through the gateway: security type None only
    finally:
        ws.close()
    socket_path = gateway["host"].state_dir / "displays" / "console-a.vnc"
    with socket.socket(socket.AF_UNIX) as direct:              # the display itself: its password, as before
        direct.connect(str(socket_path))
        with pytest.raises(RfbRefused):
            handshake(direct, "not-it")
    with socket.socket(socket.AF_UNIX) as direct:
        direct.connect(str(socket_path))
        assert handshake(direct, PASSWORD)[2] == "QEMU (console-a)"


@pytest.mark.parametrize("case", ["wrong", "expired", "another desktop's", "forged", "none"])
def test_a_bad_token_is_refused_before_the_display(gateway, case):
    key = gateway["key"]
    token = {"wrong": "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl",
             "expired": tokens.mint(key, "console-a", 60, now=time.time() - 120)[0],
             "another desktop's": tokens.mint(key, "console-b", 60)[0],
             "forged": tokens.mint(os.urandom(32), "console-a", 60)[0],
             "none": ""}[case]
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        open_ws(gateway["url"], "console-a", token)
    assert refused.value.status_code == 403
    log = wait_for_log(gateway, "refused desktop=console-a from=127.0.0.1 reason=")
    assert (token or "token=") not in log.replace("token=<redacted>", "")


def test_an_open_session_ends_when_its_link_is_revoked(gateway):
    token, expires = tokens.mint(gateway["key"], "console-b", 600)
    ws = open_ws(gateway["url"], "console-b", token)
    assert handshake(WebSocketTransport(ws), None)[2] == "QEMU (console-b)"
    revoked = time.time()
    tokens.revoke(gateway["dir"], "console-b", tokens.link_id(token))
    ws.settimeout(15)
    close_code = None
    while close_code is None:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            close_code = int.from_bytes(data[:2], "big")
        assert time.time() < revoked + 10, "the session outlived its revocation"
    ws.close()
    assert close_code == EXPIRED and time.time() - revoked < 5
    log = wait_for_log(gateway, "reason=link revoked")
    assert f"link={tokens.link_id(token)}" in log and token not in log
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        open_ws(gateway["url"], "console-b", token)                 # and the link is refused from now on
    assert refused.value.status_code == 403


def _ended_by_the_gateway(ws, deadline: float, outlived: str) -> tuple[int, float]:
    """(close code, when) of the WebSocket's close frame; the display keeps talking until the gateway ends it."""
    ws.settimeout(20)
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            closed = time.time()
            ws.close()
            return int.from_bytes(data[:2], "big"), closed
        assert time.time() < deadline, outlived


def test_a_live_session_ends_when_its_token_expires(gateway):
    token, expires = tokens.mint(gateway["key"], "console-b", 4)
    ws = open_ws(gateway["url"], "console-b", token)
    transport = WebSocketTransport(ws)
    assert handshake(transport, None)[2] == "QEMU (console-b)"
    close_code, closed = _ended_by_the_gateway(ws, expires + 10, "the session outlived its token")
    assert close_code == EXPIRED and expires - 0.5 <= closed <= expires + 3, (closed - expires)
    log = wait_for_log(gateway, "desktop=console-b from=127.0.0.1")
    assert "reason=link expired" in log and token not in log


def test_a_portal_links_session_outlives_the_link_until_its_sign_in_ends(gateway):
    """A portal link may be opened for 5 minutes; the console opened from it stays open until the person's
    sign-in ends (`until`), then the gateway ends it as it ends an expired link's."""
    token, expires = tokens.mint(gateway["key"], "console-b", 3, extra={"until": int(time.time()) + 9})
    until = tokens.verify(gateway["key"], token, "console-b").session_ends
    ws = open_ws(gateway["url"], "console-b", token)
    assert handshake(WebSocketTransport(ws), None)[2] == "QEMU (console-b)"
    close_code, closed = _ended_by_the_gateway(ws, until + 10, "the session outlived its sign-in")
    assert close_code == EXPIRED and until - 0.5 <= closed <= until + 3, (closed - expires, closed - until)
    assert wait_for_log(gateway, "reason=link expired")


def test_a_display_on_an_address_inside_the_hosts_namespace(gateway):
    token, _ = tokens.mint(gateway["key"], "console-tcp", 60)
    ws = open_ws(gateway["url"], "console-tcp", token)
    try:
        assert handshake(WebSocketTransport(ws), None)[2] == "QEMU (console-tcp)"
    finally:
        ws.close()


def test_the_page_is_nOVNC_served_without_referrer_or_cache(gateway):
    with urllib.request.urlopen(gateway["url"] + "/vnc.html", timeout=10) as page:
        body = page.read().decode()
        assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["Cache-Control"] == "no-store"
    assert "noVNC" in body
    with pytest.raises(urllib.error.HTTPError) as listing:
        urllib.request.urlopen(gateway["url"] + "/core/", timeout=10)
    assert listing.value.code == 404                # files only, no directory listings


def test_a_killed_gateway_is_restarted_on_the_same_port(gateway):
    before = service.runtime(gateway["dir"])
    os.kill(before["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while not ((now := service.runtime(gateway["dir"])) and now["pid"] != before["pid"]):
        assert time.monotonic() < deadline, "the supervisor did not restart the gateway"
        time.sleep(0.2)
    assert now["url"] == before["url"]
    wait_for_log(gateway, "restarting in")
    url = service.ensure_running(gateway["dir"], ConsoleSettings(), libvirt_uri=gateway["host"].uri,
                                 netns=gateway["host"].netns)
    assert url == before["url"] and service.runtime(gateway["dir"])["pid"] == now["pid"]   # left running


def _self_signed(folder: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    path = folder / "console.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


def test_with_a_certificate_it_speaks_tls_only(gateway, tmp_path):
    host = gateway["host"]
    pem = _self_signed(tmp_path)
    try:
        url = service.ensure_running(gateway["dir"], ConsoleSettings(tls_cert=str(pem)), libvirt_uri=host.uri,
                                     netns=host.netns)
        assert url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(pem))
        with urllib.request.urlopen(url + "/vnc.html", timeout=10, context=context) as page:
            assert page.status == 200
        token, _ = tokens.mint(gateway["key"], "console-a", 60)
        ws = open_ws(url.replace("https", "wss"), "console-a", token, sslopt={"ca_certs": str(pem)})
        try:
            assert handshake(WebSocketTransport(ws), None)[2] == "QEMU (console-a)"
        finally:
            ws.close()
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(url.replace("https", "http") + "/vnc.html", timeout=10)
    finally:
        gateway["url"] = service.ensure_running(gateway["dir"], ConsoleSettings(), libvirt_uri=host.uri,
                                                netns=host.netns)
