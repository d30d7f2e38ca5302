"""The lifecycle service as a host's managed process, like its console gateway: detached, restarted if it dies.

It lives in `<host>/lifecycle/` (settings, state, activity records, pid
files, log). `ensure_running` writes first settings where there are none and
starts the supervisor unless it runs already; the service reads its settings
again at every turn, so the administrator's change needs no restart.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .. import rootexec
from ..errors import VdeskError
from .settings import SETTINGS_FILE, LifecycleSettings

log = logging.getLogger(__name__)

SUPERVISOR_PID, SERVICE_PID, LOG_FILE = "supervisor.pid", "service.pid", "lifecycle.log"
_MODULE = f"{__package__}.supervisor"   # (not __name__: __main__ under -m) components.lifecycle.supervisor, or vdesk.lifecycle.supervisor when installed
_POLL_S = 0.1
_MAX_BACKOFF_S = 30.0


class LifecycleError(VdeskError):
    """The host's lifecycle service could not be started or stopped."""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _pid_of(lifecycle_dir: Path, pid_file: str, module: str) -> int | None:
    """The pid in the file, if it is still this dir's process of that module (pid files outlive reboots)."""
    try:
        pid = int((lifecycle_dir / pid_file).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    ours = module.encode() in cmdline and str(lifecycle_dir).encode() in cmdline
    return pid if ours and _alive(pid) else None


def supervisor_pid(lifecycle_dir: Path) -> int | None:
    return _pid_of(Path(lifecycle_dir).resolve(), SUPERVISOR_PID, _MODULE)


def service_pid(lifecycle_dir: Path) -> int | None:
    return _pid_of(Path(lifecycle_dir).resolve(), SERVICE_PID, _MODULE)


@contextlib.contextmanager
def _locked(lifecycle_dir: Path):
    lifecycle_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(lifecycle_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_running(lifecycle_dir: Path, settings: LifecycleSettings, timeout_s: float = 20) -> int:
    """Start the host's service unless it runs; returns the supervisor's pid.

    `settings` are written only where the host has none: once there, the file is the administrator's,
    and no later `up` (of this stack or another) changes or switches off what it says.
    """
    lifecycle_dir = Path(lifecycle_dir).resolve()
    with _locked(lifecycle_dir):
        if not (lifecycle_dir / SETTINGS_FILE).exists():
            settings.write(lifecycle_dir)
        if (pid := supervisor_pid(lifecycle_dir)) is not None:
            return pid
        # (a root daemon: it imports a root-owned copy of vdesk's code, never a checkout another user can write)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "PYTHONPATH": rootexec.install_package(), "PYTHONDONTWRITEBYTECODE": "1"}
        with open(lifecycle_dir / LOG_FILE, "a") as out:
            proc = subprocess.run([sys.executable, "-m", _MODULE, "supervise",
                                   str(lifecycle_dir)], stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, env=env, cwd="/", start_new_session=True,
                                  timeout=timeout_s)
        pid = supervisor_pid(lifecycle_dir)
        if proc.returncode != 0 or pid is None:
            raise LifecycleError(f"the lifecycle service did not start\n{_tail(lifecycle_dir / LOG_FILE)}")
        return pid


def stop(lifecycle_dir: Path, timeout_s: float = 10) -> None:
    """Stop the host's service (its supervisor first, so nothing restarts it); nothing to do when it does not run."""
    lifecycle_dir = Path(lifecycle_dir).resolve()
    if not lifecycle_dir.is_dir():
        return
    with _locked(lifecycle_dir):
        pids = [p for p in (supervisor_pid(lifecycle_dir), service_pid(lifecycle_dir)) if p]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while any(_alive(p) for p in pids):
            if time.monotonic() >= deadline:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                break
            time.sleep(_POLL_S)
        for name in (SUPERVISOR_PID, SERVICE_PID):
            (lifecycle_dir / name).unlink(missing_ok=True)


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def supervise(lifecycle_dir: Path) -> int:
    """Run the service and restart it (with backoff) whenever it dies, until SIGTERM."""
    (lifecycle_dir / SUPERVISOR_PID).write_text(f"{os.getpid()}\n")
    stopping, child = False, None

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
        child = subprocess.Popen([sys.executable, "-m", _MODULE, "serve",
                                  str(lifecycle_dir)], stdin=subprocess.DEVNULL)
        code = child.wait()
        if stopping:
            break
        backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, _MAX_BACKOFF_S)
        print(f"{_stamp()} vdesk.lifecycle service exited ({code}); restarting in {backoff:g}s", flush=True)
        until = time.monotonic() + backoff
        while not stopping and time.monotonic() < until:
            time.sleep(_POLL_S)
    (lifecycle_dir / SUPERVISOR_PID).unlink(missing_ok=True)
    return 0


def serve(lifecycle_dir: Path) -> int:
    """The service process itself: the loop until SIGTERM."""
    from .service import run
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%SZ"))
    handler.formatter.converter = time.gmtime
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(logging.INFO)
    (lifecycle_dir / SERVICE_PID).write_text(f"{os.getpid()}\n")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda _s, _f: stopping.set())
    run(lifecycle_dir, stopping)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vdesk-lifecycle")
    parser.add_argument("action", choices=("supervise", "serve", "stop"))
    parser.add_argument("lifecycle_dir", type=Path)
    args = parser.parse_args(argv)
    lifecycle_dir = args.lifecycle_dir.resolve()
    if args.action == "serve":
        return serve(lifecycle_dir)
    if args.action == "stop":
        stop(lifecycle_dir)
        return 0
    child = os.fork()
    if child == 0:               # detached: not a child of whoever asked
        os.setsid()
        os._exit(supervise(lifecycle_dir))
    deadline = time.monotonic() + 10
    while supervisor_pid(lifecycle_dir) is None:      # return once the pid file names it
        if os.waitpid(child, os.WNOHANG)[0] or time.monotonic() >= deadline:
            return 1
        time.sleep(_POLL_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
