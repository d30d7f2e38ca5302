"""SHA-512 crypt ($6$) hashes, so guest passwords reach cloud-init only as hashes, never as plaintext.

Pure Python (the stdlib ``crypt`` module is gone in Python 3.13); follows
Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512" specification, which
is what glibc and libxcrypt implement for ``$6$``.
"""

import hashlib
import hmac
import re
import secrets

PREFIX = "$6$"
ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SALT_LENGTH = 16  # the maximum the scheme uses
DEFAULT_ROUNDS = 5000  # the scheme's implicit default: no "rounds=" field
ROUNDS = 100_000  # what hash_password uses; costs ~0.1 s in pure Python
MIN_ROUNDS = 1000
MAX_ROUNDS = 999_999_999
# Byte triples of the final digest, in the order the spec encodes them.
ENCODE_ORDER = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4),
    (47, 5, 26), (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51),
    (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13), (56, 14, 35),
    (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19),
    (62, 20, 41),
)
HASH_RE = re.compile(
    r"^\$6\$(?:rounds=(?P<rounds>[0-9]+)\$)?(?P<salt>[^$]{0,16})[^$]*\$(?P<hash>[./0-9A-Za-z]{86})$"
)


def hash_password(secret: str, *, salt: str | None = None, rounds: int = ROUNDS) -> str:
    """Return the SHA-512 crypt hash ("$6$...") of ``secret``.

    A fresh random salt is drawn unless ``salt`` is given; a caller that must
    not drift (a Pulumi provider) keeps the previous hash while
    ``verify_password`` still accepts it.
    """
    if not isinstance(secret, str):
        raise TypeError("secret must be a str")
    if "\0" in secret:
        raise ValueError("secret must not contain NUL characters")
    if salt is None:
        salt = "".join(secrets.choice(ITOA64) for _ in range(SALT_LENGTH))
    if "$" in salt or "\n" in salt:
        raise ValueError("salt must not contain '$' or newlines")
    if not MIN_ROUNDS <= rounds <= MAX_ROUNDS:
        raise ValueError(f"rounds must be within {MIN_ROUNDS}..{MAX_ROUNDS}")
    salt = salt[:SALT_LENGTH]
    digest = _sha512_crypt(secret.encode("utf-8"), salt.encode("utf-8"), rounds)
    setting = PREFIX if rounds == DEFAULT_ROUNDS else f"{PREFIX}rounds={rounds}$"
    return f"{setting}{salt}${_encode(digest)}"


def verify_password(secret: str, crypt_hash: str) -> bool:
    """True if ``crypt_hash`` (a "$6$" hash) was made from ``secret``."""
    match = HASH_RE.match(crypt_hash)
    if not match:
        return False
    rounds = int(match["rounds"]) if match["rounds"] else DEFAULT_ROUNDS
    rounds = min(max(rounds, MIN_ROUNDS), MAX_ROUNDS)
    expected = _encode(
        _sha512_crypt(secret.encode("utf-8"), match["salt"].encode("utf-8"), rounds)
    )
    return hmac.compare_digest(expected, match["hash"])


def _sha512(*parts: bytes) -> bytes:
    digest = hashlib.sha512()
    for part in parts:
        digest.update(part)
    return digest.digest()


def _repeat(block: bytes, length: int) -> bytes:
    """``block`` repeated and cut to exactly ``length`` bytes."""
    return (block * (length // len(block) + 1))[:length]


def _sha512_crypt(password: bytes, salt: bytes, rounds: int) -> bytes:
    """The 64-byte digest of the SHA-512 crypt scheme (steps 1-21 of the spec)."""
    size = len(password)
    alternate = _sha512(password, salt, password)
    initial = hashlib.sha512(password + salt)
    initial.update(_repeat(alternate, size))
    bits = size
    while bits:
        initial.update(alternate if bits & 1 else password)
        bits >>= 1
    current = initial.digest()
    p_bytes = _repeat(_sha512(password * size), size) if size else b""
    s_bytes = _repeat(_sha512(salt * (16 + current[0])), len(salt)) if salt else b""
    for index in range(rounds):
        step = hashlib.sha512(p_bytes if index & 1 else current)
        if index % 3:
            step.update(s_bytes)
        if index % 7:
            step.update(p_bytes)
        step.update(current if index & 1 else p_bytes)
        current = step.digest()
    return current


def _encode(digest: bytes) -> str:
    """The scheme's own base-64 of the digest (86 characters)."""
    out = []
    for high, middle, low in ENCODE_ORDER:
        _append_b64(out, (digest[high] << 16) | (digest[middle] << 8) | digest[low], 4)
    _append_b64(out, digest[63], 2)
    return "".join(out)


def _append_b64(out: list, word: int, count: int) -> None:
    for _ in range(count):
        out.append(ITOA64[word & 0x3F])
        word >>= 6
