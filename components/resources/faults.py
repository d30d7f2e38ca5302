"""Named points where the reliability tier stops a run dead, to prove that recovery needs no person.

Inert unless $VDESK_FAULT_AT names the point: then the provider writes the
marker file $VDESK_FAULT_MARKER (so the test knows the run got there) and
waits: to be killed, or (with $VDESK_FAULT_PAUSE set) until the test removes
the marker, having done something to the host meanwhile. Nothing sets these
variables outside tests.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

POINTS = ("import", "clone", "define", "ready", "destroy")


def point(name: str) -> None:
    """Stop here if the test asked for `name` (one of POINTS)."""
    if os.environ.get("VDESK_FAULT_AT") != name:
        return
    marker = os.environ.get("VDESK_FAULT_MARKER")
    if marker:
        Path(marker).write_text(f"{name} {os.getpid()}\n")
    if os.environ.get("VDESK_FAULT_PAUSE") and marker:
        while Path(marker).exists():           # the test restarts libvirtd (say), then lets the run go on
            time.sleep(0.1)
        return
    while True:                    # the test kills the whole run (SIGKILL) while it waits here
        time.sleep(3600)
