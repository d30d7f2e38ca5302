"""The decision table: active, warn once `warn` before acting, wait, act, and unknown when input cannot be seen."""
import pytest

from components.lifecycle.decision import Reading, decide, span
from components.lifecycle.policy import IdlePolicy

POLICY = IdlePolicy(after="30m", warn="5m")
NOW = 1_000_000.0
MIN = 60


def ago(minutes, source="console"):
    return Reading(source, NOW - minutes * MIN)


@pytest.mark.parametrize("readings, warned_ago, verdict", [
    ([ago(1)], None, "active"),
    ([ago(24.9)], None, "active"),                       # before after - warn: nothing yet
    ([ago(25)], None, "warn"),                           # warn `warn` before acting
    ([ago(26)], 1, "wait"),                              # warned once, not again
    ([ago(30)], 5, "act"),                               # after, and warned `warn` ago
    ([ago(40)], None, "warn"),                           # service was away: warn first, never act unwarned
    ([ago(40)], 2, "wait"),                              # ... and give the whole `warn` after the warning
    ([ago(40)], 5, "act"),
    ([ago(40), ago(2, "ssh")], None, "active"),          # the most recent input of any source counts
    ([ago(40), ago(27, "graphical")], None, "warn"),
    ([ago(3)], 10, "active"),                            # input after the warning: it no longer holds
    ([ago(40), Reading("graphical", None)], 5, "act"),   # a source that saw no input adds nothing
    ([ago(40), Reading("guest", None, known=False, detail="agent down")], 5, "unknown"),
    ([ago(1), Reading("guest", None, known=False)], None, "unknown"),
    ([Reading("console", None)], None, "unknown"),       # no time at all: nothing to measure from
    ([], None, "unknown"),
])
def test_decision_table(readings, warned_ago, verdict):
    warned_at = None if warned_ago is None else NOW - warned_ago * MIN
    assert decide(POLICY, readings, NOW, warned_at).verdict == verdict


def test_a_warning_before_the_last_input_does_not_count():
    """Warned 29 min ago, input 28 min ago: the warning was answered; idle again since, so it is warned anew."""
    decision = decide(POLICY, [ago(28)], NOW, warned_at=NOW - 29 * MIN)
    assert decision.verdict == "warn"


def test_reasons_name_the_source_and_the_time():
    decision = decide(POLICY, [ago(31, "ssh"), ago(45)], NOW, warned_at=NOW - 6 * MIN)
    assert decision.verdict == "act"
    assert decision.reason == "no input for 31 min (last: ssh), warned 6 min ago"
    assert decision.last.source == "ssh" and decision.idle_for == 31 * MIN
    blind = decide(POLICY, [Reading("guest", None, known=False, detail="guest agent: not responding")], NOW, None)
    assert blind.reason == "cannot see input from guest (guest agent: not responding)"


def test_input_in_the_future_is_input_now():
    """A guest clock ahead of the host's must not make idleness negative."""
    decision = decide(POLICY, [Reading("graphical", NOW + 30)], NOW, None)
    assert (decision.verdict, decision.idle_for) == ("active", 0.0)


@pytest.mark.parametrize("seconds, text", [(5, "5 s"), (90, "1.5 min"), (300, "5 min"), (1890, "31.5 min")])
def test_span(seconds, text):
    assert span(seconds) == text
