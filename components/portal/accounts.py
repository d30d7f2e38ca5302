"""Who may sign in to a host's portal, and to which desktops: one record per desktop, hashes only.

`up` publishes, for each desktop a stack makes, its users and their password hashes (the same "$6$" crypt
hashes its seed carries) into `<portal dir>/accounts/<stack>/<desktop>.json`: a 0600 file in 0700
directories of the host's state dir, which only the runner (root) reads. A plaintext password is refused,
never written. Beside them, the users' declared `email`s: an OpenID Connect sign-in with that address
proves the user's desktops of that record (by_email). And the users' groups: the host's quotas
(components/lifecycle/quotas.py) learn here whom a desktop is for. A record only counts while the desktop's libvirt
owner metadata names the record's stack (see inventory), so a stack cannot publish users, or map an
address, for another stack's desktops.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Iterable, Mapping

from passlib.hash import sha512_crypt

from ..cloudinit.passwords import hash_password, verify_password
from ..names import name_problem

log = logging.getLogger(__name__)

ACCOUNTS_DIR = "accounts"


class AccountError(ValueError):
    """A record that would break the portal's rules (a plaintext password, a bad name)."""


@dataclasses.dataclass(frozen=True)
class DesktopAccounts:
    """What a stack says of one of its desktops: its users, and their password hashes."""

    stack: str
    desktop: str
    users: tuple[str, ...]
    hashes: Mapping[str, str]
    emails: Mapping[str, str] = dataclasses.field(default_factory=dict)   # user -> their identity's address
    groups: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)   # user -> their groups


def portal_dir_of(console_dir: str | Path) -> Path:
    """The host's portal dir, beside its console gateway's (both in the host's state dir)."""
    return Path(console_dir).parent / "portal"


def _check(stack: str, desktop: str, users: Iterable[str], hashes: Mapping[str, str],
           emails: Mapping[str, str] | None = None, groups: Mapping[str, Iterable[str]] | None = None) -> None:
    for what, name in (("stack", stack), ("desktop", desktop)):
        if not isinstance(name, str) or name_problem(name.replace("_", "-").lower()):
            raise AccountError(f"not a {what} name: {name!r}")
    if isinstance(users, str):
        raise AccountError(f"desktop {desktop!r}: its users are a list, not {users!r}")
    for user, crypt in hashes.items():
        if not isinstance(crypt, str) or not sha512_crypt.identify(crypt):
            raise AccountError(f"user {user!r}: only a $6$ crypt hash is kept, never a password")
    for user, email in (emails or {}).items():
        if not isinstance(email, str) or email.count("@") != 1 or any(c.isspace() for c in email):
            raise AccountError(f"user {user!r}: {email!r} is not an email address")
    for user, theirs in (groups or {}).items():
        if isinstance(theirs, str) or not all(isinstance(g, str) and g for g in theirs):
            raise AccountError(f"user {user!r}: their groups are a list of names, not {theirs!r}")


def _path(portal_dir: Path, stack: str, desktop: str) -> Path:
    return Path(portal_dir) / ACCOUNTS_DIR / stack / f"{desktop}.json"


def declared(stack: str, desktop: str, users: Iterable[str], hashes: Mapping[str, str],
             emails: Mapping[str, str] | None = None,
             groups: Mapping[str, Iterable[str]] | None = None) -> DesktopAccounts:
    """The record a declaration makes, as publish writes it: users sorted once each, hashes, addresses and
    groups (sorted once each) of those users only, so a declaration compares equal to the file it wrote."""
    users = tuple(sorted(set(users)))
    return DesktopAccounts(stack=stack, desktop=desktop, users=users,
                           hashes={u: h for u, h in sorted(hashes.items()) if u in users},
                           emails={u: e for u, e in sorted((emails or {}).items()) if u in users and e},
                           groups={u: tuple(sorted(set(g))) for u, g in sorted((groups or {}).items())
                                   if u in users and g})


def publish(portal_dir: Path, stack: str, desktop: str, users: Iterable[str], hashes: Mapping[str, str],
            emails: Mapping[str, str] | None = None, groups: Mapping[str, Iterable[str]] | None = None) -> Path:
    """Write (atomically, 0600) a desktop's users, their password hashes, addresses and groups, as its stack
    declares them."""
    _check(stack, desktop, (), {}, None, groups)
    record = declared(stack, desktop, users, hashes, emails, groups)
    _check(stack, desktop, record.users, hashes, record.emails)    # a password is refused, not dropped
    path = _path(portal_dir, stack, desktop)
    for folder in (path.parent.parent, path.parent):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
    body = {"stack": stack, "desktop": desktop, "users": list(record.users), "hashes": dict(record.hashes),
            "emails": dict(record.emails), "groups": {u: list(g) for u, g in record.groups.items()}}
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh, indent=2)
        fh.write("\n")
    tmp.replace(path)
    log.info("portal: desktop %s of stack %s: %d user(s), %d with a password, %d with an email, %d in a group",
             desktop, stack, len(record.users), len(record.hashes), len(record.emails), len(record.groups))
    return path


def withdraw(portal_dir: Path, stack: str, desktop: str) -> None:
    """Forget a desktop's record (it is gone); nothing to do when there is none."""
    _check(stack, desktop, (), {})
    _path(portal_dir, stack, desktop).unlink(missing_ok=True)


def load(portal_dir: Path) -> list[DesktopAccounts]:
    """Every desktop's record; one that is unreadable, misplaced or holds anything but hashes is skipped, logged."""
    found = []
    for path in sorted((Path(portal_dir) / ACCOUNTS_DIR).glob("*/*.json")):
        record = _parsed(path)
        if record is not None:
            found.append(record)
    return found


def recorded(portal_dir: Path, stack: str, desktop: str) -> DesktopAccounts | None:
    """What the portal holds for one desktop: None when it has no file; a file the portal would skip holds
    nobody (no user may sign in with it), so it differs from any declaration with users."""
    _check(stack, desktop, (), {})
    path = _path(portal_dir, stack, desktop)
    if not path.exists():
        return None
    return _parsed(path) or DesktopAccounts(stack=stack, desktop=desktop, users=(), hashes={}, emails={}, groups={})


def _parsed(path: Path) -> DesktopAccounts | None:
    """One record file, as the portal reads it; None (logged) when it is unreadable, misplaced or holds
    anything but hashes."""
    try:
        body = json.loads(path.read_text())
        record = DesktopAccounts(stack=str(body["stack"]), desktop=str(body["desktop"]),
                                 users=tuple(map(str, body["users"])),
                                 hashes={str(u): h for u, h in body["hashes"].items()},
                                 emails={str(u): e for u, e in body.get("emails", {}).items()},
                                 groups={str(u): g for u, g in body.get("groups", {}).items()})
        if (record.stack, record.desktop) != (path.parent.name, path.stem):
            raise AccountError(f"names {record.stack}/{record.desktop}")
        _check(record.stack, record.desktop, record.users, record.hashes, record.emails, record.groups)
        record = dataclasses.replace(record, groups={u: tuple(g) for u, g in record.groups.items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("portal: skipping %s (%s)", path, exc)
        return None
    return record


@functools.lru_cache(maxsize=1)
def stand_in_hash() -> str:
    """A hash at the seeds' cost, checked when nobody of that name exists, so the reply time tells nothing."""
    return hash_password(secrets.token_urlsafe(16))


def verify(records: Iterable[DesktopAccounts], user: str, password: str) -> list[tuple[str, str]]:
    """(stack, desktop) of every record that holds this user with this password; empty: the sign-in fails.

    Each desktop's hash has its own salt, so each is checked; a person's desktops are the ones they proved."""
    theirs = [r for r in records if user in r.users and user in r.hashes]
    if not theirs:
        verify_password(password, stand_in_hash())
    return sorted((r.stack, r.desktop) for r in theirs if verify_password(password, r.hashes[user]))


def _same_address(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


def users_by_email(record: DesktopAccounts, email: str) -> list[str]:
    """The record's users whose declared address is `email` (compared without case)."""
    return sorted(u for u in record.users if _same_address(record.emails.get(u, ""), email))


def by_email(records: Iterable[DesktopAccounts], email: str) -> list[tuple[str, str]]:
    """(stack, desktop) of every record that maps this address to one of its users: what an OpenID Connect
    sign-in with this `email` claim proves. Only the record's own desktop, which inventory still checks
    its stack owns; an empty or odd address proves nothing."""
    if not isinstance(email, str) or email.count("@") != 1:
        return []
    return sorted((r.stack, r.desktop) for r in records if users_by_email(r, email))
