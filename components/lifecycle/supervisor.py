"""The lifecycle service as a host's managed process, like its console gateway: detached, restarted if it dies.

It lives in `<host>/lifecycle/` (settings, state, activity records, pid
files, log). `ensure_running` writes first settings where there are none and
starts the supervisor unless it runs already; the service reads its settings
again at every turn, so the administrator's change needs no restart.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from .. import hostservice
from ..errors import VdeskError
from .settings import SETTINGS_FILE, LifecycleSettings

log = logging.getLogger(__name__)

SUPERVISOR_PID, SERVICE_PID, LOG_FILE = "supervisor.pid", "service.pid", "lifecycle.log"
_MODULE = f"{__package__}.supervisor"   # (not __name__: __main__ under -m) components.lifecycle.supervisor, or vdesk.lifecycle.supervisor when installed


class LifecycleError(VdeskError):
    """The host's lifecycle service could not be started or stopped."""


def supervisor_pid(lifecycle_dir: Path) -> int | None:
    return hostservice.recorded_pid(Path(lifecycle_dir).resolve(), SUPERVISOR_PID, _MODULE)


def service_pid(lifecycle_dir: Path) -> int | None:
    return hostservice.recorded_pid(Path(lifecycle_dir).resolve(), SERVICE_PID, _MODULE)


def ensure_running(lifecycle_dir: Path, settings: LifecycleSettings, timeout_s: float = 20) -> int:
    """Start the host's service unless it runs; returns the supervisor's pid.

    `settings` are written only where the host has none: once there, the file is the administrator's,
    and no later `up` (of this stack or another) changes or switches off what it says.
    """
    lifecycle_dir = Path(lifecycle_dir).resolve()
    with hostservice.locked(lifecycle_dir):
        if not (lifecycle_dir / SETTINGS_FILE).exists():
            settings.write(lifecycle_dir)
        if (pid := supervisor_pid(lifecycle_dir)) is not None:
            return pid
        hostservice.reap(lifecycle_dir, (_MODULE,))       # a service a killed run left, with no supervisor
        # (a root daemon: it imports a root-owned copy of vdesk's code, never a checkout another user can write)
        proc = hostservice.start([_MODULE, "supervise", str(lifecycle_dir)], lifecycle_dir, LOG_FILE,
                                 wait_s=timeout_s)
        pid = supervisor_pid(lifecycle_dir)
        if proc.returncode != 0 or pid is None:
            raise LifecycleError(f"the lifecycle service did not start\n{hostservice.tail(lifecycle_dir / LOG_FILE)}")
        return pid


def stop(lifecycle_dir: Path, timeout_s: float = 10) -> None:
    """Stop the host's service (its supervisor first, so nothing restarts it), and any a killed run left;
    nothing to do when it does not run."""
    lifecycle_dir = Path(lifecycle_dir).resolve()
    if not lifecycle_dir.is_dir():
        return
    deadline = time.monotonic() + timeout_s
    with hostservice.locked(lifecycle_dir):
        pids = [p for p in (supervisor_pid(lifecycle_dir), service_pid(lifecycle_dir)) if p]
        hostservice.terminate(pids, pids, deadline, lambda pid: hostservice.ours(pid, lifecycle_dir, _MODULE))
        for name in (SUPERVISOR_PID, SERVICE_PID):
            (lifecycle_dir / name).unlink(missing_ok=True)
        hostservice.reap(lifecycle_dir, (_MODULE,), timeout_s=max(1.0, deadline - time.monotonic()))


def supervise(lifecycle_dir: Path) -> int:
    """Run the service and restart it (with backoff) whenever it dies, until SIGTERM."""
    return hostservice.supervise(lifecycle_dir, SUPERVISOR_PID, lambda: [_MODULE, "serve", str(lifecycle_dir)],
                                 "vdesk.lifecycle service")


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
    return hostservice.detach(lambda: supervise(lifecycle_dir), lambda: supervisor_pid(lifecycle_dir) is not None)


if __name__ == "__main__":
    sys.exit(main())
