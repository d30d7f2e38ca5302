"""Catch a test that starts a guest without the `guests` marker.

Under `make test` (xdist, two workers) only tests marked `guests` may run QEMU guests:
they run one after another in one worker, and the other worker runs everything else
beside them. An unmarked test that boots a guest would quietly put two TCG guests on this
machine's two cores at once. This watcher looks, while an unmarked test runs, for QEMU
guest processes (`-name guest=...`; not libvirt's capability probes, and not LXC
containers, which run natively) whose command line names this worker's temporary
directory, where every test's libvirtd keeps its state, and fails that test, naming the
marker to add.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil

GUEST_PROGRAM = "qemu-system"
GUEST_ARGUMENT = "-name guest="      # a domain; libvirt's capability probes run with `-machine none`


def guest_processes(marker: str) -> list[str]:
    """`pid comm` of running QEMU guests whose command line contains marker."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        name, argv = proc.info["name"] or "", proc.info["cmdline"] or []
        cmdline = " ".join(argv)
        if name.startswith(GUEST_PROGRAM) and GUEST_ARGUMENT in cmdline and marker in cmdline:
            found.append(f"{proc.pid} {name}")
    return found


class GuestWatch:
    """A daemon thread that records guest processes seen while an unmarked test runs."""

    def __init__(self, marker: Path, poll_s: float = 0.25):
        self.marker = str(marker)
        self.poll_s = poll_s
        self.current: str | None = None
        self.seen: dict[str, dict[str, None]] = {}      # per test, the processes in the order first seen
        threading.Thread(target=self._run, name="guest-watch", daemon=True).start()

    def watch(self, nodeid: str | None) -> None:
        """Start watching for nodeid (None: stop)."""
        self.current = nodeid

    def _run(self) -> None:
        while True:
            time.sleep(self.poll_s)
            nodeid = self.current
            if nodeid is None:
                continue
            found = guest_processes(self.marker)
            if found and nodeid == self.current:
                self.seen.setdefault(nodeid, {}).update(dict.fromkeys(found))

    def take(self, nodeid: str) -> list[str]:
        """The guest processes seen during nodeid (and forget them)."""
        return list(self.seen.pop(nodeid, {}))
