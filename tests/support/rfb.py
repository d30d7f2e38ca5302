"""A tiny RFB (VNC) client for tests: the handshake and VNC authentication, nothing more.

Enough to prove which password a display accepts, over a unix socket or TCP,
and that the console gateway's WebSocket needs none (the gateway logs in
itself: components/console/vncauth.py, whose DES answer this uses).
"""
from __future__ import annotations

import struct

from components.console.vncauth import NONE, VERSION, VNC_AUTH
from components.console.vncauth import response as vnc_response


class RfbRefused(Exception):
    """The server turned the client away (wrong or expired password), with its reason."""


class _Stream:
    """recv-exactly over anything with recv(n) -> bytes and sendall(bytes)."""

    def __init__(self, transport):
        self.transport, self.buffer = transport, b""

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.transport.recv(65536)
            if not chunk:
                raise ConnectionError(f"the server closed the connection ({self.buffer!r} so far)")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def reason(self) -> str:
        return self.read(struct.unpack(">I", self.read(4))[0]).decode(errors="replace")


def handshake(transport, password: str | None) -> tuple[int, int, str]:
    """VNC-authenticate (password None: expect security type None, as the gateway offers) and initialise;
    returns the desktop's (width, height, name). RfbRefused when refused."""
    stream = _Stream(transport)
    banner = stream.read(12)
    if not banner.startswith(b"RFB "):
        raise ConnectionError(f"not an RFB server: {banner!r}")
    transport.sendall(VERSION)
    count = stream.read(1)[0]
    if count == 0:
        raise RfbRefused(stream.reason())
    offered = stream.read(count)
    if password is None:
        if list(offered) != [NONE]:
            raise RfbRefused(f"security types {list(offered)} offered, not only None")
        transport.sendall(bytes([NONE]))
    else:
        if VNC_AUTH not in offered:
            raise RfbRefused(f"no VNC authentication offered (security types {list(offered)})")
        transport.sendall(bytes([VNC_AUTH]))
        transport.sendall(vnc_response(password, stream.read(16)))
    if struct.unpack(">I", stream.read(4))[0] != 0:
        raise RfbRefused(stream.reason())
    transport.sendall(b"\x01")                       # ClientInit: shared
    width, height = struct.unpack(">HH", stream.read(4))
    stream.read(16)                                   # pixel format
    return width, height, stream.reason()


class WebSocketTransport:
    """A websocket-client connection as a byte stream (the gateway speaks RFB in binary frames)."""

    def __init__(self, ws):
        self.ws = ws

    def recv(self, _n: int) -> bytes:
        opcode, data = self.ws.recv_data()
        return b"" if opcode == 8 else data   # 8: the server closed the WebSocket

    def sendall(self, data: bytes) -> None:
        self.ws.send_binary(data)
