"""One-time sign-in links: how a person whose stack declares no password gets into the portal.

`make up` (and `make access`) mints one for each desktop user who has no password (the `dev` stack's
person) and prints it: `<portal>/signin/link#<token>`. The token is a random 256-bit value; the portal
keeps only its SHA-256 (a file named by it in `<portal dir>/signin-links/`, 0600 in a 0700 directory), so
the printed line is the only place the token is. It is in the URL's fragment, which a browser never
sends: the page's script posts it with the form's CSRF token, and takes it out of the address bar and
its history. A link signs in once (its file is removed by the one redemption that wins), within
VALID_S, and only while the desktop's record still lists the user; a newer link of the same person and
desktop replaces an older one.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import secrets
import time
from pathlib import Path

from . import accounts

log = logging.getLogger(__name__)

LINKS_DIR = "signin-links"
VALID_S = 15 * 60                 # long enough to open it after `make up` finishes, short if it is copied
PATH = "/signin/link"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")     # secrets.token_urlsafe(32)


@dataclasses.dataclass(frozen=True)
class Grant:
    """What a link signs in to: one person's one desktop."""

    stack: str
    desktop: str
    user: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _dir(portal_dir: Path) -> Path:
    folder = Path(portal_dir) / LINKS_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    return folder


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def mint(portal_dir: Path, grant: Grant, *, valid_s: int = VALID_S, clock=time.time) -> str:
    """A new link's token for `grant` (returned once, kept nowhere); the person's older links of it end."""
    folder = _dir(portal_dir)
    now = clock()
    for path in folder.glob("*.json"):                 # expired links, and this person's older one
        body = _read(path)
        if body is None or body.get("expires", 0) <= now or \
                (body.get("stack"), body.get("desktop"), body.get("user")) == dataclasses.astuple(grant):
            path.unlink(missing_ok=True)
    token = secrets.token_urlsafe(32)
    path = folder / f"{_digest(token)}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({**dataclasses.asdict(grant), "expires": now + valid_s}, fh)
    log.info("portal: a one-time sign-in link for %s of %s/%s, valid for %ds", grant.user, grant.stack,
             grant.desktop, valid_s)
    return token


class LinkRefused(Exception):
    """The link signs no one in; the message says why (for the log), and holds nothing of the token."""


def redeem(portal_dir: Path, token: str, *, clock=time.time) -> Grant:
    """The link's grant, once; LinkRefused when it is unknown or used, expired, or its user is no longer the
    desktop's."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise LinkRefused("not a sign-in link")
    path = _dir(portal_dir) / f"{_digest(token)}.json"
    body = _read(path)
    try:
        if body is None:
            raise FileNotFoundError
        path.unlink()                 # whoever removes it redeems it: a second use finds nothing
    except FileNotFoundError:
        raise LinkRefused("an unknown or used link") from None
    if body.get("expires", 0) <= clock():
        raise LinkRefused("an expired link")
    grant = Grant(str(body.get("stack")), str(body.get("desktop")), str(body.get("user")))
    if not any((r.stack, r.desktop) == (grant.stack, grant.desktop) and grant.user in r.users
               for r in accounts.load(portal_dir)):
        raise LinkRefused("a link for a user the desktop's stack no longer lists")
    return grant


def without_password(portal_dir: Path, stack: str, desktop: str, user: str) -> bool:
    """Whether the desktop's record lists `user` with no password: who gets a link."""
    return any((r.stack, r.desktop) == (stack, desktop) and user in r.users and user not in r.hashes
               for r in accounts.load(portal_dir))


def link_for(portal_dir: Path, portal_url: str, stack: str, desktop: str, user: str) -> str | None:
    """A new one-time sign-in link for a user whose stack declares no password, else None."""
    if not without_password(portal_dir, stack, desktop, user):
        return None
    return f"{portal_url}{PATH}#{mint(portal_dir, Grant(stack, desktop, user))}"
