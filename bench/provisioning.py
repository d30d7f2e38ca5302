"""Timed create/destroy phases, serial and with Pulumi's parallelism, plus every failure and the peak RSS.

One round = for serial and parallel: create N desktops, destroy them, then sweep
the host (anything left over is a leak and counts as a failure).  Rounds of the
two drivers alternate which goes first, so drift on a busy machine is shared.
"""
from __future__ import annotations

import gc
import resource
import statistics
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .testbed import Testbed, sweep

OPERATIONS = ("create-serial", "create-parallel", "destroy-serial", "destroy-parallel")


@dataclass
class Phase:
    seconds: float
    failures: list[str] = field(default_factory=list)


@dataclass
class DriverResult:
    """All rounds of one driver: seconds per operation, failures, memory."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPERATIONS})
    failures: dict[str, list[str]] = field(default_factory=lambda: {op: [] for op in OPERATIONS})
    peak_rss_kib: list[int] = field(default_factory=list)
    growth_kib: list[int] = field(default_factory=list)
    py_heap_peak: int = 0

    def median(self, op: str) -> float:
        return statistics.median(self.seconds[op])

    def failure_count(self) -> int:
        return sum(len(f) for f in self.failures.values())


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


class PeakRss:
    """Peak RSS within a block: Linux lets a process reset its high-water mark (clear_refs 5)."""

    def __enter__(self):
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.resettable = True
        except OSError:
            self.resettable = False  # then VmHWM is the lifetime peak: an upper bound
        self.start_kib = _status_kib("VmRSS")
        return self

    def __exit__(self, *_exc):
        self.peak_kib = _status_kib("VmHWM") if self.resettable else \
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.growth_kib = max(0, self.peak_kib - self.start_kib)


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}"


def _run(driver, action: str, names: list[str], tokens: dict, workers: int) -> Phase:
    """Apply create or destroy to every name; time it all; collect, never raise, per-desktop failures."""
    failures: list[str] = []

    def one(name):
        try:
            if action == "create":
                tokens[name] = driver.create(conn, name)
            else:
                driver.destroy(conn, name, tokens.pop(name))
        except Exception as exc:  # noqa: BLE001 — a failure is a measurement here
            failures.append(f"{action} {name}: {_describe(exc)}")

    started = time.perf_counter()
    with driver.session() as conn:
        if workers == 1:
            for name in names:
                one(name)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(one, names))
    return Phase(time.perf_counter() - started, failures)


def _create_destroy(bed: Testbed, driver, names: list[str], workers: int) -> tuple[Phase, Phase]:
    tokens: dict = {}
    created = _run(driver, "create", names, tokens, workers)
    destroyed = _run(driver, "destroy", [n for n in names if n in tokens], tokens, workers)
    destroyed.failures += [f"left behind: {what}" for what in sweep(bed)]
    return created, destroyed


def run_round(bed: Testbed, driver, result: DriverResult, count: int, workers: int, tag: str) -> None:
    """One timed round of one driver: serial then parallel, with its peak RSS."""
    with PeakRss() as rss:
        for mode, n_workers in (("serial", 1), ("parallel", workers)):
            names = [f"{driver.key}-{tag}-{mode[0]}-{i:02d}" for i in range(count)]
            created, destroyed = _create_destroy(bed, driver, names, n_workers)
            for op, phase in ((f"create-{mode}", created), (f"destroy-{mode}", destroyed)):
                result.seconds[op].append(phase.seconds)
                result.failures[op] += phase.failures
    result.peak_rss_kib.append(rss.peak_kib)
    result.growth_kib.append(rss.growth_kib)


def measure_python_heap(bed: Testbed, driver, result: DriverResult, count: int, workers: int) -> None:
    """Untimed extra parallel round under tracemalloc: peak of Python allocations alone."""
    gc.collect()
    tracemalloc.start()
    try:
        created, destroyed = _create_destroy(bed, driver, [f"{driver.key}-heap-{i:02d}" for i in range(count)],
                                             workers)
        result.py_heap_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    result.failures["create-parallel"] += created.failures
    result.failures["destroy-parallel"] += destroyed.failures
