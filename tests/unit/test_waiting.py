"""components/waiting.py: a condition polled until it holds, or a timeout that says what was awaited."""
from __future__ import annotations

import time

import pytest

from components.waiting import WaitTimeout, wait_for


def test_the_first_truthy_value_is_returned():
    answers = iter([None, 0, "", "10.0.0.5", "later"])
    assert wait_for(lambda: next(answers), 5, interval_s=0.01, what="an address") == "10.0.0.5"


def test_the_timeout_names_what_was_awaited_and_asks_once_more_at_the_deadline():
    calls = []
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"^the guest's address did not happen within 0.2 s$") as err:
        wait_for(lambda: calls.append(time.monotonic()), 0.2, interval_s=0.05, what="the guest's address")
    assert isinstance(err.value, TimeoutError) and err.value.timeout_s == 0.2
    assert calls[-1] - started >= 0.2 and len(calls) >= 3


def test_a_zero_timeout_still_asks_once():
    assert wait_for(lambda: "ready", 0) == "ready"


def test_the_callers_own_error_replaces_the_timeout():
    with pytest.raises(KeyError, match="gone"):
        wait_for(lambda: False, 0.05, interval_s=0.01, timeout_error=lambda: KeyError("gone"))
