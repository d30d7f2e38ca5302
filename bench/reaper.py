"""Start the bench's libvirtd under a child that reaps its orphans at once, so destroy is timed as on a normal host.

virDomainDestroy signals qemu and then waits until the pid is gone; a zombie
still counts.  qemu daemonises, so its zombie goes to the nearest subreaper:
PID 1, which in this sandbox reaps ~1.5 s late and would add that to every
destroy (systemd reaps at once) and to each qemu libvirtd probes at start.  A
forked subreaper whose child starts the daemon, and which itself does nothing
but waitpid(), removes the artefact; it exits when the bench closes its pipe
(or dies), after which orphans fall back to PID 1.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal

from components.host import embedded
from components.host.embedded import EmbeddedHost, EmbeddedHostError

_PR_SET_CHILD_SUBREAPER = 36
_POLL_S = 0.02


class Reaper:
    """Handle on the reaping child; close() after the host has been stopped."""

    def __init__(self, pid: int, control_fd: int):
        self.pid, self._control_fd = pid, control_fd

    def close(self) -> None:
        if self._control_fd is not None:
            os.close(self._control_fd)
            self._control_fd = None
            os.waitpid(self.pid, 0)


def _reap_until_closed(control_fd: int) -> None:
    while True:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        if select.select([control_fd], [], [], _POLL_S)[0]:
            return  # the bench closed the pipe or exited


def _start(host: EmbeddedHost, report_fd: int) -> int:
    """In a child of the reaper, so that its own subprocesses stay its own to wait for."""
    try:
        embedded.ensure_running(host)
    except BaseException as exc:  # noqa: BLE001 — reported to the bench, which raises
        os.write(report_fd, f"{type(exc).__name__}: {exc}".encode()[:4000] or b"failed")
        return 1
    os.write(report_fd, b"ok")
    return 0


def _reaper(host: EmbeddedHost, report_fd: int, control_fd: int) -> int:
    """Become the subreaper, fork the starter, reap everything from then on (libvirtd probes qemu at start)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # keep reaping while the bench cleans up
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        os.write(report_fd, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}".encode())
        return 1
    if os.fork() == 0:
        status = 1
        try:
            os.close(control_fd)
            status = _start(host, report_fd)
        finally:
            os._exit(status)
    os.close(report_fd)
    _reap_until_closed(control_fd)
    return 0


def start_under_reaper(host: EmbeddedHost) -> Reaper:
    """Start the host below a subreaper child; returns once the host answers."""
    report_r, report_w = os.pipe()
    control_r, control_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(report_r)
            os.close(control_w)
            status = _reaper(host, report_w, control_r)
        finally:
            os._exit(status)  # never run the parent's cleanup in the child
    os.close(report_w)
    os.close(control_r)
    try:
        message = os.read(report_r, 4096)
    finally:
        os.close(report_r)
    reaper = Reaper(pid, control_w)
    if message != b"ok":
        reaper.close()
        raise EmbeddedHostError(f"bench host did not start: {message.decode(errors='replace') or 'reaper died'}")
    return reaper
