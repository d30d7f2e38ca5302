"""Console links: an HS256 JWT that names one desktop and expires, signed with a per-host key.

The key is 32 random bytes in a 0600 file of the host's console directory,
created once; it never appears in Pulumi state, outputs or logs. A link's
VNC password travels in the URL fragment, which browsers never send to a
server, so the gateway only ever sees the token.
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import time
import urllib.parse
from pathlib import Path

import jwt

ISSUER = "vdesk"
AUDIENCE = "vdesk-console"
ALGORITHM = "HS256"
KEY_FILE = "signing.key"
_KEY_BYTES = 32


class Refused(Exception):
    """A console request the gateway turns away; the message names no token."""


@dataclasses.dataclass(frozen=True)
class Grant:
    desktop: str          # the libvirt domain name
    expires: float        # UNIX time
    link: str             # the token's own id (jti), for the logs: not the token


def signing_key(console_dir: Path, *, create: bool = False) -> bytes:
    """The host's signing key; created (0600, exclusively) when asked and missing."""
    path = Path(console_dir) / KEY_FILE
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass   # made meanwhile by another process
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(_KEY_BYTES))
    key = path.read_bytes()
    if len(key) != _KEY_BYTES:
        raise Refused(f"{path} is not a vdesk signing key")
    return key


def mint(key: bytes, desktop: str, valid_for_s: float, *, now: float | None = None,
         extra: dict | None = None) -> tuple[str, float]:
    """A token for `desktop`, valid for valid_for_s seconds; returns (token, expiry).

    extra: more claims to sign into it (the portal binds a link to a person and their session); the
    standard ones always win."""
    issued = time.time() if now is None else now
    expires = issued + valid_for_s
    claims = {**(extra or {}), "iss": ISSUER, "aud": AUDIENCE, "sub": desktop, "iat": int(issued), "exp": int(expires),
              "jti": secrets.token_hex(6)}
    return jwt.encode(claims, key, algorithm=ALGORITHM), int(expires)


def verify(key: bytes, token: str | None, desktop: str | None) -> Grant:
    """The grant a token gives for `desktop`; Refused when it is missing, forged, expired or another's."""
    if not token:
        raise Refused("no token")
    if not desktop:
        raise Refused("no desktop named")
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                            options={"require": ["exp", "iat", "sub", "jti"]})
    except jwt.ExpiredSignatureError:
        raise Refused("expired token") from None
    except jwt.InvalidTokenError as exc:
        raise Refused(f"invalid token ({type(exc).__name__})") from None
    if claims["sub"] != desktop:
        raise Refused("a token for another desktop")
    return Grant(desktop=desktop, expires=float(claims["exp"]), link=str(claims["jti"]))


def console_url(base: str, desktop: str, token: str, password: str | None) -> str:
    """noVNC's page; everything it needs is in the fragment, read by the page and never sent in a request."""
    path = "websockify?" + urllib.parse.urlencode({"desktop": desktop, "token": token})
    fragment = {"autoconnect": "1", "reconnect": "0", "resize": "scale", "path": path}
    if password:
        fragment["password"] = password
    return f"{base.rstrip('/')}/vnc.html#" + urllib.parse.urlencode(fragment, quote_via=urllib.parse.quote)
