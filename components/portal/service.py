"""The portal as a service of an embedded host: started detached beside its console gateway, found, stopped.

It lives in the host's state dir (`<host>/portal/`: settings, session key, accounts, runtime record, log).
Unlike the gateway it has no supervisor yet: a portal that died is started again by the next
ensure_running (`up`).
"""
from __future__ import annotations

import contextlib
import dataclasses
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
from urllib.parse import urlsplit

from ..errors import VdeskError
from ..processes import alive, command_line
from .. import rootexec
from .serve import RUNTIME_FILE, SETTINGS_FILE
from .settings import PortalSettings

log = logging.getLogger(__name__)

LOG_FILE = "portal.log"
_SERVE = f"{__package__}.serve"      # components.* or vdesk.*
_POLL_S = 0.1
_STOP_GRACE_S = 5.0


class PortalError(VdeskError):
    """The portal could not be started or stopped."""


def _ours(pid: int, portal_dir: Path) -> bool:
    """The pid is this host's portal (a runtime record can outlive a reboot and name someone else's pid)."""
    cmdline = command_line(pid) or []
    return alive(pid) and _SERVE in cmdline and str(portal_dir) in cmdline


def runtime(portal_dir: Path) -> dict | None:
    """What the running portal recorded (pid, url), or None when it does not run."""
    try:
        info = json.loads((Path(portal_dir) / RUNTIME_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if _ours(int(info.get("pid", 0)), Path(portal_dir).resolve()) else None


def base_url(portal_dir: Path) -> str | None:
    info = runtime(portal_dir)
    return info["url"] if info else None


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(parts.hostname, parts.hostname)
    try:
        with socket.create_connection((host, parts.port), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _locked(portal_dir: Path):
    portal_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(portal_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_running(portal_dir: Path, settings: PortalSettings, *, libvirt_uri: str, host: str,
                   console_dir: Path | None, timeout_s: float = 20) -> str:
    """Start the host's portal unless it runs with these settings already; returns its base URL."""
    portal_dir = Path(portal_dir).resolve()
    spec = {"settings": dataclasses.asdict(settings), "libvirt_uri": libvirt_uri, "host": host,
            "console_dir": str(console_dir) if console_dir else None}
    spec = json.loads(json.dumps(spec))          # as the file reads back (tuples are lists there)
    with _locked(portal_dir):
        path = portal_dir / SETTINGS_FILE
        info = runtime(portal_dir)
        if path.exists() and json.loads(path.read_text()) == spec and info and _answers(info["url"]):
            return info["url"]
        _stop(portal_dir, time.monotonic() + _STOP_GRACE_S)
        path.write_text(json.dumps(spec, indent=2) + "\n")
        # Like the gateway, the portal runs on as root after this run: it imports a root-owned copy of
        # vdesk's code, never the checkout (components/rootexec.py).
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "PYTHONPATH": rootexec.install_package(), "PYTHONDONTWRITEBYTECODE": "1"}
        with open(portal_dir / LOG_FILE, "a") as out:
            proc = subprocess.Popen([sys.executable, "-m", _SERVE, str(portal_dir)],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd="/", start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            info = runtime(portal_dir)
            if info and _answers(info["url"]):
                log.info("portal of host %s: %s", host, info["url"])
                return info["url"]
            if proc.poll() is not None or time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                tail = "\n".join((portal_dir / LOG_FILE).read_text(errors="replace").splitlines()[-20:])
                raise PortalError(f"the portal did not start\n--- {portal_dir / LOG_FILE} (tail) ---\n{tail}")
            time.sleep(_POLL_S)


def _stop(portal_dir: Path, deadline: float) -> None:
    info = runtime(portal_dir)
    if info:
        pid = int(info["pid"])
        os.kill(pid, signal.SIGTERM)         # uvicorn finishes the requests in flight, then exits
        while _ours(pid, portal_dir):
            if time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                break
            time.sleep(_POLL_S)
    (portal_dir / RUNTIME_FILE).unlink(missing_ok=True)


def stop(portal_dir: Path, timeout_s: float = 10) -> None:
    """Stop the host's portal (its sessions end with it); nothing to do when it does not run."""
    portal_dir = Path(portal_dir).resolve()
    if portal_dir.is_dir():
        with _locked(portal_dir):
            _stop(portal_dir, time.monotonic() + timeout_s)
