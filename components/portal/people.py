"""Who is signed in: the portal's sessions, kept server-side so signing out ends them, and across a restart.

The browser holds only a signed cookie (Starlette's SessionMiddleware, itsdangerous underneath) naming a
random session id and the session's CSRF token; who the person is and which desktops their password (or their
OpenID Connect identity) proved stay here. With a `path`, the sessions are also written there (0600,
atomically) so that a portal restarted by `up` keeps them: by the SHA-256 of each session id, never the id,
and without the console binding value (a new one is made; links minted before keep working with the cookie
that holds the old one). The file is the server-side list a signed cookie must be on: signing out, ending a
person's sessions or expiry takes a session off it. Administrators' sessions are not kept across a restart:
the role was proven against the policy of the portal that ended (a password, an address, a group claim), and
a restart is what a changed policy brings.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

SESSIONS_FILE = "sessions.json"


@dataclasses.dataclass(frozen=True)
class Person:
    user: str
    desktops: tuple[tuple[str, str], ...]   # (stack, desktop): where their declared password held
    since: float                # UNIX time of the sign-in
    source: str                 # the address they signed in from
    bind: str                   # a random value, held in the console cookie, that their console links name
    email: str | None = None    # signed in with OpenID Connect: the identity's address (user is then that address)
    admin: bool = False         # one of the host's portal administrators (admins.py), as the policy names them


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class Sessions:
    """session id -> Person, each for at most `lifetime_s`; and the console links each session was given,
    so that ending a person's sessions can revoke those links too."""

    def __init__(self, lifetime_s: float, path: Path | None = None, clock=time.time):
        self.lifetime_s, self.path, self.clock = lifetime_s, path, clock
        self._people: dict[str, Person] = {}      # by _key(session id)
        self._links: dict[str, list[tuple[str, str, float]]] = {}     # _key(sid) -> [(desktop, link id, when)]
        self._lock = threading.Lock()
        if path is not None:
            self._load()

    def _load(self) -> None:
        try:
            kept = json.loads(self.path.read_text())
            now = self.clock()
            for key, entry in kept.items():
                person = Person(user=str(entry["user"]), desktops=tuple(tuple(map(str, d)) for d in entry["desktops"]),
                                since=float(entry["since"]), source=str(entry["source"]),
                                bind=secrets.token_urlsafe(32), email=entry.get("email"))
                if now - person.since <= self.lifetime_s:
                    self._people[key] = person
                    self._links[key] = [(str(d), str(link), float(at)) for d, link, at in entry.get("links", [])]
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("portal: %s unreadable (%s); everyone signs in again", self.path.name, exc)
            self._people.clear()
            self._links.clear()
        log.info("portal: %d session(s) kept from before the restart", len(self._people))

    def _save(self) -> None:
        """Write the sessions (called with the lock held); administrators' are not kept (see the docstring)."""
        if self.path is None:
            return
        body = {key: {"user": p.user, "desktops": p.desktops, "since": p.since, "source": p.source,
                      "email": p.email, "links": self._links.get(key, [])}
                for key, p in self._people.items() if not p.admin}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(body, fh)
        tmp.replace(self.path)

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, p in self._people.items() if now - p.since > self.lifetime_s]:
            del self._people[key]
            self._links.pop(key, None)

    def open(self, user: str, desktops, source: str, email: str | None = None, admin: bool = False) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._expire()
            self._people[_key(sid)] = Person(user, tuple(map(tuple, desktops)), self.clock(), source,
                                             secrets.token_urlsafe(32), email, admin)
            self._save()
        return sid

    def gave_link(self, sid: str, desktop: str, link: str) -> None:
        """Remember a console link (its id, never the token) minted for this session."""
        with self._lock:
            if sid and _key(sid) in self._people:
                self._links.setdefault(_key(sid), []).append((desktop, link, self.clock()))
                self._save()

    def links_of(self, sid: str | None) -> list[tuple[str, str]]:
        """The (desktop, link id)s of the console links this session was given."""
        with self._lock:
            return [(desktop, link) for desktop, link, _at in self._links.get(_key(sid), [])] if sid else []

    def signed_in(self) -> list[tuple[Person, list[tuple[str, float]]]]:
        """Everyone signed in now, the longest-signed-in first, each with the (desktop, when) of the console
        links their session was given."""
        with self._lock:
            self._expire()
            return sorted(((p, [(d, at) for d, _link, at in self._links.get(key, [])])
                           for key, p in self._people.items()), key=lambda pair: (pair[0].since, pair[0].user))

    def end_all_of(self, user: str) -> tuple[int, list[tuple[str, str]]]:
        """End every session of `user`: (how many, the (desktop, link id)s of the console links they were given)."""
        with self._lock:
            ended = [key for key, p in self._people.items() if p.user == user]
            links = []
            for key in ended:
                del self._people[key]
                links += [(desktop, link) for desktop, link, _at in self._links.pop(key, [])]
            if ended:
                self._save()
            return len(ended), links

    def get(self, sid: str | None) -> Person | None:
        if not sid:
            return None
        with self._lock:
            key = _key(sid)
            person = self._people.get(key)
            if person is not None and self.clock() - person.since > self.lifetime_s:
                del self._people[key]
                self._links.pop(key, None)
                self._save()
                return None
            return person

    def close(self, sid: str | None) -> Person | None:
        if not sid:
            return None
        with self._lock:
            self._links.pop(_key(sid), None)
            person = self._people.pop(_key(sid), None)
            if person is not None:
                self._save()
            return person
