"""A host's long-running services (console gateway, portal, lifecycle): started, recorded, found, stopped, reaped.

Each lives in its own folder of the host's state dir and runs on as root after the run that started it, so it
imports the root-owned copy of vdesk's code (components/rootexec.py), never the checkout. A pid it recorded is
trusted only while that process's command line names the service's module and folder (a record can outlive a
reboot and name someone else's process, whom root must never signal). A run killed halfway can leave a process
that no record names any more (a supervisor killed, its child left; a record lost): `reap` finds those by their
command line and stops them.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import psutil

from . import rootexec
from .processes import alive, command_line
from .waiting import WaitTimeout, wait_for

log = logging.getLogger(__name__)

POLL_S = 0.1
MAX_BACKOFF_S = 30.0
# Every module a host service runs as, under this package's name (components.* here, vdesk.* when installed).
SERVICE_MODULES = tuple(f"{__package__}.{m}" for m in ("console.service", "console.gateway", "portal.serve",
                                                       "lifecycle.supervisor"))


def root_env() -> dict[str, str]:
    """The environment a host service starts with: vdesk's root-owned code on its path, nothing of the caller's."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "PYTHONPATH": rootexec.install_package(), "PYTHONDONTWRITEBYTECODE": "1"}


@contextlib.contextmanager
def locked(service_dir: Path) -> Iterator[None]:
    """The service's folder (made 0700), held by one caller at a time: no two runs start or stop it at once."""
    service_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(service_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ours(pid: int, service_dir: Path, module: str) -> bool:
    """The pid lives and runs `module` for this folder (its command line names both)."""
    cmdline = command_line(pid) or []
    return alive(pid) and module in cmdline and str(service_dir) in cmdline


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def recorded_pid(service_dir: Path, pid_file: str, module: str) -> int | None:
    """The pid the file records, if it is still this folder's process of `module`."""
    pid = read_pid(service_dir / pid_file)
    return pid if pid is not None and ours(pid, service_dir, module) else None


def tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def start(argv: list[str], service_dir: Path, log_file: str, *, wait_s: float | None = None):
    """Run `[python, -m, *argv]` as a new session, from /, with the root environment, its output on the log.
    wait_s: wait for it to exit (a command that forks the supervisor) and return its CompletedProcess;
    None: return the running Popen."""
    with open(service_dir / log_file, "a") as out:
        command = [sys.executable, "-m", *argv]
        options = dict(stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=root_env(), cwd="/",
                       start_new_session=True)
        if wait_s is None:
            return subprocess.Popen(command, **options)
        return subprocess.run(command, timeout=wait_s, **options)


def terminate(signalled: Iterable[int], watched: Iterable[int], deadline: float,
              still_ours: Callable[[int], bool]) -> None:
    """SIGTERM to `signalled`, then wait until every one of `watched` is gone; past the deadline SIGKILL those
    still ours (not a pid reused since)."""
    watched = [p for p in watched if p]
    for pid in (p for p in signalled if p):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    try:
        wait_for(lambda: not any(alive(p) for p in watched), max(0.0, deadline - time.monotonic()), interval_s=POLL_S)
    except WaitTimeout:
        for pid in watched:
            if still_ours(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def supervise(service_dir: Path, pid_file: str, child_argv: Callable[[], list[str]], what: str,
              pass_fds: tuple[int, ...] = ()) -> int:
    """Run the child and restart it (with backoff) whenever it dies, until SIGTERM: the supervisor's own loop."""
    (service_dir / pid_file).write_text(f"{os.getpid()}\n")
    stopping = False
    child: subprocess.Popen | None = None

    def on_signal(_sig, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.terminate()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    backoff = 1.0
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, "-m", *child_argv()], stdin=subprocess.DEVNULL, pass_fds=pass_fds)
        code = child.wait()
        if stopping:
            break
        backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, MAX_BACKOFF_S)
        print(f"{_stamp()} {what} exited ({code}); restarting in {backoff:g}s", flush=True)
        until = time.monotonic() + backoff
        while not stopping and time.monotonic() < until:
            time.sleep(POLL_S)
    (service_dir / pid_file).unlink(missing_ok=True)
    return 0


def detach(run: Callable[[], int], started: Callable[[], bool], timeout_s: float = 10) -> int:
    """Fork `run` into a session of its own (not a child of whoever asked) and return 0 once `started()` (its pid
    file names it), 1 when it exits first or does not within the timeout."""
    child = os.fork()
    if child == 0:
        os.setsid()
        os._exit(run())

    def settled() -> str | None:
        if started():
            return "started"
        return "exited" if os.waitpid(child, os.WNOHANG)[0] else None

    try:
        return 0 if wait_for(settled, timeout_s, interval_s=POLL_S) == "started" else 1
    except WaitTimeout:
        return 1


def _is_service(pid: int, within: Callable[[str], bool], modules: tuple[str, ...]) -> bool:
    """The pid lives and runs one of `modules` for a folder `within` accepts (its command line names both)."""
    cmdline = command_line(pid) or []
    return alive(pid) and any(m in cmdline for m in modules) and any(within(arg) for arg in cmdline)


def strays(within: Callable[[str], bool], modules: tuple[str, ...] = SERVICE_MODULES) -> list[int]:
    """Pids of host-service processes (one of `modules`) whose command line names a folder `within` accepts."""
    me = os.getpid()
    return sorted(pid for pid in psutil.pids() if pid != me and _is_service(pid, within, modules))


def reap(service_dir: Path, modules: tuple[str, ...] = SERVICE_MODULES, *, timeout_s: float = 5.0) -> list[int]:
    """Stop this folder's service processes (of `modules`) once its recorded ones are stopped: what a killed run
    left behind. Returns their pids (each logged)."""
    folder = str(service_dir)
    return _stop_strays(lambda arg: arg == folder, modules, timeout_s)


def reap_under(root: Path, timeout_s: float = 5.0) -> list[int]:
    """Stop every host-service process of a state dir below `root` (a test session's tear-down)."""
    prefix = str(Path(root).resolve()) + os.sep
    return _stop_strays(lambda arg: arg.startswith(prefix), SERVICE_MODULES, timeout_s)


def _stop_strays(within: Callable[[str], bool], modules: tuple[str, ...], timeout_s: float) -> list[int]:
    found = strays(within, modules)
    for pid in found:
        log.warning("stopping stale host service pid=%d: %s", pid, " ".join(command_line(pid) or []))
    if found:
        terminate(found, found, time.monotonic() + timeout_s, lambda pid: _is_service(pid, within, modules))
    return found
