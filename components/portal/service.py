"""The portal as a service of an embedded host: started detached beside its console gateway, found, stopped.

It lives in the host's state dir (`<host>/portal/`: settings, session key, accounts, runtime record, log).
Unlike the gateway it has no supervisor yet: a portal that died is started again by the next
ensure_running (`up`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from .. import hostservice
from ..errors import VdeskError
from .settings import RUNTIME_FILE, SETTINGS_FILE, PortalSettings

log = logging.getLogger(__name__)

LOG_FILE = "portal.log"
_SERVE = f"{__package__}.serve"      # components.* or vdesk.*
_STOP_GRACE_S = 5.0


class PortalError(VdeskError):
    """The portal could not be started or stopped."""


def _ours(pid: int, portal_dir: Path) -> bool:
    """The pid is this host's portal (a runtime record can outlive a reboot and name someone else's pid)."""
    return hostservice.ours(pid, portal_dir, _SERVE)


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


def ensure_running(portal_dir: Path, settings: PortalSettings, *, libvirt_uri: str, host: str,
                   console_dir: Path | None, timeout_s: float = 20) -> str:
    """Start the host's portal unless it runs with these settings already; returns its base URL."""
    portal_dir = Path(portal_dir).resolve()
    spec = {"settings": dataclasses.asdict(settings), "libvirt_uri": libvirt_uri, "host": host,
            "console_dir": str(console_dir) if console_dir else None}
    spec = json.loads(json.dumps(spec))          # as the file reads back (tuples are lists there)
    with hostservice.locked(portal_dir):
        path = portal_dir / SETTINGS_FILE
        info = runtime(portal_dir)
        if path.exists() and json.loads(path.read_text()) == spec and info and _answers(info["url"]):
            return info["url"]
        _stop(portal_dir, time.monotonic() + _STOP_GRACE_S)
        path.write_text(json.dumps(spec, indent=2) + "\n")
        # Like the gateway, the portal runs on as root after this run: it imports a root-owned copy of
        # vdesk's code, never the checkout (components/hostservice.py).
        proc = hostservice.start([_SERVE, str(portal_dir)], portal_dir, LOG_FILE)
        deadline = time.monotonic() + timeout_s
        while True:
            info = runtime(portal_dir)
            if info and _answers(info["url"]):
                log.info("portal of host %s: %s", host, info["url"])
                return info["url"]
            if proc.poll() is not None or time.monotonic() >= deadline:
                proc.kill()
                raise PortalError(f"the portal did not start\n--- {portal_dir / LOG_FILE} (tail) ---\n"
                                  + hostservice.tail(portal_dir / LOG_FILE))
            time.sleep(hostservice.POLL_S)


def _stop(portal_dir: Path, deadline: float) -> None:
    """The recorded portal (uvicorn finishes the requests in flight, then exits), then any a killed run left."""
    info = runtime(portal_dir)
    if info:
        pid = int(info["pid"])
        hostservice.terminate([pid], [pid], deadline, lambda p: _ours(p, portal_dir))
    (portal_dir / RUNTIME_FILE).unlink(missing_ok=True)
    hostservice.reap(portal_dir, (_SERVE,), timeout_s=max(1.0, deadline - time.monotonic()))


def stop(portal_dir: Path, timeout_s: float = 10) -> None:
    """Stop the host's portal (its sessions end with it); nothing to do when it does not run."""
    portal_dir = Path(portal_dir).resolve()
    if portal_dir.is_dir():
        with hostservice.locked(portal_dir):
            _stop(portal_dir, time.monotonic() + timeout_s)
