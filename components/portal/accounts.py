"""Who may sign in to a host's portal, and which desktops are theirs: one record per stack, hashes only.

`up` publishes, for its stack, the desktops it made and their users' password hashes (the same "$6$" crypt
hashes the seeds carry) into `<portal dir>/accounts/<stack>.json`: a 0600 file in a 0700 directory of the
host's state dir, which only the runner (root) reads. A plaintext password is refused, never written.
A record only ever counts for desktops whose libvirt owner metadata names the same stack (see
inventory.owned_by), so a stack cannot publish users for another stack's desktops.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Iterable, Mapping

from passlib.hash import sha512_crypt

from ..cloudinit.passwords import verify_password
from ..names import name_problem

log = logging.getLogger(__name__)

ACCOUNTS_DIR = "accounts"


class AccountError(ValueError):
    """A record that would break the portal's rules (a plaintext password, a bad name)."""


@dataclasses.dataclass(frozen=True)
class StackAccounts:
    """What one stack says of its desktops: desktop -> its users, and user -> password hash."""

    stack: str
    desktops: Mapping[str, tuple[str, ...]]
    hashes: Mapping[str, str]

    def desktops_of(self, user: str) -> list[str]:
        return sorted(d for d, users in self.desktops.items() if user in users)


def _check(stack: str, desktops: Mapping[str, Iterable[str]], hashes: Mapping[str, str]) -> None:
    if name_problem(stack.replace("_", "-").lower()):
        raise AccountError(f"not a stack name: {stack!r}")
    for user, crypt in hashes.items():
        if not isinstance(crypt, str) or not sha512_crypt.identify(crypt):
            raise AccountError(f"user {user!r}: only a $6$ crypt hash is kept, never a password")
    for desktop, users in desktops.items():
        if not isinstance(desktop, str) or not desktop or "/" in desktop:
            raise AccountError(f"not a desktop name: {desktop!r}")
        if isinstance(users, str):
            raise AccountError(f"desktop {desktop!r}: its users are a list, not {users!r}")


def publish(portal_dir: Path, stack: str, desktops: Mapping[str, Iterable[str]],
            hashes: Mapping[str, str]) -> Path:
    """Write (atomically, 0600) what `stack` says of its desktops and its users' password hashes."""
    _check(stack, desktops, hashes)
    folder = Path(portal_dir) / ACCOUNTS_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    body = {"stack": stack, "desktops": {d: sorted(set(u)) for d, u in sorted(desktops.items())},
            "hashes": dict(sorted(hashes.items()))}
    path = folder / f"{stack}.json"
    tmp = folder / f".{stack}.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh, indent=2)
        fh.write("\n")
    tmp.replace(path)
    log.info("portal accounts of stack %s: %d desktop(s), %d user(s) with a password", stack, len(desktops),
             len(hashes))
    return path


def withdraw(portal_dir: Path, stack: str) -> None:
    """Forget a stack's record (its desktops are gone); nothing to do when there is none."""
    (Path(portal_dir) / ACCOUNTS_DIR / f"{stack}.json").unlink(missing_ok=True)


def load(portal_dir: Path) -> list[StackAccounts]:
    """Every stack's record; one that is unreadable, misnamed or holds anything but hashes is skipped, logged."""
    found = []
    for path in sorted((Path(portal_dir) / ACCOUNTS_DIR).glob("*.json")):
        try:
            body = json.loads(path.read_text())
            record = StackAccounts(stack=str(body["stack"]),
                                   desktops={str(d): tuple(map(str, u)) for d, u in body["desktops"].items()},
                                   hashes={str(u): h for u, h in body["hashes"].items()})
            if record.stack != path.stem:
                raise AccountError(f"names stack {record.stack!r}")
            _check(record.stack, record.desktops, record.hashes)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("portal: skipping %s (%s)", path, exc)
            continue
        found.append(record)
    return found


def verify(records: Iterable[StackAccounts], user: str, password: str) -> list[str]:
    """The stacks whose record holds this user with this password; empty: the sign-in fails."""
    return sorted(r.stack for r in records if user in r.hashes and verify_password(password, r.hashes[user]))
