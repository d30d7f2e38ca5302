"""Who administers a host's portal: named by the host's policy (`portal_admins`), never by a stack.

An entry is either an address, which an OpenID Connect sign-in proves (the provider's `email` claim, not a
stack's mapping), or a local administrator with a password hash of the policy's own:

    portal_admins:
      - ops@example.org
      - {user: hostadmin, password_hash: "$6$..."}     # mkpasswd -m sha-512

A stack publishes users and password hashes too (accounts.py), so a bare user name would let any stack
declare that user with a password of its choosing: a local administrator signs in with the policy's hash
only.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Iterable

from passlib.hash import sha512_crypt

from ..cloudinit.passwords import verify_password
from .accounts import stand_in_hash

_ENTRY_KEYS = {"user", "password_hash"}
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")     # as the portal's sign-in form takes it


@dataclasses.dataclass(frozen=True)
class Admins:
    emails: tuple[str, ...] = ()          # identities an OpenID Connect sign-in proves
    hashes: tuple[tuple[str, str], ...] = ()    # (user, $6$ hash): local administrators

    def __post_init__(self):             # as read back from settings.json (lists)
        object.__setattr__(self, "emails", tuple(self.emails))
        object.__setattr__(self, "hashes", tuple(tuple(pair) for pair in self.hashes))

    def by_email(self, email: str | None) -> bool:
        return bool(email) and any(email.casefold() == e.casefold() for e in self.emails)

    def by_password(self, user: str, password: str) -> bool:
        """Whether `user` is a local administrator and `password` is the policy's for them. A name that is
        no administrator's costs a hash check too, so the reply time does not tell the names."""
        theirs = [h for u, h in self.hashes if u == user]
        if not theirs:
            verify_password(password, stand_in_hash())
        return any(verify_password(password, h) for h in theirs)

    @classmethod
    def of(cls, value: "Admins | dict | None") -> "Admins":
        return cls(**value) if isinstance(value, dict) else (value or cls())


def problems(entries, where: str) -> list[tuple[str, str]]:
    """What is wrong with a policy's `portal_admins` list, each with its path (portal_admins[1].user)."""
    if not isinstance(entries, list):
        return [(where, "must be a list of addresses and {user, password_hash} entries")]
    found = []
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        if isinstance(entry, str):
            if entry.count("@") != 1 or any(c.isspace() for c in entry) or len(entry) > 320:
                found.append((at, f"{entry!r} is not an email address (a local administrator is "
                                  "{user, password_hash})"))
        elif isinstance(entry, dict) and set(entry) == _ENTRY_KEYS:
            user, crypt = entry["user"], entry["password_hash"]
            if not isinstance(user, str) or not _USER_NAME.fullmatch(user):
                found.append((f"{at}.user", "must be a user name"))
            if not isinstance(crypt, str) or not sha512_crypt.identify(crypt):
                found.append((f"{at}.password_hash", "must be a $6$ crypt hash (mkpasswd -m sha-512), never a "
                                                     "password"))
        else:
            found.append((at, "must be an address or {user, password_hash}"))
    return found


def from_policy(entries: Iterable) -> Admins:
    """The Admins of a `portal_admins` list that problems() passed."""
    entries = list(entries or [])
    return Admins(emails=tuple(e for e in entries if isinstance(e, str)),
                  hashes=tuple((e["user"], e["password_hash"]) for e in entries if isinstance(e, dict)))
