"""TCP connections made from inside a Linux network namespace, one helper thread per socket."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import socket
import threading

from . import GuestError, GuestTimeout

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"
# Extra time granted to the helper thread beyond the connect timeout (name resolution, setns).
_JOIN_GRACE_S = 2.0

_libc = None


def _setns(fd: int, nstype: int) -> None:
    """Move the calling thread (only) into the namespace behind fd."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def netns_path(netns: str) -> str:
    """Map a namespace name ("vdesk-default") or path to the path of its nsfs file."""
    if "/" in netns:
        return netns
    if not netns or netns in (".", ".."):
        raise GuestError(f"invalid network namespace name {netns!r}")
    return os.path.join(NETNS_RUN_DIR, netns)


def _open_netns(netns: str) -> int:
    """Open the namespace file read-only, with a readable error if it is missing."""
    path = netns_path(netns)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise GuestError(f"network namespace {netns!r} does not exist ({path} not found)") from None
    except OSError as exc:
        raise GuestError(f"cannot open network namespace {netns!r} ({path}): {exc.strerror}") from None


def connect_tcp(host: str, port: int, *, netns: str | None, timeout_s: float) -> socket.socket:
    """Return a connected TCP socket to host:port, created inside netns when one is given.

    Connection errors (refused, unreachable, timed out) are raised as the usual OSError
    subclasses so callers can retry them; a missing namespace raises GuestError.
    """
    if timeout_s <= 0:
        raise socket.timeout(f"no time left to connect to {host}:{port}")
    if netns is None:
        return socket.create_connection((host, port), timeout=timeout_s)

    fd = _open_netns(netns)
    outcome: dict[str, object] = {}
    lock = threading.Lock()
    abandoned = False

    def worker() -> None:
        try:
            try:
                _setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
        except OSError as exc:
            hint = " (root or CAP_SYS_ADMIN is needed)" if exc.errno == errno.EPERM else ""
            outcome["error"] = GuestError(
                f"cannot enter network namespace {netns!r}: {exc.strerror}{hint}"
            )
            return
        try:
            sock = socket.create_connection((host, port), timeout=timeout_s)
        except BaseException as exc:  # re-raised in the caller's thread below
            outcome["error"] = exc
            return
        with lock:
            if abandoned:
                sock.close()
            else:
                outcome["sock"] = sock

    thread = threading.Thread(target=worker, name=f"netns-connect-{netns}", daemon=True)
    try:
        thread.start()
    except BaseException:
        os.close(fd)
        raise
    thread.join(timeout_s + _JOIN_GRACE_S)
    with lock:
        if thread.is_alive():
            abandoned = True
    if abandoned:
        raise GuestTimeout(f"a TCP connection to {host}:{port} in netns {netns!r}", timeout_s)
    if "sock" in outcome:
        log.debug("connected to %s:%s inside netns %s", host, port, netns)
        return outcome["sock"]  # type: ignore[return-value]
    raise outcome["error"]  # type: ignore[misc]
