"""Who is signed in: the portal's sessions, kept server-side so signing out (or a restart) ends them.

The browser holds only a signed cookie (Starlette's SessionMiddleware, itsdangerous underneath) naming a
random session id and the session's CSRF token; who the person is and which desktops their password (or their
OpenID Connect identity) proved stay here.
"""
from __future__ import annotations

import dataclasses
import secrets
import threading
import time


@dataclasses.dataclass(frozen=True)
class Person:
    user: str
    desktops: tuple[tuple[str, str], ...]   # (stack, desktop): where their declared password held
    since: float                # UNIX time of the sign-in
    source: str                 # the address they signed in from
    bind: str                   # a random value, held in the console cookie, that their console links name
    email: str | None = None    # signed in with OpenID Connect: the identity's address (user is then that address)


class Sessions:
    """session id -> Person, each for at most `lifetime_s`."""

    def __init__(self, lifetime_s: float, clock=time.time):
        self.lifetime_s, self.clock = lifetime_s, clock
        self._people: dict[str, Person] = {}
        self._lock = threading.Lock()

    def open(self, user: str, desktops, source: str, email: str | None = None) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._people[sid] = Person(user, tuple(map(tuple, desktops)), self.clock(), source,
                                       secrets.token_urlsafe(32), email)
        return sid

    def get(self, sid: str | None) -> Person | None:
        if not sid:
            return None
        with self._lock:
            person = self._people.get(sid)
            if person is not None and self.clock() - person.since > self.lifetime_s:
                del self._people[sid]
                return None
            return person

    def close(self, sid: str | None) -> Person | None:
        with self._lock:
            return self._people.pop(sid, None) if sid else None
