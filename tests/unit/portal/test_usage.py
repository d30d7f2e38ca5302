"""The portal's record of when each desktop's console was last opened."""
from __future__ import annotations

import stat

from components.portal import usage


def test_the_last_open_is_kept_per_stack_and_desktop(tmp_path):
    assert usage.last_used(tmp_path) == {}
    usage.record(tmp_path, "team", "team-ada", "ada", now=1000.0)
    usage.record(tmp_path, "team", "team-ada", "ada", now=2000.0)
    usage.record(tmp_path, "lab", "lab-ada", "ada", now=1500.0)
    assert usage.last_used(tmp_path) == {("team", "team-ada"): 2000.0, ("lab", "lab-ada"): 1500.0}
    assert stat.S_IMODE((tmp_path / usage.USED_FILE).stat().st_mode) == 0o600


def test_an_unreadable_record_starts_again_and_bad_entries_are_skipped(tmp_path):
    (tmp_path / usage.USED_FILE).write_text("{not json")
    assert usage.last_used(tmp_path) == {}
    (tmp_path / usage.USED_FILE).write_text('{"team/a": {"at": "x"}, "team/b": 5, "team/c": {"at": 7}}')
    assert usage.last_used(tmp_path) == {("team", "c"): 7.0}
    usage.record(tmp_path, "team", "d", "ada", now=9.0)
    assert usage.last_used(tmp_path)[("team", "d")] == 9.0


def test_a_time_is_shown_in_utc_to_the_minute():
    assert usage.shown(None) == "never"
    assert usage.shown(0) == "1970-01-01 00:00 UTC"
