"""The idle policy: durations in the project's words, defaults, bounds, and its home in the domain's metadata."""
import pytest
from pydantic import ValidationError

from components.lifecycle.policy import DEFAULT_AFTER_S, DEFAULT_WARN_S, IdlePolicy, policy_of, set_policy


def test_defaults_are_valid_and_suspend():
    policy = IdlePolicy()
    assert (policy.after, policy.action, policy.warn) == (DEFAULT_AFTER_S, "suspend", DEFAULT_WARN_S)


@pytest.mark.parametrize("given, expected", [
    ({"after": "30m", "warn": "5m"}, (1800, "suspend", 300)),
    ({"after": "2h", "action": "shutdown"}, (7200, "shutdown", DEFAULT_WARN_S)),
    ({"after": 90, "warn": "20s"}, (90, "suspend", 20)),
    ({"after": "1d", "warn": "1h"}, (86400, "suspend", 3600)),
])
def test_durations_parse_like_the_rest_of_the_stack(given, expected):
    policy = IdlePolicy(**given)
    assert (policy.after, policy.action, policy.warn) == expected


@pytest.mark.parametrize("given, field, words", [
    ({"after": "10s", "warn": "5s"}, "after", "1 minute to 30 days"),
    ({"after": "31d"}, "after", "1 minute to 30 days"),
    ({"after": "soon"}, "after", "not a duration"),
    ({"after": True}, "after", "not a duration"),
    ({"after": "5m", "warn": "5s"}, "warn", "at least 10 s"),
    ({"after": "5m", "warn": "5m"}, None, "must be shorter than after"),
    ({"after": "5m", "warn": "1h"}, None, "must be shorter than after"),
    ({"action": "hibernate"}, "action", "'suspend' or 'shutdown'"),
    ({"after": "30m", "idle": "5m"}, "idle", "Extra inputs are not permitted"),
])
def test_bad_policies_name_the_field(given, field, words):
    with pytest.raises(ValidationError) as caught:
        IdlePolicy(**given)
    errors = caught.value.errors()
    assert any(words in e["msg"] for e in errors), errors
    if field:
        assert any(e["loc"] == (field,) for e in errors), errors


def test_schema_describes_the_fields_for_editors():
    schema = IdlePolicy.model_json_schema()
    assert set(schema["properties"]) == {"after", "action", "warn"}
    assert schema["properties"]["action"]["enum"] == ["suspend", "shutdown"]


def test_metadata_round_trip():
    policy = IdlePolicy(after="45m", action="shutdown", warn="2m")
    assert IdlePolicy.from_metadata(policy.to_metadata()) == policy


def test_policy_travels_with_the_domain_through_a_managed_save(conn):
    dom = conn.lookupByName("test")
    assert policy_of(dom) is None
    policy = IdlePolicy(after="20m", warn="1m")
    set_policy(dom, policy)
    assert policy_of(dom) == policy
    dom.managedSave(0)
    assert policy_of(dom) == policy        # the persistent config has it
    dom.create()
    assert policy_of(dom) == policy        # and so does the restored live domain
    set_policy(dom, None)
    assert policy_of(dom) is None
