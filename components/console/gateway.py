"""The console gateway: websockify's proxy and web server, with vdesk's tokens, logs and expiry.

websockify does the WebSocket, the TLS and the file serving (noVNC's pages);
this module only decides who may connect to which display, for how long, and
what is logged: one line per connect, disconnect or refusal, with the desktop,
the time and the source address, never the token. A session still open when
its token expires is ended: a timer shuts the display socket, so websockify's
own loop closes the WebSocket at once. A portal link's session lasts until
its sign-in ends instead (tokens.Grant.session_ends): the link's 5 minutes
bound only when it may be opened.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import re
import select
import socket
import ssl
import struct
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import libvirt
from websockify.token_plugins import BasePlugin
from websockify.websocketproxy import ProxyRequestHandler, WebSocketProxy
from websockify.websockifyserver import WebSockifyServer

from .. import xmlmodel
from ..lifecycle import actions as idling
from ..lifecycle.console_input import ConsoleInput
from ..lifecycle.quotas import QuotaExceeded, lifecycle_dir_of
from . import vncauth
from .settings import NOVNC_DIR, RUNTIME_FILE, SETTINGS_FILE, ConsoleSettings
from .tokens import (Grant, Refused, is_revoked, refuse_other_stack, refuse_unbound, revocations, signing_key,
                     verify)

log = logging.getLogger("vdesk.console")
PORT_FILE = "last-port"              # the port bound last, tried first next time (links stay valid)
EXPIRED = 4001                       # WebSocket close code (application range): the link expired
MAX_CONNECTIONS = 32                 # connections served at once (one process each); more wait to be accepted
HEADER_TIMEOUT_S = 10                # for a request's headers: a client that trickles them is dropped
_WILDCARD = {"0.0.0.0", "::"}
SHIFT_L = 0xFFE1                     # X keysym: a key that types nothing and triggers nothing alone
# Sent by the gateway to the display, once, right after the browser's ClientInit: a display blanked in the guest
# (X.Org's DPMS or screen saver, `xset dpms force off`, the kernel console's blanking) shows QEMU's "Display
# output is not active" until a key arrives, so the next person would open a black page. The key is the
# gateway's, not the person's: it never goes through the console's input watcher (recv_frames), so the
# desktop's activity record (console_input) does not take an opened console for input. Inside a graphical
# guest X.Org's own idle counter does see it: the guest's idle reading starts again when a console is opened.
WAKE_KEYS = struct.pack(">BBxxI", 4, 1, SHIFT_L) + struct.pack(">BBxxI", 4, 0, SHIFT_L)   # KeyEvent down, up
_SECRETS_IN_TEXT = re.compile(r"(token=)[^&\s'\"]+|eyJ[\w-]+\.[\w-]+\.[\w-]+")


_PLAIN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def shown(value: str | None) -> str:
    """An untrusted value as a log field: a plain name as it is, anything else quoted with every control
    and non-ASCII character escaped (and cut), so a request cannot write a line or a field of its own."""
    if not value:
        return "-"
    return value if _PLAIN.match(value) else json.dumps(value[:64] + ("..." if len(value) > 64 else ""))


class _Redact(logging.Filter):
    """Belt and braces: no log line, websockify's own included, ever carries a token."""

    def filter(self, record):
        record.msg = _SECRETS_IN_TEXT.sub(lambda m: (m.group(1) or "") + "<redacted>", record.getMessage())
        record.args = ()
        return True


class ConsoleTokens(BasePlugin):
    """websockify's token plugin, made to vdesk's rules: a signed grant for one named desktop."""

    def __init__(self, console_dir: str, libvirt_uri: str, netns: str | None):
        super().__init__(console_dir)
        self.libvirt_uri, self.netns = libvirt_uri, netns

    def grant(self, token: str | None, desktop: str | None) -> Grant:
        """What websockify's lookup(token) does, but for the desktop the URL names: a token names one."""
        return verify(signing_key(Path(self.source)), token, desktop, revocations(Path(self.source)))

    def revoked(self, grant: Grant) -> bool:
        try:
            return is_revoked(revocations(Path(self.source)), grant)
        except Refused:
            return True

    def display_of(self, grant: Grant) -> tuple[str, str | int, str | None]:
        """Where the granted desktop's VNC display listens now, ('unix_socket', path) or (address, port), and
        its password (read here, so that it never travels in a link: vncauth.py); Refused when the desktop is
        not the stack's the grant was minted for."""
        desktop = grant.desktop
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        try:
            conn = libvirt.open(self.libvirt_uri)
        except libvirt.libvirtError:
            raise Refused("its host does not answer") from None
        try:
            try:
                dom = conn.lookupByName(desktop)
            except libvirt.libvirtError:
                raise Refused("no such desktop") from None
            live = xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE))
            refuse_other_stack(grant, live.owner.stack if live.owner else None)   # before saying anything of it
            if not dom.isActive():
                live = self._wake(conn, dom, lifecycle_dir_of(self.source))
        finally:
            conn.close()
        vnc = next((g for g in live.graphics if g.type == "vnc"), None)
        if vnc is None:
            raise Refused("the desktop has no VNC display")
        if vnc.listen_socket:
            return "unix_socket", vnc.listen_socket, vnc.passwd
        address = vnc.listen_address or "127.0.0.1"
        return ("127.0.0.1" if address in _WILDCARD else address), vnc.port, vnc.passwd


    @staticmethod
    def _wake(conn, dom, lifecycle_dir: Path) -> xmlmodel.Domain:
        """Opening a sleeping desktop's console wakes it (its managed save restored); a desktop stopped on
        purpose stays stopped. Returns its live XML, with the display where the woken qemu listens."""
        if idling.runtime_state(dom) not in idling.SLEEPING:
            raise Refused("the desktop is not running")
        try:
            how = idling.wake(conn, dom.name(), lifecycle_dir)
        except libvirt.libvirtError as exc:
            raise Refused(f"the desktop could not be woken: {exc.get_error_message()}") from None
        except QuotaExceeded as exc:
            raise Refused(str(exc)) from None
        log.info("woke desktop=%s for its console how=%s", dom.name(), how)
        return xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE))


def _enter_netns(path: str) -> None:
    """Move this (per-connection) process into the host's network namespace, where its displays listen."""
    from ..guest.netns import CLONE_NEWNET, _setns
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd, CLONE_NEWNET)
    finally:
        os.close(fd)


class ConsoleHandler(ProxyRequestHandler):
    """One browser connection: checked before the upgrade, logged, and ended when its link expires."""

    grant: Grant
    expired = False
    console_input: ConsoleInput | None = None    # set once the connection is granted: its input is activity
    timeout = HEADER_TIMEOUT_S           # socketserver sets it on the connection before the request is read

    def end_headers(self):
        # The page's URL fragment holds the link's token path: never let it leak through a Referer.
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def validate_connection(self):
        query = parse_qs(urlparse(self.path).query)
        desktop = (query.get("desktop") or [None])[0]
        plugin: ConsoleTokens = self.server.token_plugin
        try:
            self.grant = plugin.grant((query.get("token") or [None])[0], desktop)
            refuse_unbound(self.grant.bound, self.headers.get("Cookie"))    # a portal link: its person's only
            *target, self.display_password = plugin.display_of(self.grant)
        except Refused as exc:
            log.info("refused desktop=%s from=%s reason=%s", shown(desktop), self.client_address[0], exc)
            self.send_error(403, "Forbidden")
            raise self.server.EClose("") from None
        self.console_input = ConsoleInput.for_console(Path(plugin.source), self.grant.desktop)
        if target[0] == "unix_socket":
            self.server.unix_target = target[1]
        else:
            if plugin.netns:
                _enter_netns(plugin.netns)   # this process serves this one connection only
            self.server.target_host, self.server.target_port = target

    def new_websocket_client(self):
        self.request.settimeout(None)    # the headers are in: a session may be idle for as long as its link lasts
        started = time.monotonic()
        source = self.client_address[0]
        log.info("connect desktop=%s from=%s link=%s expires=%s", self.grant.desktop, source, self.grant.link,
                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.grant.expires)))
        how = "error"
        try:
            super().new_websocket_client()
            how = "closed"
        except self.CClose as exc:
            how = "link revoked" if self.revoked else "link expired" if self.expired else (exc.args[1] if len(exc.args) > 1 and exc.args[1] else "closed")
            raise
        finally:
            log.info("disconnect desktop=%s from=%s link=%s after=%.1fs reason=%s", self.grant.desktop, source,
                     self.grant.link, time.monotonic() - started, how)

    def do_proxy(self, target):
        self._log_in(target)
        timer = threading.Timer(max(0.0, self.grant.session_ends - time.time()), self._expire, args=(target,))
        timer.daemon = True
        timer.start()
        done = threading.Event()
        watch = threading.Thread(target=self._watch_revocation, args=(target, done), daemon=True)
        watch.start()
        try:
            super().do_proxy(target)
        except self.CClose:
            if self.expired:
                raise self.CClose(EXPIRED, "console link expired" if not self.revoked else "console link revoked") \
                    from None
            raise
        finally:
            timer.cancel()
            done.set()

    revoked = False
    _from_browser = b""

    def _log_in(self, target: socket.socket) -> None:
        """The gateway logs in to the display itself, lets the browser in without a password, and wakes the
        display (WAKE_KEYS)."""
        def read_display(n: int) -> bytes:
            data = b""
            while len(data) < n:
                chunk = target.recv(n - len(data))
                if not chunk:
                    raise vncauth.LoginFailed("the display closed the connection")
                data += chunk
            return data
        target.settimeout(HEADER_TIMEOUT_S)
        try:
            vncauth.log_in(read_display, target.sendall, self.display_password)
        except (vncauth.LoginFailed, OSError) as exc:
            log.warning("display login failed desktop=%s reason=%s", self.grant.desktop, exc)
            with contextlib.suppress(vncauth.LoginFailed, OSError, self.CClose):
                vncauth.refuse(self._read_browser, self._send_browser, "the desktop's display refused the gateway")
            raise self.CClose(1011, "display login failed") from None
        finally:
            target.settimeout(None)
        try:
            vncauth.admit(self._read_browser, self._send_browser)
            client_init = self._read_browser(1)
        except vncauth.LoginFailed as exc:
            raise self.CClose(1002, str(exc)) from None
        # The display takes client messages from ClientInit on: the wake keys first, then the browser's own.
        target.sendall(client_init + WAKE_KEYS + self._from_browser)
        self._from_browser = b""

    def recv_frames(self):
        """Every frame from the browser (the handshake's too) goes by the desktop's input watcher: key and
        pointer messages are activity for the host's lifecycle service; an open tab's update requests are not."""
        bufs, closed = super().recv_frames()
        if self.console_input is not None and bufs:
            self.console_input.feed(bufs)
        return bufs, closed

    def _read_browser(self, n: int) -> bytes:
        while len(self._from_browser) < n:
            bufs, closed = self.recv_frames()
            self._from_browser += b"".join(bufs)
            if closed:
                raise self.CClose(closed["code"], closed["reason"])
            if len(self._from_browser) < n and not select.select([self.request], [], [], HEADER_TIMEOUT_S)[0]:
                raise self.CClose(1002, "the browser did not answer the RFB handshake")
        data, self._from_browser = self._from_browser[:n], self._from_browser[n:]
        return data

    def _send_browser(self, data: bytes) -> None:
        pending = self.send_frames([data])
        while pending:
            select.select([], [self.request], [], HEADER_TIMEOUT_S)
            pending = self.send_frames()

    def _watch_revocation(self, target: socket.socket, done: threading.Event) -> None:
        """A link revoked while its session is open ends the session (checked each second)."""
        plugin: ConsoleTokens = self.server.token_plugin
        while not done.wait(1.0):
            if plugin.revoked(self.grant):
                self.revoked = True
                self._expire(target)
                return

    def _expire(self, target: socket.socket) -> None:
        """The link ran out: shut the display's side, and websockify's loop ends the session."""
        self.expired = True
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_RD)

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        log.debug("%s %s", self.client_address[0], format % args)


class ConsoleGateway(WebSocketProxy):
    """websockify's forking proxy (one process per session) serving noVNC; records the port it bound."""

    def __init__(self, console_dir: Path, settings: ConsoleSettings, libvirt_uri: str, netns: str | None,
                 web: str = NOVNC_DIR, listening_fd: int | None = None):
        self.console_dir = Path(console_dir).resolve()   # websockify changes into the web root
        self.settings = settings
        self.listening_fd = listening_fd     # the supervisor's socket: the port stays held while this restarts
        tls = ({"cert": settings.tls_cert, "key": settings.tls_key, "ssl_only": True, "ssl_options": tls_options()}
               if settings.tls_cert else {})
        super().__init__(RequestHandlerClass=ConsoleHandler, listen_host=settings.bind,
                         listen_port=_port_to_try(self.console_dir, settings), web=web, file_only=True,
                         token_plugin=ConsoleTokens(str(self.console_dir), libvirt_uri, netns), **tls)

    def socket(self, host, port=None, connect=False, *args, **kwargs):
        """websockify opens its listening socket here: the supervisor's, else one bound now (see listen())."""
        if not connect and self.listening_fd is not None:
            sock = socket.socket(fileno=self.listening_fd)
        else:
            sock = WebSockifyServer.socket(host, port, connect, *args, **kwargs) if connect else \
                listen(self.console_dir, self.settings)
        if not connect:
            self._listening, self._pid = sock, os.getpid()
            self._record(sock.getsockname()[1])
        return sock

    def poll(self):
        """Called by websockify's accept loop before each accept: hold off while MAX_CONNECTIONS are served."""
        while len(multiprocessing.active_children()) >= MAX_CONNECTIONS:
            time.sleep(0.05)

    def top_new_client(self, startsock, address):
        """A session's own process: it must not keep the port open if the gateway is restarted meanwhile."""
        if getattr(self, "_pid", None) not in (None, os.getpid()):
            self._listening.close()
        super().top_new_client(startsock, address)

    def _record(self, port: int) -> None:
        runtime = {"pid": os.getpid(), "port": port, "url": base_url(self.settings, port)}
        tmp = self.console_dir / (RUNTIME_FILE + ".tmp")
        tmp.write_text(json.dumps(runtime) + "\n")
        tmp.replace(self.console_dir / RUNTIME_FILE)
        (self.console_dir / PORT_FILE).write_text(f"{port}\n")
        log.info("console gateway listening on %s", runtime["url"])


def tls_options() -> int:
    """websockify sets its context's options to what it is given (its default 0 clears Python's own):
    Python's defaults for a server, and TLS 1.2 at least."""
    return ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).options | ssl.OP_NO_TLSv1 | ssl.OP_NO_TLSv1_1


def listen(console_dir: Path, settings: ConsoleSettings) -> socket.socket:
    """The gateway's listening socket: the declared port, else the last one (links printed then stay valid),
    falling back to any free port."""
    port = _port_to_try(console_dir, settings)
    try:
        return WebSockifyServer.socket(settings.bind, port, False)
    except OSError:
        if not port or settings.port:
            raise
        return WebSockifyServer.socket(settings.bind, 0, False)


def _port_to_try(console_dir: Path, settings: ConsoleSettings) -> int:
    """The declared port; else the one used last time (links printed then stay valid), else any."""
    if settings.port:
        return settings.port
    with contextlib.suppress(OSError, ValueError):
        return int((console_dir / PORT_FILE).read_text())
    return 0


def base_url(settings: ConsoleSettings, port: int) -> str:
    host = socket.getfqdn() if settings.bind in _WILDCARD else settings.bind
    return f"{settings.scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%SZ"))
    handler.formatter.converter = time.gmtime
    handler.addFilter(_Redact())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("websocket").setLevel(logging.WARNING)   # websockify's chatter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vdesk-console-gateway")
    parser.add_argument("console_dir", type=Path)
    parser.add_argument("--listening-fd", type=int, help="a listening socket the supervisor holds")
    args = parser.parse_args(argv)
    configure_logging()
    spec = json.loads((args.console_dir / SETTINGS_FILE).read_text())
    settings = ConsoleSettings(**spec["settings"])
    signing_key(args.console_dir)   # fail now, not at the first connection, if the key is unreadable
    ConsoleGateway(args.console_dir, settings, spec["libvirt_uri"], spec.get("netns"),
                   listening_fd=args.listening_fd).start_server()
    return 0


if __name__ == "__main__":
    sys.exit(main())
