"""The console gateway as a managed service of an embedded host: started, supervised, stopped.

Like the host's libvirtd it lives in the host's state dir (`<host>/console/`:
settings, signing key, pid files, log) and runs detached, below a small
supervisor that restarts it if it dies. It runs in the root network
namespace, so a browser on this machine reaches it; it enters the host's
namespace only to reach a display that listens on an address there.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from .. import hostservice
from ..errors import VdeskError
from ..waiting import wait_for
from .settings import NOVNC_DIR, RUNTIME_FILE, SETTINGS_FILE, ConsoleSettings
from .tokens import signing_key

log = logging.getLogger(__name__)

SUPERVISOR_PID = "supervisor.pid"
LOG_FILE = "gateway.log"
_POLL_S = hostservice.POLL_S
_SERVICE, _GATEWAY = f"{__package__}.service", f"{__package__}.gateway"   # components.* or vdesk.*
_STOP_GRACE_S = 5.0      # how long a stopping gateway gets before SIGKILL


class ConsoleError(VdeskError):
    """The console gateway could not be started, reached or stopped."""


def _ours(pid: int, console_dir: Path, module: str = _SERVICE) -> bool:
    """The pid is this host's supervisor (or `module`: its gateway). Pid files can outlive a reboot and
    name someone else, whom root must never signal."""
    return hostservice.ours(pid, console_dir, module)


def supervisor_pid(console_dir: Path) -> int | None:
    return hostservice.recorded_pid(console_dir, SUPERVISOR_PID, _SERVICE)


def runtime(console_dir: Path) -> dict | None:
    """What the running gateway recorded (pid, port, url), or None."""
    try:
        info = json.loads((console_dir / RUNTIME_FILE).read_text())
    except (OSError, ValueError):
        return None
    pid = info.get("pid") if isinstance(info, dict) else None
    return info if isinstance(pid, int) and _ours(pid, Path(console_dir).resolve(), _GATEWAY) else None


def _answers(settings: ConsoleSettings, port: int) -> bool:
    address = "127.0.0.1" if settings.bind == "0.0.0.0" else "::1" if settings.bind == "::" else settings.bind
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def _spec(settings: ConsoleSettings, libvirt_uri: str, netns: str | None) -> dict:
    """What the gateway runs with. Not how long links last: each stack's own, for the links it prints, so a
    stack's choice never restarts the host's gateway."""
    gateway_settings = {k: v for k, v in json.loads(settings.as_json()).items() if k != "link_validity_s"}
    return {"settings": gateway_settings, "libvirt_uri": libvirt_uri, "netns": netns}


def ensure_running(console_dir: Path, settings: ConsoleSettings, *, libvirt_uri: str, netns: str | None,
                   timeout_s: float = 20) -> str:
    """Start the host's gateway unless it runs with these settings already; returns its base URL."""
    if not os.path.isdir(NOVNC_DIR):
        raise ConsoleError(f"{NOVNC_DIR} is missing: install the Debian package novnc (tools/setup.sh does)")
    console_dir = Path(console_dir).resolve()
    deadline = time.monotonic() + timeout_s
    with hostservice.locked(console_dir):
        signing_key(console_dir, create=True)
        spec = _spec(settings, libvirt_uri, netns)
        path = console_dir / SETTINGS_FILE
        same = path.exists() and json.loads(path.read_text()) == spec
        info = runtime(console_dir)
        if same and supervisor_pid(console_dir) and info and _answers(settings, info["port"]):
            return info["url"]
        # A gateway that ignores its SIGTERM (websockify's handler raises inside whatever code runs, and
        # Python drops an exception raised in a finalizer) is killed after a short grace, and the new one
        # gets its own timeout_s: waiting out the whole deadline on the old one left none to start in.
        _stop(console_dir, min(deadline, time.monotonic() + _STOP_GRACE_S))
        deadline = time.monotonic() + timeout_s
        path.write_text(json.dumps(spec, indent=2) + "\n")
        (console_dir / RUNTIME_FILE).unlink(missing_ok=True)
        _launch(console_dir, deadline)

        def not_started() -> ConsoleError:
            return ConsoleError(f"the console gateway did not start\n--- {console_dir / LOG_FILE} (tail) ---\n"
                                + hostservice.tail(console_dir / LOG_FILE))

        def answering() -> str | None:
            info = runtime(console_dir)
            if info and _answers(settings, info["port"]):
                return info["url"]
            if supervisor_pid(console_dir) is None:
                raise not_started()
            return None

        return wait_for(answering, deadline - time.monotonic(), interval_s=_POLL_S, timeout_error=not_started)


def base_url(console_dir: Path) -> str | None:
    info = runtime(Path(console_dir))
    return info["url"] if info else None


def _launch(console_dir: Path, deadline: float) -> None:
    # The gateway runs on as root long after this run: it imports a root-owned copy of vdesk's code,
    # never the checkout, which another user may be able to change (components/hostservice.py).
    # The first process forks the supervisor and returns once it has written its pid.
    proc = hostservice.start([_SERVICE, "supervise", str(console_dir)], console_dir, LOG_FILE,
                             wait_s=max(1.0, deadline - time.monotonic()))
    if proc.returncode != 0:
        raise ConsoleError("the console gateway's supervisor did not start\n"
                           + hostservice.tail(console_dir / LOG_FILE))


def _stop(console_dir: Path, deadline: float) -> None:
    pid = supervisor_pid(console_dir)
    info = runtime(console_dir)
    pids = [p for p in (pid, info and int(info["pid"])) if p]
    # The supervisor stops its gateway, which ends its sessions; without one, the gateway whose supervisor died.
    hostservice.terminate([pid] if pid else pids, pids, deadline,
                          lambda p: _ours(p, console_dir) or _ours(p, console_dir, _GATEWAY))
    for name in (SUPERVISOR_PID, RUNTIME_FILE):
        (console_dir / name).unlink(missing_ok=True)
    # What a killed run left that no record names now (a gateway whose supervisor and record are gone).
    hostservice.reap(console_dir, (_SERVICE, _GATEWAY), timeout_s=max(1.0, deadline - time.monotonic()))


def stop(console_dir: Path, timeout_s: float = 10) -> None:
    """Stop the host's gateway (and every session it serves); nothing to do when it does not run."""
    console_dir = Path(console_dir).resolve()
    if console_dir.is_dir():
        with hostservice.locked(console_dir):
            _stop(console_dir, time.monotonic() + timeout_s)


def supervise(console_dir: Path) -> int:
    """Run the gateway and restart it (with backoff) whenever it dies, until SIGTERM."""
    # The supervisor binds the port and keeps it while its gateway restarts, so no other local user can
    # take it in between and answer the links already printed with a page of their own.
    from . import gateway              # (only the supervisor runs it: `up` only starts and finds it)
    listening = gateway.listen(console_dir, ConsoleSettings(**json.loads((console_dir / SETTINGS_FILE).read_text())
                                                            ["settings"]))
    try:
        return hostservice.supervise(console_dir, SUPERVISOR_PID,
                                     lambda: [_GATEWAY, str(console_dir), f"--listening-fd={listening.fileno()}"],
                                     "vdesk.console gateway", pass_fds=(listening.fileno(),))
    finally:
        listening.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vdesk-console-service")
    parser.add_argument("action", choices=("supervise", "stop", "status"))
    parser.add_argument("console_dir", type=Path)
    args = parser.parse_args(argv)
    if args.action == "supervise":
        console_dir = args.console_dir.resolve()
        # Returns once the supervisor's pid file exists, so ensure_running finds it.
        return hostservice.detach(lambda: supervise(console_dir), lambda: supervisor_pid(console_dir) is not None)
    if args.action == "stop":
        stop(args.console_dir)
    print(json.dumps(runtime(args.console_dir.resolve())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
