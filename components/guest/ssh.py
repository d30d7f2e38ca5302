"""SSH sessions to guests with a pinned host key, retried while the guest boots."""

from __future__ import annotations

import hmac
import io
import logging
import select
import shlex
import socket
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import paramiko

from . import GuestError, GuestTimeout, HostKeyMismatch
from .keys import fingerprint_sha256, parse_public_key
from .jump import JumpHost, open_channel
from .jump import open_transport as open_jump
from .netns import connect_tcp

log = logging.getLogger(__name__)

# Upper bounds for single steps of one connection attempt; the overall deadline still rules.
_CONNECT_STEP_S = 10.0
_HANDSHAKE_STEP_S = 20.0
_RETRY_FIRST_DELAY_S = 0.25
_RETRY_MAX_DELAY_S = 2.0
_READ_CHUNK = 65536

# Host key algorithms a pinned key of a given type may be presented with.
_HOST_KEY_ALGORITHMS = {
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}


@dataclass(frozen=True)
class SshTarget:
    """Where and how to log in to a guest, including the host key it must present."""

    host: str
    user: str
    private_key: str = field(repr=False)
    host_public_key: str
    port: int = 22
    netns: str | None = None
    jump: "JumpHost | None" = None       # a remote host's sshd, through which its private network is reached

    @property
    def address(self) -> str:
        """host:port, plus the namespace or jump host if any, for messages."""
        where = f"{self.host}:{self.port}"
        if self.jump:
            return f"{where} (via {self.jump})"
        return f"{where} (netns {self.netns})" if self.netns else where


@dataclass(frozen=True)
class CommandResult:
    """Outcome of one command on a guest."""

    command: str
    rc: int
    stdout: str
    stderr: str

    @property
    def succeeded(self) -> bool:
        """True if the command exited with status 0."""
        return self.rc == 0

    @property
    def failed(self) -> bool:
        """True if the command exited with a non-zero status."""
        return self.rc != 0

    def check(self) -> "CommandResult":
        """Return self if the command succeeded, else raise a readable GuestError."""
        if self.rc != 0:
            detail = (self.stderr.strip() or self.stdout.strip())[-2000:]
            raise GuestError(
                f"command {_short(self.command)} exited with status {self.rc}"
                + (f": {detail}" if detail else "")
            )
        return self


def render_command(command: str | Sequence[str], *, sudo: bool = False) -> str:
    """Turn a command into the one shell line sent to the guest; the single place quoting happens.

    A string is taken as a shell command line as-is; a list has each argument quoted.
    With sudo the command runs non-interactively as root (never prompts for a password).
    """
    if isinstance(command, str):
        if not command.strip():
            raise GuestError("refusing to run an empty command")
        return f"sudo -n -- sh -c {shlex.quote(command)}" if sudo else command
    args = [str(arg) for arg in command]
    if not args:
        raise GuestError("refusing to run an empty command")
    line = shlex.join(args)
    return f"sudo -n -- {line}" if sudo else line


def load_private_key(private_openssh: str) -> paramiko.PKey:
    """Load an unencrypted private key (ed25519, ECDSA or RSA) from its text form."""
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(private_openssh))
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    raise GuestError(
        "the SSH private key could not be loaded: expected an unencrypted ed25519, ECDSA or RSA"
        " key in OpenSSH or PEM format"
    )


class GuestSession:
    """An authenticated SSH connection to one guest; use as a context manager."""

    def __init__(self, transport: paramiko.Transport, target: SshTarget,
                 jump: paramiko.Transport | None = None):
        self._transport = transport
        self._jump = jump
        self.target = target

    def __enter__(self) -> "GuestSession":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._transport.is_active() else "closed"
        return f"<GuestSession {self.target.user}@{self.target.address} {state}>"

    def run(
        self, command: str | Sequence[str], *, timeout_s: float = 120, sudo: bool = False
    ) -> CommandResult:
        """Run a command; a non-zero exit is a result, not an exception. Raises GuestTimeout."""
        line = render_command(command, sudo=sudo)
        deadline = time.monotonic() + timeout_s
        log.debug("run on %s: %s", self.target.address, line)
        try:
            channel = self._transport.open_session(timeout=max(timeout_s, 0.1))
            channel.exec_command(line)
            channel.shutdown_write()
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise GuestError(
                f"could not start {_short(line)} on {self.target.address}: {_describe(exc)}"
            ) from exc
        with channel:
            stdout, stderr = self._collect(channel, line, deadline, timeout_s)
            rc = channel.recv_exit_status()
        if rc == -1 and not self._transport.is_active():
            raise GuestError(
                f"connection to {self.target.address} was lost while running {_short(line)}"
            )
        result = CommandResult(command=line, rc=rc, stdout=stdout, stderr=stderr)
        log.debug("rc=%s from %s on %s", rc, _short(line), self.target.address)
        return result

    def _collect(
        self, channel: paramiko.Channel, line: str, deadline: float, timeout_s: float
    ) -> tuple[str, str]:
        """Read stdout and stderr until EOF and exit status, or raise GuestTimeout."""
        out: list[bytes] = []
        err: list[bytes] = []

        def drain() -> None:
            while channel.recv_ready():
                out.append(channel.recv(_READ_CHUNK))
            while channel.recv_stderr_ready():
                err.append(channel.recv_stderr(_READ_CHUNK))

        while True:
            drain()
            remaining = deadline - time.monotonic()
            if channel.eof_received or channel.closed:
                drain()
                if channel.status_event.wait(max(remaining, 0)):
                    break
            elif remaining > 0:
                # The channel's fileno becomes readable when stdout/stderr data or EOF arrives.
                select.select([channel], [], [], min(remaining, 1.0))
                continue
            channel.close()
            raise GuestTimeout(f"command {_short(line)} on {self.target.address}", timeout_s)
        drain()
        return (
            b"".join(out).decode("utf-8", errors="replace"),
            b"".join(err).decode("utf-8", errors="replace"),
        )

    def close(self) -> None:
        """Close the SSH connection (and the jump host's); safe to call twice."""
        self._transport.close()
        if self._jump is not None:
            self._jump.close()


def connect(target: SshTarget, *, timeout_s: float, still_booting: Callable[[], None] | None = None) -> GuestSession:
    """Log in to the guest, retrying while it boots; the host key must equal the pinned one.

    Refused/unreachable connections, missing SSH banners and rejected logins are retried
    until the deadline (GuestTimeout); a wrong host key raises HostKeyMismatch at once.
    `still_booting`, called before each retry, raises to end the wait early (the guest stopped).
    """
    pinned_type, pinned_blob = parse_public_key(target.host_public_key)
    user_key = load_private_key(target.private_key)
    deadline = time.monotonic() + timeout_s
    delay = _RETRY_FIRST_DELAY_S
    attempts = 0
    last_error: str | None = None
    jump = None       # one connection to the jump host serves every attempt
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            attempts += 1
            try:
                if target.jump is not None and (jump is None or not jump.is_active()):
                    jump = open_jump(target.jump, min(remaining, _HANDSHAKE_STEP_S))
                transport = _attempt(target, user_key, pinned_type, pinned_blob, remaining, jump)
            except (HostKeyMismatch, GuestTimeout):
                raise
            except GuestError as exc:
                if not isinstance(exc, _Retry):
                    raise
                last_error = str(exc)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                last_error = _describe(exc)
            else:
                log.info("SSH session to %s@%s after %d attempt(s)", target.user, target.address, attempts)
                session, jump = GuestSession(transport, target, jump), None
                return session
            log.debug("SSH to %s not ready (attempt %d): %s", target.address, attempts, last_error)
            if still_booting is not None:
                still_booting()
            pause = min(delay, deadline - time.monotonic())
            if pause > 0:
                time.sleep(pause)
            delay = min(delay * 2, _RETRY_MAX_DELAY_S)
    finally:
        if jump is not None:
            jump.close()
    raise GuestTimeout(
        f"SSH login as {target.user!r} on {target.address} ({attempts} attempt(s))",
        timeout_s,
        last_error,
    )


class _Retry(GuestError):
    """Internal: an attempt failed in a way that may clear up while the guest boots."""


def _attempt(
    target: SshTarget,
    user_key: paramiko.PKey,
    pinned_type: str,
    pinned_blob: bytes,
    remaining: float,
    jump: paramiko.Transport | None = None,
) -> paramiko.Transport:
    """One connection attempt: TCP (or a channel through the jump host), handshake, host key check,
    then public key login."""
    try:
        if jump is not None:
            sock = open_channel(jump, target.host, target.port, min(remaining, _CONNECT_STEP_S))
        else:
            sock = connect_tcp(
                target.host,
                target.port,
                netns=target.netns,
                timeout_s=min(remaining, _CONNECT_STEP_S),
            )
    except GuestTimeout as exc:
        raise _Retry(str(exc)) from exc
    transport = None
    try:
        transport = paramiko.Transport(sock)
        step = max(min(remaining, _HANDSHAKE_STEP_S), 0.1)
        transport.banner_timeout = step
        transport.handshake_timeout = step
        transport.auth_timeout = step
        _prefer_host_key_type(transport, pinned_type)
        transport.start_client(timeout=step)
        _verify_host_key(transport.get_remote_server_key(), pinned_type, pinned_blob, target)
        transport.auth_publickey(target.user, user_key)
        if not transport.is_authenticated():
            raise _Retry(f"the guest wants more authentication than a public key for {target.user!r}")
        return transport
    except BaseException:
        if transport is not None:
            transport.close()
        sock.close()
        raise


def _prefer_host_key_type(transport: paramiko.Transport, pinned_type: str) -> None:
    """Ask the server for its key of the pinned type first, so a matching key is negotiated."""
    options = transport.get_security_options()
    available = list(options.key_types)
    wanted = [alg for alg in _HOST_KEY_ALGORITHMS.get(pinned_type, (pinned_type,)) if alg in available]
    options.key_types = tuple(wanted + [alg for alg in available if alg not in wanted])


def _verify_host_key(
    presented: paramiko.PKey, pinned_type: str, pinned_blob: bytes, target: SshTarget
) -> None:
    """Fail closed unless the presented host key is byte-for-byte the pinned one."""
    presented_blob = presented.asbytes()
    if hmac.compare_digest(presented_blob, pinned_blob):
        return
    presented_line = f"{presented.get_name()} {presented.get_base64()}"
    raise HostKeyMismatch(
        f"host key mismatch for {target.address}: expected {pinned_type} "
        f"{fingerprint_sha256(target.host_public_key)}, but the server presented "
        f"{presented.get_name()} {fingerprint_sha256(presented_line)}. Refusing to log in: "
        "the guest is not the one whose key was pinned (or it was rebuilt with new host keys)."
    )


def _describe(exc: BaseException) -> str:
    """Short readable form of a low-level error, e.g. 'ConnectionRefusedError: [Errno 111] ...'."""
    text = str(exc) or repr(exc)
    if isinstance(exc, socket.timeout):
        return f"timed out: {text}"
    return f"{type(exc).__name__}: {text}"


def _short(line: str, limit: int = 200) -> str:
    """Quote a command line for messages, cut to a readable length."""
    return repr(line if len(line) <= limit else line[: limit - 3] + "...")
