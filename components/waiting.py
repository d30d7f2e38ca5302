"""One way to wait for a condition: poll it until it holds or a deadline passes.

`wait_for` returns the condition's first truthy value, so a wait can hand on what it waited
for (an address, a pid); on the deadline it raises `WaitTimeout` naming what it waited for
(or the caller's own error, from `timeout_error`). (resources/domain.py's `wait_until` is a
domain lifecycle helper that answers True/False; it polls through this one.)
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A condition did not hold within its time."""

    def __init__(self, what: str, timeout_s: float):
        super().__init__(f"{what} did not happen within {timeout_s:g} s")
        self.what, self.timeout_s = what, timeout_s


def wait_for(condition: Callable[[], T], timeout_s: float, *, interval_s: float = 0.2, what: str = "the condition",
             timeout_error: Callable[[], BaseException] | None = None) -> T:
    """Call `condition` until it returns something truthy and return that. It is asked at once, then
    every interval_s, and a last time at the deadline; then `timeout_error()` or `WaitTimeout` is raised.
    A condition that raises ends the wait with its error (a guest that stopped need not be waited out)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if value := condition():
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise timeout_error() if timeout_error is not None else WaitTimeout(what, timeout_s)
        time.sleep(min(interval_s, remaining))
