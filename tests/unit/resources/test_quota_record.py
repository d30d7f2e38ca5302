"""The QuotaRecord provider: a stack's quotas are on the host exactly while the resource is, a refresh reads them
back, and only the stack's own record is touched. The program declares one per embedded host, only for a stack
that declares a quota, and whom a desktop is for goes in its portal record (Pulumi's mocks)."""
from __future__ import annotations

import json

import pulumi
import pytest

from components.lifecycle import quotas
from components.resources.quota_record import QuotaRecordProvider
from tests.unit.config.test_program import RecordingMocks, after, two_users
from tests.unit.config.test_program import golden  # noqa: F401 - a fixture
from tests.unit.portal.test_portal_publish import portal_mocks  # noqa: F401 - a fixture (a host with a portal)

GiB = 1024 ** 3
DECLARED = {"users": {"ann": {"desktops": 2, "memory": 8 * GiB}}, "groups": {"adm": {"desktops": 3}}}


def _made(lifecycle_dir, stack="team", declared=DECLARED):
    provider = QuotaRecordProvider()
    checked = provider.check({}, {"lifecycle_dir": str(lifecycle_dir), "stack": stack,
                                  "quotas": quotas.declared(declared)})
    assert checked.failures == []
    return provider, provider.create(checked.inputs)


def test_create_update_and_delete_follow_the_resource(tmp_path):
    provider, created = _made(tmp_path)
    assert created.id == str(tmp_path / "quotas" / "team.json")
    assert quotas.records(tmp_path) == {"team": DECLARED}
    news = dict(created.outs, quotas=quotas.declared({"users": {"ann": {"desktops": 1}}}))
    diff = provider.diff(created.id, created.outs, news)
    assert diff.changes is True and diff.replaces == []
    provider.update(created.id, created.outs, news)
    assert quotas.records(tmp_path) == {"team": {"users": {"ann": {"desktops": 1}}, "groups": {}}}
    assert provider.diff(created.id, created.outs, dict(created.outs, stack="lab")).replaces == ["stack"]
    provider.delete(created.id, news)
    assert not any((tmp_path / "quotas").iterdir())
    provider.delete(created.id, news)       # already gone: quietly fine


def test_numbers_the_engine_sends_as_floats_are_recorded_whole(tmp_path):
    provider, created = _made(tmp_path)
    provider.update(created.id, created.outs, dict(created.outs, quotas={"users": {"ann": {"desktops": 2.0,
                                                                                          "memory": 8.0 * GiB}}}))
    on_file = json.loads(quotas.record_path(tmp_path, "team").read_text())["quotas"]["users"]["ann"]
    assert on_file == {"desktops": 2, "memory": 8 * GiB} and {type(v) for v in on_file.values()} == {int}


def test_check_names_what_is_wrong(tmp_path):
    failures = QuotaRecordProvider().check({}, {"lifecycle_dir": str(tmp_path)}).failures
    assert sorted(f.property for f in failures) == ["quotas", "stack"]
    failures = QuotaRecordProvider().check({}, {"lifecycle_dir": str(tmp_path), "stack": "../x", "quotas": {}}).failures
    assert [(f.property, f.reason) for f in failures] == [("stack", "stack: not a stack name: '../x'")]


def test_refresh_of_an_untouched_record_shows_no_change(tmp_path):
    provider, created = _made(tmp_path)
    read = provider.read(created.id, created.outs)
    assert (read.id, read.outs) == (created.id, created.outs)
    assert provider.diff(read.id, read.outs, created.outs).changes is False


def test_refresh_of_a_removed_record_says_it_is_gone_and_up_writes_it_again(tmp_path):
    provider, created = _made(tmp_path)
    quotas.record_path(tmp_path, "team").unlink()
    assert provider.read(created.id, created.outs).id == ""
    provider.create(created.outs)
    assert quotas.records(tmp_path) == {"team": DECLARED}


@pytest.mark.parametrize("body", [{"quotas": {"users": {"ann": {"desktops": 9}}, "groups": {}}}, "{not json"])
def test_refresh_of_an_altered_or_unreadable_record_differs_so_up_rewrites_it(tmp_path, body):
    provider, created = _made(tmp_path)
    path = quotas.record_path(tmp_path, "team")
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    read = provider.read(created.id, created.outs)
    assert read.id == created.id
    assert read.outs["quotas"] == (body["quotas"] if isinstance(body, dict) else {"users": {}, "groups": {}})
    diff = provider.diff(read.id, read.outs, created.outs)
    assert diff.changes is True and diff.replaces == []
    provider.update(read.id, read.outs, created.outs)
    assert provider.read(created.id, created.outs).outs == created.outs


def test_only_its_own_stacks_record_is_touched(tmp_path):
    provider, mine = _made(tmp_path)
    _, theirs = _made(tmp_path, stack="lab", declared={"users": {"bob": {"desktops": 1}}})
    provider.update(mine.id, mine.outs, dict(mine.outs, quotas=quotas.declared(None)))
    provider.delete(mine.id, mine.outs)
    assert quotas.records(tmp_path) == {"lab": {"users": {"bob": {"desktops": 1}}, "groups": {}}}
    assert provider.read(theirs.id, theirs.outs).outs == theirs.outs


def _quotas_and_groups():
    raw = two_users(groups=["adm", "audio"])
    raw["quotas"] = {"groups": {"adm": {"desktops": 3, "memory": "8GiB"}}, "users": {"carol": {"desktops": 1}}}
    return raw


@pulumi.runtime.test
def test_a_stack_with_quotas_records_them_per_host_and_its_people_per_desktop(portal_mocks, golden):  # noqa: F811
    from components.config.loader import declare
    outputs = declare("team", _quotas_and_groups())

    def check(_):
        assert [n for n in portal_mocks.names() if n.startswith("quotas-")] == ["quotas-local"]
        record = {k: v for k, v in portal_mocks.named("quotas-local").items() if k != "__provider"}
        assert record == {"lifecycle_dir": "/state/hosts/local/lifecycle", "stack": "unit",
                          "quotas": {"groups": {"adm": {"desktops": 3, "memory": 8 * GiB}},
                                     "users": {"carol": {"desktops": 1}}}}
        assert portal_mocks.named("carol-portal")["groups"] == {"carol": ["adm", "audio"]}
        assert portal_mocks.named("alice-portal").get("groups") is None     # no group: none declared
        assert portal_mocks.named("carol-portal")["portal_dir"] == "/state/hosts/local/portal"   # its sibling

    return after(outputs, check)


@pulumi.runtime.test
def test_a_stack_without_quotas_records_none(portal_mocks, golden):  # noqa: F811
    from components.config.loader import declare
    outputs = declare("team", two_users())

    def check(_):
        assert not [n for n in portal_mocks.names() if n.startswith("quotas-")]
        assert "carol-portal" in portal_mocks.names()

    return after(outputs, check)


def test_adding_a_user_changes_neither_the_quota_record_nor_another_desktops_portal_record(
        portal_mocks, golden):  # noqa: F811
    """What each program declares, two programs apart: the second has one more user."""
    from components.config.loader import declare

    def declared(raw) -> dict:
        m = RecordingMocks()
        pulumi.runtime.set_mocks(m, project="vdesk", stack="unit", preview=False)
        pulumi.runtime.test(lambda: after(declare("team", raw), lambda _: None))()
        return {name: inputs for _t, name, inputs in m.resources}

    more = _quotas_and_groups()
    more["users"].append({"name": "dave", "profile": "desktop", "groups": ["adm"]})
    was, now = declared(_quotas_and_groups()), declared(more)
    assert now["quotas-local"] == was["quotas-local"]
    assert now["carol-portal"] == was["carol-portal"] and now["alice-portal"] == was["alice-portal"]
    assert now["dave-portal"]["groups"] == {"dave": ["adm"]}
