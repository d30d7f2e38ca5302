"""Opening a sleeping desktop from the portal: it is woken behind a "waking" page, which opens it once it runs.

The wake runs after the page is sent (its managed save may take a while to load); the page asks the
desktop's state each second (waking.js, a file of the portal's own: its CSP allows no inline script) and
posts the Open form again when it runs, which then gives the console link as for any running desktop.
"""
from __future__ import annotations

import logging

import libvirt

from ..lifecycle import actions as idling
from .inventory import connect

log = logging.getLogger("vdesk.portal")


def wake(uri: str, name: str, user: str) -> None:
    """Wake the desktop (a second request while it wakes finds it running and does nothing)."""
    try:
        with connect(uri) as conn:
            how = idling.wake(conn, name)
    except libvirt.libvirtError as exc:
        log.warning("wake user=%s desktop=%s failed: %s", user, name, exc.get_error_message())
        return
    log.info("wake user=%s desktop=%s how=%s", user, name, how)
