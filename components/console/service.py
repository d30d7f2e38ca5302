"""The console gateway as a managed service of an embedded host: started, supervised, stopped.

Like the host's libvirtd it lives in the host's state dir (`<host>/console/`:
settings, signing key, pid files, log) and runs detached, below a small
supervisor that restarts it if it dies. It runs in the root network
namespace, so a browser on this machine reaches it; it enters the host's
namespace only to reach a display that listens on an address there.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from ..errors import VdeskError
from ..processes import alive, command_line
from .. import rootexec
from ..waiting import WaitTimeout, wait_for
from . import gateway
from .gateway import NOVNC_DIR, RUNTIME_FILE, SETTINGS_FILE
from .settings import ConsoleSettings
from .tokens import signing_key

log = logging.getLogger(__name__)

SUPERVISOR_PID = "supervisor.pid"
LOG_FILE = "gateway.log"
_POLL_S = 0.1
_SERVICE, _GATEWAY = f"{__package__}.service", f"{__package__}.gateway"   # components.* or vdesk.*
_STOP_GRACE_S = 5.0      # how long a stopping gateway gets before SIGKILL
_MAX_BACKOFF_S = 30.0


class ConsoleError(VdeskError):
    """The console gateway could not be started, reached or stopped."""


def _ours(pid: int, console_dir: Path, module: str = _SERVICE) -> bool:
    """The pid is this host's supervisor (or `module`: its gateway). Pid files can outlive a reboot and
    name someone else, whom root must never signal."""
    cmdline = command_line(pid) or []
    return alive(pid) and module in cmdline and str(console_dir) in cmdline


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def supervisor_pid(console_dir: Path) -> int | None:
    pid = _read_pid(console_dir / SUPERVISOR_PID)
    return pid if pid is not None and _ours(pid, console_dir) else None


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


@contextlib.contextmanager
def _locked(console_dir: Path) -> Iterator[None]:
    console_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(console_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
    with _locked(console_dir):
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
                                + _tail(console_dir / LOG_FILE))

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
    # never the checkout, which another user may be able to change (components/rootexec.py).
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "PYTHONPATH": rootexec.install_package(), "PYTHONDONTWRITEBYTECODE": "1"}
    with open(console_dir / LOG_FILE, "a") as out:
        # The first process forks the supervisor and returns once it has written its pid.
        proc = subprocess.run([sys.executable, "-m", _SERVICE, "supervise", str(console_dir)],
                              stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                              cwd="/", start_new_session=True, timeout=max(1.0, deadline - time.monotonic()))
    if proc.returncode != 0:
        raise ConsoleError(f"the console gateway's supervisor did not start\n{_tail(console_dir / LOG_FILE)}")


def _stop(console_dir: Path, deadline: float) -> None:
    pid = supervisor_pid(console_dir)
    info = runtime(console_dir)
    pids = [p for p in (pid, info and int(info["pid"])) if p]
    if pid:
        os.kill(pid, signal.SIGTERM)      # the supervisor stops its gateway, which ends its sessions
    elif info:
        os.kill(int(info["pid"]), signal.SIGTERM)   # a gateway whose supervisor died
    try:
        wait_for(lambda: not any(alive(p) for p in pids), deadline - time.monotonic(), interval_s=_POLL_S)
    except WaitTimeout:
        for p in pids:
            if _ours(p, console_dir) or _ours(p, console_dir, _GATEWAY):   # not a pid reused since
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
    for name in (SUPERVISOR_PID, RUNTIME_FILE):
        (console_dir / name).unlink(missing_ok=True)


def stop(console_dir: Path, timeout_s: float = 10) -> None:
    """Stop the host's gateway (and every session it serves); nothing to do when it does not run."""
    console_dir = Path(console_dir).resolve()
    if console_dir.is_dir():
        with _locked(console_dir):
            _stop(console_dir, time.monotonic() + timeout_s)


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def supervise(console_dir: Path) -> int:
    """Run the gateway and restart it (with backoff) whenever it dies, until SIGTERM."""
    (console_dir / SUPERVISOR_PID).write_text(f"{os.getpid()}\n")
    stopping = False
    child: subprocess.Popen | None = None

    def on_signal(_sig, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.terminate()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # The supervisor binds the port and keeps it while its gateway restarts, so no other local user can
    # take it in between and answer the links already printed with a page of their own.
    listening = gateway.listen(console_dir, ConsoleSettings(**json.loads((console_dir / SETTINGS_FILE).read_text())
                                                            ["settings"]))
    backoff = 1.0
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, "-m", _GATEWAY, str(console_dir),
                                  f"--listening-fd={listening.fileno()}"],
                                 stdin=subprocess.DEVNULL, pass_fds=[listening.fileno()])
        code = child.wait()
        if stopping:
            break
        backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, _MAX_BACKOFF_S)
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} vdesk.console gateway exited ({code}); "
              f"restarting in {backoff:g}s", flush=True)
        until = time.monotonic() + backoff
        while not stopping and time.monotonic() < until:
            time.sleep(_POLL_S)
    listening.close()
    (console_dir / SUPERVISOR_PID).unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vdesk-console-service")
    parser.add_argument("action", choices=("supervise", "stop", "status"))
    parser.add_argument("console_dir", type=Path)
    args = parser.parse_args(argv)
    if args.action == "supervise":
        console_dir = args.console_dir.resolve()
        child = os.fork()
        if child == 0:           # detached: the caller's session and process are not its parents
            os.setsid()
            os._exit(supervise(console_dir))
        # Return once the supervisor's pid file exists, so ensure_running finds it.
        def settled() -> str | None:
            if supervisor_pid(console_dir) is not None:
                return "started"
            return "exited" if os.waitpid(child, os.WNOHANG)[0] else None

        try:
            return 0 if wait_for(settled, 10, interval_s=_POLL_S) == "started" else 1
        except WaitTimeout:
            return 1
    if args.action == "stop":
        stop(args.console_dir)
    print(json.dumps(runtime(args.console_dir.resolve())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
