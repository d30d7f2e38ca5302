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
    admin: bool = False         # one of the host's portal administrators (admins.py), as the policy names them


class Sessions:
    """session id -> Person, each for at most `lifetime_s`; and the console links each session was given,
    so that ending a person's sessions can revoke those links too."""

    def __init__(self, lifetime_s: float, clock=time.time):
        self.lifetime_s, self.clock = lifetime_s, clock
        self._people: dict[str, Person] = {}
        self._links: dict[str, list[tuple[str, str, float]]] = {}     # sid -> [(desktop, link id, when)]
        self._lock = threading.Lock()

    def open(self, user: str, desktops, source: str, email: str | None = None, admin: bool = False) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._people[sid] = Person(user, tuple(map(tuple, desktops)), self.clock(), source,
                                       secrets.token_urlsafe(32), email, admin)
        return sid

    def gave_link(self, sid: str, desktop: str, link: str) -> None:
        """Remember a console link (its id, never the token) minted for this session."""
        with self._lock:
            if sid in self._people:
                self._links.setdefault(sid, []).append((desktop, link, self.clock()))

    def signed_in(self) -> list[tuple[Person, list[tuple[str, float]]]]:
        """Everyone signed in now, the longest-signed-in first, each with the (desktop, when) of the console
        links their session was given."""
        with self._lock:
            now = self.clock()
            for sid in [s for s, p in self._people.items() if now - p.since > self.lifetime_s]:
                del self._people[sid]
                self._links.pop(sid, None)
            return sorted(((p, [(d, at) for d, _link, at in self._links.get(sid, [])])
                           for sid, p in self._people.items()), key=lambda pair: (pair[0].since, pair[0].user))

    def end_all_of(self, user: str) -> tuple[int, list[tuple[str, str]]]:
        """End every session of `user`: (how many, the (desktop, link id)s of the console links they were given)."""
        with self._lock:
            ended = [sid for sid, p in self._people.items() if p.user == user]
            links = []
            for sid in ended:
                del self._people[sid]
                links += [(desktop, link) for desktop, link, _at in self._links.pop(sid, [])]
            return len(ended), links

    def get(self, sid: str | None) -> Person | None:
        if not sid:
            return None
        with self._lock:
            person = self._people.get(sid)
            if person is not None and self.clock() - person.since > self.lifetime_s:
                del self._people[sid]
                self._links.pop(sid, None)
                return None
            return person

    def close(self, sid: str | None) -> Person | None:
        with self._lock:
            self._links.pop(sid, None)
            return self._people.pop(sid, None) if sid else None
