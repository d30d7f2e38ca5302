"""Peak memory of the processes a Pulumi run is made of, sampled from /proc while the run goes on.

A `tools/vdesk up` is a tree of processes: the front door (bash and a few short
Python helpers), the engine (`pulumi`), the program (the Go language host and
the Python process that runs __main__.py) and the providers (the dynamic-provider
server, a Python process started through pulumi-resource-pulumi-python).  A
thread lists /proc every `interval` seconds, follows parent links from the run's
root pid, and keeps each process's VmHWM (its own peak RSS, kept by the kernel)
as last read.  A class's peak is the largest sum, over the samples, of the
peaks of the class's processes alive at that sample (so the front door's short
`pulumi stack export` and the `pulumi up` after it never count together).  What a process adds in the last interval before it exits
is missed.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

CLASSES = ("engine", "program", "provider", "frontdoor")


def classify(comm: str, cmdline: list[str]) -> str:
    """engine | program | provider | frontdoor, from a process's name and command line."""
    joined = " ".join(cmdline)
    if comm == "pulumi":
        return "engine"
    if "dynamic_server" in joined or "pulumi.dynamic" in joined or "pulumi-resource-pulumi-python" in joined:
        return "provider"
    if comm.startswith("pulumi-language") or "pulumi-language-python-exec" in joined:
        return "program"
    return "frontdoor"


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode(errors="replace")
    except OSError:
        return None


def _ppid_and_comm(pid: int) -> tuple[int, str] | None:
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    # pid (comm) state ppid ...; comm may hold spaces and parentheses: split at the last ')'
    head, _, rest = stat.rpartition(")")
    comm = head.partition("(")[2]
    return int(rest.split()[1]), comm


def _name_and_hwm(pid: int) -> tuple[str, int] | None:
    """(Name, VmHWM KiB) from /proc/<pid>/status; Name follows an exec."""
    status = _read(f"/proc/{pid}/status")
    if not status:
        return None
    name, hwm = "", 0
    for line in status.splitlines():
        if line.startswith("Name:"):
            name = line.split(None, 1)[1].strip() if len(line.split()) > 1 else ""
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
            break
    return name, hwm


@dataclass
class Seen:
    pid: int
    cls: str
    comm: str
    first_s: float
    last_s: float = 0.0
    hwm_kib: int = 0
    gone: bool = False     # exited: never read again (its pid may be reused)


@dataclass
class Watch:
    """Processes seen below one root pid, and when."""

    root: int
    started: float = field(default_factory=time.monotonic)
    procs: dict[int, Seen] = field(default_factory=dict)
    peaks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))

    def peaks_kib(self) -> dict[str, int]:
        return dict(self.peaks)

    def biggest(self, cls: str) -> Seen | None:
        return max((p for p in self.procs.values() if p.cls == cls), key=lambda p: p.hwm_kib, default=None)

    def first_seen(self, cls: str) -> list[Seen]:
        return sorted((p for p in self.procs.values() if p.cls == cls), key=lambda p: p.first_s)


class ProcWatcher:
    """`with ProcWatcher(pid, on_new=...) as w:` samples the tree below pid until the block ends."""

    def __init__(self, root: int, interval: float = 0.05, on_new=None):
        self.watch = Watch(root)
        self.interval, self.on_new = interval, on_new
        self._stop = threading.Event()
        self._other: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="procwatch", daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self.watch

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> None:
        now = time.monotonic() - self.watch.started
        try:
            pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
        except OSError:
            return
        tree = {self.watch.root} | set(self.watch.procs)
        parents: dict[int, tuple[int, str]] = {}
        for pid in pids:
            if pid in tree or pid in self._other:
                continue
            got = _ppid_and_comm(pid)
            if got is not None:
                parents[pid] = got
        # a process is ours when its parent is; a parent outside the tree never adopts into it
        changed = True
        while changed:
            changed = False
            for pid, (ppid, comm) in list(parents.items()):
                if ppid in tree:
                    cmdline = (_read(f"/proc/{pid}/cmdline") or "").split("\0")
                    seen = Seen(pid, classify(comm, cmdline), comm, first_s=now)
                    self.watch.procs[pid] = seen
                    tree.add(pid)
                    del parents[pid]
                    changed = True
                    if self.on_new:
                        self.on_new(seen, cmdline)
        for pid, (ppid, _comm) in parents.items():
            if ppid not in parents:
                self._other.add(pid)
        for pid, seen in self.watch.procs.items():
            if seen.gone:
                continue
            got = _name_and_hwm(pid)
            if got is None:
                seen.gone = True
                continue
            name, hwm = got
            if name != seen.comm:   # it exec'd (a fork of the engine or of a shell became python)
                cmdline = (_read(f"/proc/{pid}/cmdline") or "").split("\0")
                seen.cls, seen.comm = classify(name, cmdline), name
                seen.hwm_kib = 0    # the peak before the exec belonged to the parent's image
                if self.on_new:
                    self.on_new(seen, cmdline)
            seen.hwm_kib, seen.last_s = max(seen.hwm_kib, hwm), now
        alive = dict.fromkeys(CLASSES, 0)
        for seen in self.watch.procs.values():
            if not seen.gone:
                alive[seen.cls] += seen.hwm_kib
        for cls, kib in alive.items():
            self.watch.peaks[cls] = max(self.watch.peaks[cls], kib)
