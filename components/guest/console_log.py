"""The last lines a guest printed on its serial console, for the error when it never became reachable.

A guest that gets no address in its wait tells nothing through the network or its agent; the kernel and
systemd still print on ttyS0. On an embedded host libvirt keeps that console in a file of vdesk's (the
domain's `console_log_file`), so the gate can say where the boot stopped instead of only that it timed out.
"""
from __future__ import annotations

import os
import re

LINES = 12                  # enough for a kernel panic's head or the last units systemd started
_READ_BYTES = 64 << 10      # the file's tail only: a guest that printed for months has rotated logs anyway
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")      # ANSI colours, cursor moves
_UNPRINTABLE = re.compile(r"[^\t\x20-\x7e\u00a0-\uffff]")


def last_lines(path: str | None, count: int = LINES) -> list[str]:
    """The last non-blank lines of the console log, without terminal escapes; [] when there is none to read
    (no log declared, or the host's files are not on this machine)."""
    if not path:
        return []
    try:
        with open(path, "rb") as f:
            start = max(0, os.fstat(f.fileno()).st_size - _READ_BYTES)
            f.seek(start)
            tail = f.read()
    except OSError:
        return []
    if start:
        tail = tail.partition(b"\n")[2]        # the first line read is only the end of one
    text = _ESCAPES.sub("", tail.decode("utf-8", errors="replace")).replace("\r", "\n")
    lines = [_UNPRINTABLE.sub("", line).rstrip() for line in text.split("\n")]
    return [line for line in lines if line.strip()][-count:]


def as_clause(path: str | None) -> str:
    """'; its serial console last printed (<path>): | ... | ...', or '' when there is nothing to show."""
    lines = last_lines(path)
    if not lines:
        return ""
    return f"; its serial console last printed ({path}):\n    " + "\n    ".join(lines)
