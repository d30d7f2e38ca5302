"""Run a daemon below a process that reaps orphaned children at once.

qemu daemonises, so when it exits its zombie goes to the nearest subreaper,
normally PID 1. libvirt's destroy waits until the zombie is gone; a PID 1 that
reaps late (as in some containers, ~1.5 s) slows every destroy and every qemu
libvirtd probes at start-up. Standard library only: it runs inside the
embedded host's namespaces as a plain script.
"""
from __future__ import annotations

import ctypes
import os
import sys

_PR_SET_CHILD_SUBREAPER = 36


def main(argv: list[str]) -> int:
    if not argv:
        sys.stderr.write("usage: reaper.py COMMAND [ARGS...]\n")
        return 2
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    daemon = os.fork()
    if daemon == 0:
        os.execvp(argv[0], argv)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid == daemon:
            # Guests outlive their daemon; once we exit, PID 1 adopts them.
            return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
