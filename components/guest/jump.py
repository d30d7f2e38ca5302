"""Guests on a remote host's private network, reached through that host's own sshd (an SSH jump).

A desktop on a NAT network of a remote KVM host has an address only that host can reach. vdesk
already talks to such a host over SSH (qemu+ssh://user@host/system), so it reaches the guest the
same way: an SSH connection to the host, then a direct-tcpip channel to the guest's port 22, over
which the guest's own SSH session runs with its pinned host key.

The host's key is pinned too: it must be in the runner's known_hosts (~/.ssh/known_hosts of the
user vdesk runs as, or /etc/ssh/ssh_known_hosts), as for libvirt's own ssh connection. An unknown
host is refused, never trusted on first use. vdesk logs in with the runner's SSH agent or its
default keys (~/.ssh/id_ed25519, id_ecdsa, id_rsa), as ssh does.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import pwd
import re

import paramiko

from . import GuestError, HostKeyMismatch
from .keys import fingerprint_sha256
from .netns import connect_tcp

log = logging.getLogger(__name__)
# paramiko logs every refused channel at ERROR ("Secsh channel 8 open FAILED"): while a guest boots that is
# every retry, and the caller reports what matters. Its transport logs go here, and only criticals show.
_TRANSPORT_LOG = f"{__name__}.transport"
logging.getLogger(_TRANSPORT_LOG).setLevel(logging.CRITICAL)

SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")
_JUMP = re.compile(r"^(?:(?P<user>[A-Za-z_][A-Za-z0-9_.-]*)@)?(?P<host>[A-Za-z0-9.:_-]+?|\[[0-9a-fA-F:]+\])"
                   r"(?::(?P<port>\d{1,5}))?$")


def ssh_dir() -> str:
    """The runner's ~/.ssh, from its passwd entry as ssh (and so libvirt's qemu+ssh) finds it."""
    return os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".ssh")


@dataclasses.dataclass(frozen=True)
class JumpHost:
    """A host's sshd, through which its guests are reached."""

    host: str
    port: int = 22
    user: str = "root"
    known_hosts: tuple[str, ...] = ()     # default: the runner's known_hosts files
    identities: tuple[str, ...] = ()      # default: the runner's agent and default keys
    netns: str | None = None              # open the TCP connection inside this network namespace

    @classmethod
    def parse(cls, text: str, **more) -> "JumpHost":
        """'user@host:port' (as a host's ssh_jump output says it)."""
        found = _JUMP.match(text or "")
        if not found:
            raise GuestError(f"{text!r} is not an SSH jump host (user@host:port)")
        host = found["host"].strip("[]")
        return cls(host, int(found["port"] or 22), found["user"] or pwd.getpwuid(os.getuid()).pw_name, **more)

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names it: host, or [host]:port on another port than 22."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def pinned_keys(jump: JumpHost) -> tuple[list[paramiko.PKey], list[str]]:
    """The host keys known_hosts pins for the jump host, and the files that were read."""
    files = list(jump.known_hosts) or [os.path.join(ssh_dir(), "known_hosts"), SYSTEM_KNOWN_HOSTS]
    keys, read = [], []
    for path in files:
        if not os.path.isfile(path):
            continue
        known = paramiko.HostKeys()
        try:
            known.load(path)
        except (OSError, paramiko.SSHException) as exc:
            log.warning("cannot read %s: %s", path, exc)
            continue
        read.append(path)
        entry = known.lookup(jump.known_hosts_name)
        keys += list(entry.values()) if entry else []
    return keys, read


def open_transport(jump: JumpHost, timeout_s: float) -> paramiko.Transport:
    """An authenticated SSH connection to the jump host, whose key must be pinned in known_hosts.

    A refused or unreachable connection raises OSError (the caller may retry); an unknown or
    changed host key raises HostKeyMismatch; a refused login raises GuestError.
    """
    pinned, files = pinned_keys(jump)
    if not pinned:
        where = ", ".join(files) or "no known_hosts file"
        raise HostKeyMismatch(
            f"jump host {jump} is not in the runner's known_hosts ({where}): vdesk does not trust a host key on "
            f"first use. Check the host's key fingerprint, then add it (e.g. `ssh-keyscan -p {jump.port} "
            f"{jump.host}` prints the line to verify and add)")
    sock = connect_tcp(jump.host, jump.port, netns=jump.netns, timeout_s=timeout_s)
    transport = paramiko.Transport(sock)
    transport.set_log_channel(_TRANSPORT_LOG)
    try:
        transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = timeout_s
        options = transport.get_security_options()
        wanted = [k.get_name() for k in pinned]
        options.key_types = tuple([t for t in options.key_types if t in wanted]
                                  + [t for t in options.key_types if t not in wanted])
        transport.start_client(timeout=timeout_s)
        presented = transport.get_remote_server_key()
        if not any(presented.asbytes() == k.asbytes() for k in pinned):
            line = f"{presented.get_name()} {presented.get_base64()}"
            raise HostKeyMismatch(
                f"host key mismatch for jump host {jump}: known_hosts pins "
                f"{', '.join(fingerprint_sha256(f'{k.get_name()} {k.get_base64()}') for k in pinned)}, but it "
                f"presented {presented.get_name()} {fingerprint_sha256(line)}. Refusing to connect.")
        _log_in(transport, jump)
        return transport
    except BaseException:
        transport.close()
        raise


def _log_in(transport: paramiko.Transport, jump: JumpHost) -> None:
    tried = []
    for key, source in _keys(jump):
        tried.append(source)
        try:
            transport.auth_publickey(jump.user, key)
        except paramiko.AuthenticationException:
            continue
        if transport.is_authenticated():
            log.debug("logged in to jump host %s with %s", jump, source)
            return
    raise GuestError(f"cannot log in to jump host {jump}: no key was accepted (tried "
                     f"{', '.join(tried) or 'none: no SSH agent and no ~/.ssh/id_* key'})")


def _keys(jump: JumpHost):
    if not jump.identities:
        try:
            for key in paramiko.Agent().get_keys():
                yield key, f"agent key {key.get_name()}"
        except paramiko.SSHException:
            pass
    for path in jump.identities or [os.path.join(ssh_dir(), name) for name in _IDENTITIES]:
        if not os.path.isfile(path):
            continue
        try:
            yield paramiko.PKey.from_path(path), path
        except (paramiko.SSHException, OSError, ValueError) as exc:   # encrypted, or not a key
            log.info("skipping %s: %s", path, exc)


def open_channel(transport: paramiko.Transport, host: str, port: int, timeout_s: float) -> paramiko.Channel:
    """A TCP connection to host:port made by the jump host (direct-tcpip), usable as a socket.

    The far side refusing (the guest's sshd not up yet) raises ConnectionRefusedError, to be retried.
    """
    try:
        return transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout_s)
    except paramiko.ChannelException as exc:
        raise ConnectionRefusedError(f"the jump host could not connect to {host}:{port}: {exc}") from None
