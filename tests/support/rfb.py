"""A tiny RFB (VNC) client for tests: the handshake and VNC authentication, nothing more.

Enough to prove which password a display accepts, over a unix socket, TCP or
the console gateway's WebSocket. VNC authentication is DES over a 16-byte
challenge with the password (at most 8 bytes, each byte's bits mirrored) as
key; cryptography's TripleDES with the key three times is single DES.
"""
from __future__ import annotations

import struct

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

VERSION = b"RFB 003.008\n"
VNC_AUTH = 2


class RfbRefused(Exception):
    """The server turned the client away (wrong or expired password), with its reason."""


def _mirrored(byte: int) -> int:
    return int(f"{byte:08b}"[::-1], 2)


def vnc_response(password: str, challenge: bytes) -> bytes:
    key = bytes(_mirrored(b) for b in password.encode()[:8].ljust(8, b"\0"))
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(challenge) + encryptor.finalize()


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


def handshake(transport, password: str) -> tuple[int, int, str]:
    """VNC-authenticate and initialise; returns the desktop's (width, height, name). RfbRefused when refused."""
    stream = _Stream(transport)
    banner = stream.read(12)
    if not banner.startswith(b"RFB "):
        raise ConnectionError(f"not an RFB server: {banner!r}")
    transport.sendall(VERSION)
    count = stream.read(1)[0]
    if count == 0:
        raise RfbRefused(stream.reason())
    offered = stream.read(count)
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
