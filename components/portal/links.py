"""Console links from the portal belong to a person: what the grant names, and the check the gateway makes.

The grant (tokens.mint) carries `per` (the person) and `bnd`, the SHA-256 of a random per-session value
that the portal sets as the HttpOnly cookie CONSOLE_COOKIE. A browser that did not sign in as that person
has no such cookie, so a forwarded link is refused. Links from `make console` (administrators) carry no
`bnd` and are not bound.
"""
from __future__ import annotations

from ..console.tokens import CONSOLE_COOKIE, binding_of
from ..console.tokens import refuse_unbound as _refuse_unbound
from .people import Person

__all__ = ["CONSOLE_COOKIE", "link_claims", "refuse_unbound"]


def link_claims(person: Person, stack: str, signed_in_until: float) -> dict:
    """The claims a portal console link adds to its grant: `until`, the sign-in's end, is how long a console
    opened from it stays open (the link itself may be opened for minutes only)."""
    return {"stk": stack, "per": person.user, "bnd": binding_of(person.bind), "until": int(signed_in_until)}


def refuse_unbound(claims: dict, cookie_header: str | None) -> None:
    """Refused when a person's link comes without that person's console cookie (what the gateway checks,
    components/console/tokens.py, for the verified token's claims and the request's Cookie header)."""
    _refuse_unbound(claims.get("bnd"), cookie_header)
