"""The gateway's own VNC login: it authenticates to the display, and the browser needs no password.

noVNC used to read the display password from the console link's fragment, so a link carried it
(browser history, a pasted chat message). Now the gateway, once a link's token is checked,
speaks RFB's security handshake with the display itself (VNC authentication: DES of the
display's 16-byte challenge, keyed with the password, each byte's bits mirrored), and offers
the browser security type None. From ClientInit on it relays bytes (after one wake key of its own:
gateway.WAKE_KEYS).
"""
from __future__ import annotations

import struct

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

VERSION = b"RFB 003.008\n"
NONE, VNC_AUTH = 1, 2
_OK = struct.pack(">I", 0)


class LoginFailed(Exception):
    """The display refused the gateway (its password changed, or ran out), or spoke no RFB vdesk knows."""


def _mirrored(byte: int) -> int:
    return int(f"{byte:08b}"[::-1], 2)


def response(password: str, challenge: bytes) -> bytes:
    """VNC authentication's answer: DES (TripleDES with the key thrice is single DES) of the challenge."""
    key = bytes(_mirrored(b) for b in password.encode()[:8].ljust(8, b"\0"))
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(challenge) + encryptor.finalize()


def _reason(read) -> str:
    return read(struct.unpack(">I", read(4))[0]).decode(errors="replace")


def log_in(read, send, password: str | None) -> None:
    """Up to and with the display's SecurityResult, as an RFB 3.8 client; read(n) returns exactly n bytes."""
    if not read(12).startswith(b"RFB "):
        raise LoginFailed("the display does not speak RFB")
    send(VERSION)
    count = read(1)[0]
    if count == 0:
        raise LoginFailed(f"the display refused: {_reason(read)}")
    offered = read(count)
    if password and VNC_AUTH in offered:
        send(bytes([VNC_AUTH]))
        send(response(password, read(16)))
    elif NONE in offered and not password:
        send(bytes([NONE]))
    else:
        raise LoginFailed(f"the display offers security types {list(offered)}, not the one vdesk gave it")
    if read(4) != _OK:
        raise LoginFailed(f"the display refused the password: {_reason(read)}")


def admit(read, send) -> None:
    """Up to and with the browser's SecurityResult, as an RFB 3.8 (or 3.7) server offering None only."""
    send(VERSION)
    version = read(12)
    if version not in (VERSION, b"RFB 003.007\n"):
        raise LoginFailed(f"the browser speaks {version!r}, not RFB 3.7 or 3.8")
    send(bytes([1, NONE]))
    if read(1) != bytes([NONE]):
        raise LoginFailed("the browser chose a security type that was not offered")
    if version == VERSION:
        send(_OK)


def refuse(read, send, reason: str) -> None:
    """Tell the browser, in RFB, why there is no session (noVNC shows the reason)."""
    send(VERSION)
    read(12)
    text = reason.encode()
    send(bytes([0]) + struct.pack(">I", len(text)) + text)
