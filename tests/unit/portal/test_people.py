"""The portal's sessions: who is signed in, the console links each was given, ending a person's sessions."""
from __future__ import annotations

from components.portal.people import Sessions


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_everyone_signed_in_with_their_consoles_and_ending_one_persons_sessions():
    clock = Clock()
    sessions = Sessions(3600, clock=clock)
    ada1 = sessions.open("ada", [("team", "team-ada")], "10.0.0.1")
    clock.now += 10
    grace = sessions.open("grace", [("team", "team-grace")], "10.0.0.2")
    ada2 = sessions.open("ada", [("lab", "lab-ada")], "10.0.0.3", admin=False)
    sessions.gave_link(ada1, "team-ada", "abc123")
    sessions.gave_link(grace, "team-grace", "def456")
    sessions.gave_link("no-such-session", "team-ada", "fff000")        # forgotten, not kept
    listed = sessions.signed_in()
    assert [(p.user, p.source) for p, _ in listed] == [("ada", "10.0.0.1"), ("ada", "10.0.0.3"), ("grace", "10.0.0.2")]
    assert listed[0][1] == [("team-ada", 1010.0)] and listed[1][1] == []
    assert sessions.end_all_of("ada") == (2, [("team-ada", "abc123")])
    assert sessions.get(ada1) is None and sessions.get(ada2) is None and sessions.get(grace).user == "grace"
    assert sessions.end_all_of("ada") == (0, [])


def test_an_expired_session_is_not_listed():
    clock = Clock()
    sessions = Sessions(60, clock=clock)
    sid = sessions.open("ada", [], "10.0.0.1")
    sessions.gave_link(sid, "team-ada", "abc123")
    clock.now += 61
    assert sessions.signed_in() == [] and sessions.end_all_of("ada") == (0, [])


def test_sessions_are_kept_across_a_restart_by_the_hash_of_their_id_only(tmp_path):
    import hashlib
    import json
    import stat
    clock = Clock()
    path = tmp_path / "sessions.json"
    before = Sessions(3600, path, clock=clock)
    ada = before.open("ada", [("team", "team-ada")], "10.0.0.1")
    admin = before.open("hostadmin", [], "10.0.0.9", admin=True)
    grace = before.open("grace@example.org", [("team", "team-grace")], "10.0.0.2", email="grace@example.org")
    before.gave_link(ada, "team-ada", "abc123")
    text = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for sid in (ada, admin, grace):
        assert sid not in text
    assert before.get(ada).bind not in text
    assert set(json.loads(text)) == {hashlib.sha256(s.encode()).hexdigest() for s in (ada, grace)}

    after = Sessions(3600, path, clock=clock)                   # the portal restarted
    kept = after.get(ada)
    assert (kept.user, kept.desktops, kept.source, kept.since) == ("ada", (("team", "team-ada"),), "10.0.0.1", 1000.0)
    assert kept.bind != before.get(ada).bind and len(kept.bind) >= 43
    assert after.get(grace).email == "grace@example.org"
    assert after.get(admin) is None                            # an administrator signs in again
    assert after.end_all_of("ada") == (1, [("team-ada", "abc123")])
    after.close(grace)
    assert Sessions(3600, path, clock=clock).signed_in() == []       # signed out: off the list for good


def test_an_expired_or_unreadable_sessions_file_keeps_no_one(tmp_path, caplog):
    clock = Clock()
    path = tmp_path / "sessions.json"
    sid = Sessions(60, path, clock=clock).open("ada", [], "10.0.0.1")
    clock.now += 61
    assert Sessions(60, path, clock=clock).get(sid) is None
    path.write_text("{not json")
    assert Sessions(60, path, clock=clock).signed_in() == []
    assert "sessions.json unreadable" in caplog.text
