"""SHA-512 crypt ($6$) hashes, so guest passwords reach cloud-init only as hashes, never as plaintext.

The hashing is libpass's (the maintained passlib fork). `$6$` is what Debian 12's
shadow and cloud-init accept everywhere; the salt can be fixed by the caller, so
the same password gives the same hash (and the same seed) from one `up` to the next.
"""
from __future__ import annotations

import secrets

from passlib.hash import sha512_crypt

ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"   # crypt's salt alphabet
SALT_LENGTH = 16          # the most the scheme uses
ROUNDS = 100_000          # what hash_password uses (about 0.1 s)
MIN_ROUNDS = 1000
MAX_ROUNDS = 999_999_999


def hash_password(secret: str, *, salt: str | None = None, rounds: int = ROUNDS) -> str:
    """Return the SHA-512 crypt hash ("$6$rounds=...$salt$...") of ``secret``.

    A fresh random salt is drawn unless ``salt`` is given; a caller that must
    not drift (a Pulumi provider) derives it from something stable.
    """
    if not isinstance(secret, str):
        raise TypeError("secret must be a str")
    if "\0" in secret:
        raise ValueError("secret must not contain NUL characters")
    if salt is None:
        salt = "".join(secrets.choice(ITOA64) for _ in range(SALT_LENGTH))
    if not salt or any(c not in ITOA64 for c in salt):
        raise ValueError("salt must be made of the characters ./0-9A-Za-z")
    if not MIN_ROUNDS <= rounds <= MAX_ROUNDS:
        raise ValueError(f"rounds must be within {MIN_ROUNDS}..{MAX_ROUNDS}")
    return sha512_crypt.using(salt=salt[:SALT_LENGTH], rounds=rounds).hash(secret)


def verify_password(secret: str, crypt_hash: str) -> bool:
    """True if ``crypt_hash`` (a "$6$" hash) was made from ``secret``."""
    try:
        return sha512_crypt.verify(secret, crypt_hash)
    except ValueError:        # not a $6$ hash at all
        return False
