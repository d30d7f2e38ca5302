"""Opening a sleeping desktop from the portal: it is woken behind a "waking" page, which opens it once it runs.

The wake runs after the page is sent (its managed save may take a while to load); the page asks the
desktop's state each second (waking.js, a file of the portal's own: its CSP allows no inline script) and
posts the Open form again when it runs, which then gives the console link as for any running desktop.
"""
from __future__ import annotations

import logging
from pathlib import Path

import libvirt

from ..lifecycle import actions as idling
from ..lifecycle.quotas import QuotaExceeded, lifecycle_dir_of, refusal
from .inventory import connect

log = logging.getLogger("vdesk.portal")


def wake(uri: str, name: str, user: str, lifecycle_dir: Path | None = None) -> None:
    """Wake the desktop (a second request while it wakes finds it running and does nothing), within the host's
    quotas (checked again: the page was sent after a first check, and another desktop may have started since)."""
    try:
        with connect(uri) as conn:
            how = idling.wake(conn, name, lifecycle_dir)
    except libvirt.libvirtError as exc:
        log.warning("wake user=%s desktop=%s failed: %s", user, name, exc.get_error_message())
        return
    except QuotaExceeded as exc:
        log.warning("wake user=%s desktop=%s refused: %s", user, name, exc)
        return
    log.info("wake user=%s desktop=%s how=%s", user, name, how)


def quota_refusal(uri: str, portal_dir: Path, name: str) -> str | None:
    """Why waking (or starting) the desktop goes beyond one of the host's quotas; None when it may."""
    with connect(uri) as conn:
        return refusal(conn, lifecycle_dir_of(portal_dir), name)
