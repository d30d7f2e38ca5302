"""Console links: an HS256 JWT that names one desktop, the stack it is minted for, and expires, signed with a
per-host key. The gateway serves the link only while the desktop's owner metadata names that same stack, so
a stack cannot mint its way into another stack's desktop on a shared host.

The key is 32 random bytes in a 0600 file of the host's console directory,
created once; it never appears in Pulumi state, outputs or logs. A link holds
no display password: the gateway logs in to the display itself.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
import urllib.parse
from http.cookies import CookieError, SimpleCookie
from pathlib import Path

import jwt

from .settings import MAX_LINK_VALIDITY_S

ISSUER = "vdesk"
AUDIENCE = "vdesk-console"
ALGORITHM = "HS256"
KEY_FILE = "signing.key"
REVOKED_FILE = "revoked.json"        # links revoked before they expire: by id, or every one of a desktop so far
_KEY_BYTES = 32


class Refused(Exception):
    """A console request the gateway turns away; the message names no token."""


@dataclasses.dataclass(frozen=True)
class Grant:
    desktop: str          # the libvirt domain name
    stack: str            # the stack it was minted for ("": a desktop no stack owns)
    expires: float        # UNIX time
    link: str             # the token's own id (jti), for the logs: not the token
    issued: float = 0.0   # UNIX time (iat): a desktop's revocation covers links issued until then
    bound: str | None = None   # a portal link's session binding (bnd): see refuse_unbound
    until: float = 0.0    # UNIX time (until): a portal link's session may stay open until its sign-in ends

    @property
    def session_ends(self) -> float:
        """When an open session of this link is ended: its expiry, or a portal link's `until` (the sign-in's
        end; its 5-minute expiry only bounds when it may be opened), never past MAX_LINK_VALIDITY_S."""
        return max(self.expires, min(self.until, self.issued + MAX_LINK_VALIDITY_S))


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
    try:    # a symlink in its place is refused, not followed: it could name a key someone else knows
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise Refused(f"{path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise Refused(f"{path} is not a vdesk signing key (not a regular file of this user's)")
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)       # an older or hand-made key readable by others: its owner's alone again
        key = f.read()
    if len(key) != _KEY_BYTES:
        raise Refused(f"{path} is not a vdesk signing key")
    return key


def mint(key: bytes, desktop: str, valid_for_s: float, *, stack: str = "", now: float | None = None,
         extra: dict | None = None) -> tuple[str, float]:
    """A token for `stack`'s `desktop`, valid for valid_for_s seconds; returns (token, expiry).

    extra: more claims to sign into it (the portal binds a link to a person and their session); the
    standard ones always win."""
    issued = time.time() if now is None else now
    expires = issued + valid_for_s
    claims = {**(extra or {}), "iss": ISSUER, "aud": AUDIENCE, "sub": desktop, "stk": stack,
              "iat": round(issued, 3), "exp": int(expires), "jti": secrets.token_hex(6)}
    return jwt.encode(claims, key, algorithm=ALGORITHM), int(expires)


def verify(key: bytes, token: str | None, desktop: str | None, revoked: dict | None = None) -> Grant:
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
    until = claims.get("until", 0.0)
    if isinstance(until, bool) or not isinstance(until, (int, float)):
        raise Refused("invalid token (until)")
    grant = Grant(desktop=desktop, stack=str(claims.get("stk") or ""), expires=float(claims["exp"]),
                  link=str(claims["jti"]), issued=float(claims["iat"]), bound=claims.get("bnd"), until=float(until))
    if revoked is not None and is_revoked(revoked, grant):
        raise Refused("revoked link")
    return grant


def refuse_other_stack(grant: Grant, owner_stack: str | None) -> None:
    """Refused unless the desktop belongs to the stack the token was minted for."""
    if (owner_stack or "") != grant.stack:
        raise Refused("a token of another stack")


# A portal link belongs to the person who opened it: its grant carries `bnd`, the SHA-256 of a random
# per-session value the portal set as this HttpOnly cookie (components/portal/links.py). A browser that
# did not sign in as that person has no such cookie, so a forwarded link is refused. Links from
# `make console` (administrators) carry no `bnd` and are not bound.
CONSOLE_COOKIE = "vdesk_console"


def binding_of(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def refuse_unbound(bound: str | None, cookie_header: str | None) -> None:
    """Refused when a bound link comes without its session's console cookie (the request's Cookie header)."""
    if bound is None:
        return
    try:
        jar = SimpleCookie(cookie_header or "")
    except CookieError:
        raise Refused("an unreadable cookie") from None
    held = jar.get(CONSOLE_COOKIE)
    if held is None or not hmac.compare_digest(binding_of(held.value), str(bound)):
        raise Refused("a link of another person's session")


def link_id(token: str) -> str:
    """The id (jti) of a token this host minted: what the gateway's log and `--revoke` name."""
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


def revocations(console_dir: Path) -> dict:
    """What has been revoked on this host: {"links": {id: expiry}, "desktops": {name: revoked-before time}}."""
    try:
        data = json.loads((Path(console_dir) / REVOKED_FILE).read_text())
    except FileNotFoundError:
        return {"links": {}, "desktops": {}}
    except (OSError, ValueError) as exc:
        raise Refused(f"the revocation list is unreadable ({exc.__class__.__name__})") from None  # refuse all
    return {"links": dict(data.get("links") or {}), "desktops": dict(data.get("desktops") or {})}


def is_revoked(revoked: dict, grant: Grant) -> bool:
    return grant.link in revoked["links"] or grant.issued <= float(revoked["desktops"].get(grant.desktop, -1))


def revoke(console_dir: Path, desktop: str, link: str | None = None, *, now: float | None = None) -> None:
    """Revoke one link (by its id, as the gateway's log names it), or every link of `desktop` made so far.
    The gateway refuses them from the next connection on, and ends their open sessions within a second."""
    now = time.time() if now is None else now
    data = revocations(console_dir)
    if link:
        data["links"][link] = now + MAX_LINK_VALIDITY_S     # kept past any expiry the link may have
    else:
        data["desktops"][desktop] = round(now, 3)
    data["links"] = {k: v for k, v in data["links"].items() if v > now}     # ids past any expiry: forgotten
    path = Path(console_dir) / REVOKED_FILE
    tmp = path.with_name(f".{REVOKED_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    os.replace(tmp, path)


RESIZE_MODES = ("scale", "remote")   # noVNC's: fit the picture to the window, or ask the display to take its size


def console_url(base: str, desktop: str, token: str, resize: str = "scale") -> str:
    """noVNC's page; what it needs is in the fragment, read by the page and never sent in a request. No
    password: the gateway logs in to the display itself (vncauth.py)."""
    if resize not in RESIZE_MODES:
        raise ValueError(f"not a noVNC resize mode: {resize!r}")
    path = "websockify?" + urllib.parse.urlencode({"desktop": desktop, "token": token})
    fragment = {"autoconnect": "1", "reconnect": "0", "resize": resize, "path": path}
    return f"{base.rstrip('/')}/vnc.html#" + urllib.parse.urlencode(fragment, quote_via=urllib.parse.quote)
