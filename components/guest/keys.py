"""SSH key pairs for guests: generation and OpenSSH-style fingerprints."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from . import GuestError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyPair:
    """An SSH key pair in OpenSSH text formats."""

    private_openssh: str
    public_openssh: str

    def __repr__(self) -> str:
        return f"KeyPair(public_openssh={self.public_openssh!r}, private_openssh=<redacted>)"


def generate_ed25519(comment: str) -> KeyPair:
    """Generate a fresh ed25519 key pair; the comment is appended to the public key."""
    if any(ch in comment for ch in "\r\n\0"):
        raise GuestError(f"invalid SSH key comment {comment!r}: it must be a single line")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode("ascii")
    if comment.strip():
        public = f"{public} {comment.strip()}"
    log.debug("generated ed25519 key %s", fingerprint_sha256(public))
    return KeyPair(private_openssh=private, public_openssh=public)


def parse_public_key(public_openssh: str) -> tuple[str, bytes]:
    """Split an OpenSSH public key line into (key type, key blob), validating both."""
    fields = public_openssh.strip().split()
    if len(fields) < 2:
        raise GuestError(
            f"not an OpenSSH public key (expected 'TYPE BASE64 [comment]'): {public_openssh[:60]!r}"
        )
    key_type, encoded = fields[0], fields[1]
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise GuestError(f"public key of type {key_type} has invalid base64 data") from None
    if len(blob) < 4:
        raise GuestError(f"public key of type {key_type} is truncated")
    (name_len,) = struct.unpack(">I", blob[:4])
    embedded = blob[4 : 4 + name_len].decode("ascii", errors="replace")
    if embedded != key_type:
        raise GuestError(
            f"public key says its type is {key_type!r} but its data is of type {embedded!r}"
        )
    return key_type, blob


def fingerprint_sha256(public_openssh: str) -> str:
    """Return the key's fingerprint as "SHA256:..." exactly like `ssh-keygen -lf` prints it."""
    _, blob = parse_public_key(public_openssh)
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")
