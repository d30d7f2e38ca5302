"""Tests for guest SSH key generation and fingerprints."""

import io
import shutil
import subprocess

import paramiko
import pytest

from components.guest import GuestError
from components.guest.keys import KeyPair, fingerprint_sha256, generate_ed25519


def test_generated_pair_loads_in_paramiko_and_halves_match():
    pair = generate_ed25519("vdesk@alice-desktop")
    assert pair.private_openssh.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(pair.private_openssh))
    key_type, b64, comment = pair.public_openssh.split(" ")
    assert key_type == "ssh-ed25519"
    assert comment == "vdesk@alice-desktop"
    assert key.get_base64() == b64


def test_pairs_are_distinct_per_call():
    pairs = [generate_ed25519("c") for _ in range(3)]
    assert len({p.private_openssh for p in pairs}) == 3
    assert len({p.public_openssh for p in pairs}) == 3


def test_repr_does_not_leak_private_key():
    pair = generate_ed25519("c")
    assert "PRIVATE" not in repr(pair)
    assert isinstance(pair, KeyPair)


def test_empty_comment_gives_two_field_public_key():
    assert len(generate_ed25519("").public_openssh.split()) == 2


def test_multiline_comment_rejected():
    with pytest.raises(GuestError, match="single line"):
        generate_ed25519("a\nb")


def test_fingerprint_matches_paramiko_sha256_fingerprint():
    pair = generate_ed25519("x")
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(pair.private_openssh))
    assert fingerprint_sha256(pair.public_openssh) == key.fingerprint


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="openssh-client not installed")
def test_fingerprint_matches_ssh_keygen(tmp_path):
    pair = generate_ed25519("vdesk@test")
    path = tmp_path / "id.pub"
    path.write_text(pair.public_openssh + "\n")
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(path), "-E", "sha256"], capture_output=True, text=True, check=True
    ).stdout
    # "256 SHA256:... vdesk@test (ED25519)"
    assert out.split()[1] == fingerprint_sha256(pair.public_openssh)
    assert fingerprint_sha256(pair.public_openssh).startswith("SHA256:")


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="openssh-client not installed")
def test_private_key_accepted_by_ssh_keygen(tmp_path):
    pair = generate_ed25519("c")
    path = tmp_path / "id"
    path.write_text(pair.private_openssh)
    path.chmod(0o600)
    out = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.split()[:2] == pair.public_openssh.split()[:2]


@pytest.mark.parametrize(
    "bad, message",
    [
        ("ssh-ed25519", "not an OpenSSH public key"),
        ("ssh-ed25519 !!!notbase64!!!", "invalid base64"),
        # base64 of a blob whose embedded type is ssh-rsa
        ("ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQAB", "its data is of type 'ssh-rsa'"),
        # a blob of the right type whose key is cut short
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIgF", "ssh-ed25519 is truncated or malformed"),
        ("foo-key AAAAB2Zvby1rZXk=", "'foo-key': not a key type vdesk can read"),
    ],
)
def test_fingerprint_rejects_malformed_keys(bad, message):
    with pytest.raises(GuestError, match=message):
        fingerprint_sha256(bad)
