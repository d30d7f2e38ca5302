"""The decision, as a pure function: from a policy, the last input of every source and now, what to do."""
from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

from .policy import IdlePolicy

Verdict = Literal["active", "warn", "wait", "act", "unknown"]


@dataclasses.dataclass(frozen=True)
class Reading:
    """What one activity source says: the time of its last input (epoch s), None when it saw none.

    known=False: the source should have been asked and could not answer (an agent that is down);
    then nothing is done, since a desktop whose input cannot be seen may be in use.
    """

    source: str
    last_input: float | None
    known: bool = True
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    idle_for: float | None = None
    last: Reading | None = None


def span(seconds: float) -> str:
    """A duration as a person reads it: 90 s, 5 min, 31.5 min."""
    return f"{round(seconds / 60, 1):g} min" if seconds >= 60 else f"{seconds:.0f} s"


def idle_for(readings: Sequence[Reading], now: float) -> float | None:
    """How long no source has seen input; None when a source is blind or none saw any (it may be in use)."""
    if any(not r.known for r in readings):
        return None
    seen = [r.last_input for r in readings if r.last_input is not None]
    return max(0.0, now - max(seen)) if seen else None


def decide(policy: IdlePolicy, readings: Sequence[Reading], now: float, warned_at: float | None) -> Decision:
    """active: input within after-warn; warn: once, `warn` before acting; wait: warned, not yet time;
    act: no input for `after` and warned at least `warn` ago (after the last input); unknown: a source is blind."""
    blind = [r for r in readings if not r.known]
    if blind:
        return Decision("unknown", "cannot see input from " + ", ".join(
            f"{r.source} ({r.detail})" if r.detail else r.source for r in blind))
    seen = [r for r in readings if r.last_input is not None]
    if not seen:
        return Decision("unknown", "no source reports any input time")
    last = max(seen, key=lambda r: r.last_input)
    idle_for = max(0.0, now - last.last_input)
    said = f"no input for {span(idle_for)} (last: {last.source}{', ' + last.detail if last.detail else ''})"
    warned = warned_at is not None and warned_at >= last.last_input
    if idle_for < policy.after - policy.warn:
        return Decision("active", f"input {span(idle_for)} ago ({last.source})", idle_for, last)
    if not warned:
        return Decision("warn", f"{said}; {policy.action} in {span(policy.warn)} unless there is input",
                        idle_for, last)
    if idle_for >= policy.after and now - warned_at >= policy.warn:
        return Decision("act", f"{said}, warned {span(now - warned_at)} ago", idle_for, last)
    return Decision("wait", f"{said}; warned {span(now - warned_at)} ago", idle_for, last)
