"""Console links from the portal belong to a person: what the grant names, and the check the gateway makes.

The grant (tokens.mint) carries `per` (the person) and `bnd`, the SHA-256 of a random per-session value
that the portal sets as the HttpOnly cookie CONSOLE_COOKIE. A browser that did not sign in as that person
has no such cookie, so a forwarded link is refused. Links from `make console` (administrators) carry no
`bnd` and are not bound.
"""
from __future__ import annotations

import hashlib
import hmac
from http.cookies import CookieError, SimpleCookie

from ..console.tokens import Refused
from .people import Person

CONSOLE_COOKIE = "vdesk_console"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def link_claims(person: Person, stack: str) -> dict:
    """The claims a portal console link adds to its grant."""
    return {"stk": stack, "per": person.user, "bnd": _digest(person.bind)}


def refuse_unbound(claims: dict, cookie_header: str | None) -> None:
    """Refused when a person's link comes without that person's console cookie (for the gateway to call
    with the verified token's claims and the WebSocket request's Cookie header)."""
    bound = claims.get("bnd")
    if bound is None:
        return
    try:
        jar = SimpleCookie(cookie_header or "")
    except CookieError:
        raise Refused("an unreadable cookie") from None
    held = jar.get(CONSOLE_COOKIE)
    if held is None or not hmac.compare_digest(_digest(held.value), str(bound)):
        raise Refused("a link of another person's session")
