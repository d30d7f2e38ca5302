"""Where a secret could have leaked on a host: every file of a state dir searched for its bytes, and a password
login that proves the guest holds it only as a hash that verifies."""
from __future__ import annotations

import re
from pathlib import Path

import paramiko

from components.guest.netns import connect_tcp

# The crypt hash vdesk writes for a password (SHA-512, its rounds, a 16-character salt).
HASH = re.compile(rb"\$6\$rounds=100000\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}")


def files_containing(root: Path, needle: bytes) -> list[str]:
    """Every regular file under root whose bytes contain needle (read in chunks, so disks are fine)."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        with path.open("rb") as f:
            tail = b""
            while chunk := f.read(8 << 20):
                if needle in tail + chunk:
                    found.append(str(path))
                    break
                tail = chunk[-len(needle):]
    return found


def scanned_file_count(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def password_login(ip: str, netns: str, host_public_key: str, user: str, password: str) -> str:
    """Log in with the password (SSH password auth, host key pinned); return `id -un` as the guest says it."""
    sock = connect_tcp(ip, 22, netns=netns, timeout_s=30)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=30)
        presented = transport.get_remote_server_key()
        assert f"{presented.get_name()} {presented.get_base64()}" == " ".join(host_public_key.split()[:2])
        transport.auth_password(user, password)
        channel = transport.open_session(timeout=30)
        channel.exec_command("id -un")
        output = channel.makefile("rb").read().decode().strip()
        assert channel.recv_exit_status() == 0
        return output
    finally:
        transport.close()
