"""Processes on this machine, through psutil: whether one lives, what it runs, what it started.

(Namespaces are not psutil's: their identities stay an os.stat of /proc/<pid>/ns/<kind>.)
"""
from __future__ import annotations

import psutil

_GONE = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie (one killed whose parent has not reaped it yet)."""
    if pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() not in _GONE
    except psutil.Error:
        return False


def command_line(pid: int) -> list[str] | None:
    """Its argv, or None when it is gone."""
    try:
        return psutil.Process(pid).cmdline()
    except psutil.Error:
        return None


def executable(pid: int) -> str | None:
    """The path of the program it runs, or None when it is gone (or cannot be read)."""
    try:
        return psutil.Process(pid).exe() or None
    except psutil.Error:
        return None


def children(pid: int, *, recursive: bool = False) -> list[int]:
    """The pids it started (and theirs, with recursive), [] when it is gone."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=recursive)]
    except psutil.Error:
        return []
