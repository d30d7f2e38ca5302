"""The QuotaRecord provider, on a real directory: create, update and delete touch this stack's record only, a
refresh reads the host's file, and an older `up`'s program-written record is taken over."""
from __future__ import annotations

import json
import stat

from components.lifecycle import quotas
from components.resources.quota_record import QuotaRecordProvider

GiB = 1024 ** 3
ANN = {"users": ["ann"], "groups": ["staff"]}


def _inputs(lifecycle_dir, stack="team", quota=None, desktops=None):
    body = quotas.record_body(quota if quota is not None else {"users": {"ann": {"desktops": 2, "memory": 8 * GiB}}},
                              desktops if desktops is not None else {f"{stack}-ann": ANN})
    checked = QuotaRecordProvider().check({}, {"lifecycle_dir": str(lifecycle_dir), "stack": stack, **body})
    assert checked.failures == []
    return checked.inputs


def _files(lifecycle_dir):
    return sorted(p.name for p in (lifecycle_dir / quotas.QUOTAS_DIR).iterdir())


def test_create_update_and_delete_touch_only_this_stacks_record(tmp_path):
    provider = QuotaRecordProvider()
    quotas.record(tmp_path, "other", {"groups": {"staff": {"desktops": 1}}}, {"other-bob": {"users": ["bob"]}})
    theirs = (tmp_path / "quotas" / "other.json").read_bytes()

    inputs = _inputs(tmp_path)
    created = provider.create(inputs)
    path = tmp_path / "quotas" / "team.json"
    assert created.id == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert quotas.records(tmp_path)["team"] == {"quotas": {"users": {"ann": {"desktops": 2, "memory": 8 * GiB}},
                                                           "groups": {}},
                                                "desktops": {"team-ann": ANN}}

    news = _inputs(tmp_path, quota={}, desktops={"team-ann": ANN, "team-cy": {"users": ["cy"]}})
    assert provider.diff(created.id, created.outs, news).replaces == []
    provider.update(created.id, created.outs, news)
    assert quotas.records(tmp_path)["team"] == {"quotas": {"users": {}, "groups": {}},
                                                "desktops": {"team-ann": ANN,
                                                             "team-cy": {"users": ["cy"], "groups": []}}}

    provider.delete(created.id, news)
    assert _files(tmp_path) == ["other.json"]
    assert (tmp_path / "quotas" / "other.json").read_bytes() == theirs, "another stack's record is untouched"
    provider.delete(created.id, news)          # already gone: quietly fine
    assert _files(tmp_path) == ["other.json"]


def test_create_takes_over_the_record_an_older_up_wrote(tmp_path):
    quotas.record(tmp_path, "team", {"users": {"ann": {"desktops": 5}}}, {"team-old": {"users": ["ann"]}})
    inputs = _inputs(tmp_path)
    QuotaRecordProvider().create(inputs)
    assert _files(tmp_path) == ["team.json"]
    assert quotas.recorded(tmp_path, "team") == {k: inputs[k] for k in ("quotas", "desktops")}


def test_a_refresh_reads_the_hosts_file(tmp_path):
    provider = QuotaRecordProvider()
    inputs = _inputs(tmp_path)
    created = provider.create(inputs)
    # as the engine hands state back: every number a float
    floats = json.loads(json.dumps(created.outs).replace(f"{8 * GiB}", f"{8 * GiB}.0"))
    read = provider.read(created.id, floats)
    assert read.id == created.id
    assert not provider.diff(created.id, read.outs, inputs).changes, "an untouched record is no change"

    (tmp_path / "quotas" / "team.json").write_text("not json")
    assert provider.diff(created.id, provider.read(created.id, created.outs).outs, inputs).changes, \
        "a record that does not read is written again by the next up"

    (tmp_path / "quotas" / "team.json").unlink()
    assert provider.read(created.id, created.outs).id == "", "a removed record is gone: the next up makes it"


def test_a_new_record_is_written_before_the_old_one_goes(tmp_path):
    provider = QuotaRecordProvider()
    olds = _inputs(tmp_path, stack="team")
    diff = provider.diff("id", olds, _inputs(tmp_path, stack="renamed"))
    assert diff.replaces == ["stack"] and diff.delete_before_replace is False


def test_a_preview_writes_nothing(tmp_path):
    inputs = _inputs(tmp_path)                  # what a preview runs: check and diff, never create
    QuotaRecordProvider().diff("id", inputs, _inputs(tmp_path, quota={}))
    assert not any(tmp_path.iterdir())


def test_check_refuses_what_is_not_a_stack_name(tmp_path):
    failures = QuotaRecordProvider().check({}, {"lifecycle_dir": str(tmp_path), "stack": "../x", "quotas": {},
                                                "desktops": {}}).failures
    assert [f.property for f in failures] == ["stack"]
    failures = QuotaRecordProvider().check({}, {"lifecycle_dir": str(tmp_path)}).failures
    assert sorted(f.property for f in failures) == ["desktops", "quotas", "stack"]
