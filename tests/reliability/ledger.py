"""Counts of what the reliability tier tried and what came of it, printed as one summary at the end."""
from __future__ import annotations

import collections

HOSTILE = collections.Counter()     # generated, rejected, rendered_safely, unescaped
FAULTS = collections.Counter()      # scenarios, faults_injected, leaked_objects, leaked_files, unreachable
LEAKS: list[str] = []               # what leaked, named


def hostile(outcome: str) -> None:
    """One generated hostile case: 'rejected' (at preview, naming its field), 'rendered_safely' or 'unescaped'."""
    HOSTILE["generated"] += 1
    HOSTILE[outcome] += 1


def summary_lines() -> list[str]:
    lines = []
    if HOSTILE:
        lines.append(f"hostile input: {HOSTILE['generated']} cases generated, {HOSTILE['rejected']} rejected at "
                     f"preview, {HOSTILE['rendered_safely']} rendered safely, {HOSTILE['unescaped']} unescaped "
                     "values reaching XML, a shell, a path or cloud-init (must be 0)")
    if FAULTS:
        lines.append(f"faults: {FAULTS['scenarios']} scenarios run, {FAULTS['faults_injected']} faults injected, "
                     f"{FAULTS['leaked_objects']} libvirt objects and {FAULTS['leaked_files']} files leaked "
                     f"(must be 0), {FAULTS['unreachable']} desktops left unreachable (must be 0)")
    lines += [f"  leaked: {item}" for item in LEAKS]
    return lines


def export() -> dict:
    """This process's counts, for an xdist worker to hand to the controller that prints the summary."""
    return {"hostile": dict(HOSTILE), "faults": dict(FAULTS), "leaks": list(LEAKS)}


def merge(counts: dict | None) -> None:
    """Add a worker's exported counts to this process's."""
    if not counts:
        return
    HOSTILE.update(counts.get("hostile") or {})
    FAULTS.update(counts.get("faults") or {})
    LEAKS.extend(counts.get("leaks") or [])
