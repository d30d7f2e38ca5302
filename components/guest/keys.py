"""SSH key pairs for guests: generation and OpenSSH-style fingerprints."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from dataclasses import dataclass

import paramiko
from cryptography.exceptions import UnsupportedAlgorithm
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
    """Split an OpenSSH public key line into (key type, key blob), validated by cryptography's loader."""
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
    try:
        serialization.load_ssh_public_key(f"{key_type} {encoded}".encode("ascii"))
    except UnsupportedAlgorithm:
        raise GuestError(f"public key of type {key_type!r}: not a key type vdesk can read") from None
    except ValueError:
        embedded = _blob_type(blob)
        if embedded and embedded != key_type:
            raise GuestError(
                f"public key says its type is {key_type!r} but its data is of type {embedded!r}"
            ) from None
        raise GuestError(f"public key of type {key_type} is truncated or malformed") from None
    return key_type, blob


def _blob_type(blob: bytes) -> str:
    """The key type written inside a blob (its first SSH string), to say why a key did not load."""
    try:
        return paramiko.Message(blob).get_text()
    except ValueError:
        return ""


def fingerprint_sha256(public_openssh: str) -> str:
    """Return the key's fingerprint as "SHA256:..." exactly like `ssh-keygen -lf` prints it."""
    _, blob = parse_public_key(public_openssh)
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")
