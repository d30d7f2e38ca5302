"""The PortalAccount provider: its record is there exactly while the resource is, and holds only hashes."""
from __future__ import annotations

import json

import pytest

from components.cloudinit.passwords import MIN_ROUNDS, hash_password
from components.portal import accounts
from components.resources.portal_account import PortalAccountProvider


def test_create_update_and_delete_follow_the_desktop(tmp_path):
    provider = PortalAccountProvider()
    crypt = hash_password("pw", rounds=MIN_ROUNDS)
    checked = provider.check({}, {"portal_dir": str(tmp_path), "stack": "team", "desktop": "team-ada",
                                  "users": ["ada"], "hashes": {"ada": crypt}})
    assert checked.failures == []
    created = provider.create(checked.inputs)
    assert created.id == "team/team-ada"
    assert accounts.verify(accounts.load(tmp_path), "ada", "pw") == [("team", "team-ada")]
    news = dict(checked.inputs, users=["ada", "grace"])
    assert provider.diff(created.id, created.outs, news).replaces == []
    provider.update(created.id, created.outs, news)
    assert accounts.load(tmp_path)[0].users == ("ada", "grace")
    provider.delete(created.id, news)
    assert accounts.load(tmp_path) == []
    provider.delete(created.id, news)       # already gone: quietly fine


def test_check_names_what_is_missing(tmp_path):
    failures = PortalAccountProvider().check({}, {"portal_dir": str(tmp_path), "users": "ada"}).failures
    assert sorted(f.property for f in failures) == ["desktop", "stack", "users"]


def _made(tmp_path, stack="team", desktop="team-ada", users=("grace", "ada"), emails=None):
    """A record created through the provider, as `up` makes it; its declaration lists users unsorted."""
    provider = PortalAccountProvider()
    crypt = hash_password("pw", rounds=MIN_ROUNDS)
    checked = provider.check({}, {"portal_dir": str(tmp_path), "stack": stack, "desktop": desktop,
                                  "users": list(users), "hashes": {"ada": crypt},
                                  "emails": emails or {"ada": "ada@example.org"}})
    assert checked.failures == []
    return provider, provider.create(checked.inputs)


def test_refresh_of_an_untouched_record_shows_no_change(tmp_path):
    provider, created = _made(tmp_path)
    read = provider.read(created.id, created.outs)
    assert read.id == created.id
    assert read.outs == created.outs
    assert provider.diff(read.id, read.outs, created.outs).changes is False


def test_refresh_of_a_removed_record_says_it_is_gone(tmp_path):
    provider, created = _made(tmp_path)
    (tmp_path / accounts.ACCOUNTS_DIR / "team" / "team-ada.json").unlink()
    read = provider.read(created.id, created.outs)
    assert read.id == ""
    # the next up creates it again
    provider.create(created.outs)
    assert accounts.recorded(tmp_path, "team", "team-ada") == accounts.declared(
        "team", "team-ada", created.outs["users"], created.outs["hashes"], created.outs["emails"])


def test_refresh_of_an_altered_record_reads_the_file_so_up_rewrites_it(tmp_path):
    provider, created = _made(tmp_path)
    path = tmp_path / accounts.ACCOUNTS_DIR / "team" / "team-ada.json"
    body = json.loads(path.read_text())
    intruder = hash_password("theirs", rounds=MIN_ROUNDS)
    body.update(users=["ada", "grace", "mallory"], hashes={"ada": body["hashes"]["ada"], "mallory": intruder},
                emails={"ada": "someone@else.example"})
    path.write_text(json.dumps(body))
    read = provider.read(created.id, created.outs)
    assert read.id == created.id
    assert read.outs["users"] == ["ada", "grace", "mallory"]
    assert read.outs["hashes"] == {"ada": created.outs["hashes"]["ada"], "mallory": intruder}
    assert read.outs["emails"] == {"ada": "someone@else.example"}
    diff = provider.diff(read.id, read.outs, created.outs)
    assert diff.changes is True and diff.replaces == []
    provider.update(read.id, read.outs, created.outs)
    assert provider.read(created.id, created.outs).outs == created.outs
    assert accounts.verify(accounts.load(tmp_path), "mallory", "theirs") == []


def test_refresh_of_an_unreadable_record_differs_from_the_declaration(tmp_path):
    provider, created = _made(tmp_path)
    (tmp_path / accounts.ACCOUNTS_DIR / "team" / "team-ada.json").write_text("{not json")
    read = provider.read(created.id, created.outs)
    assert read.id == created.id and read.outs["users"] == []
    assert provider.diff(read.id, read.outs, created.outs).changes is True


def test_only_its_own_desktops_record_is_touched(tmp_path):
    provider, mine = _made(tmp_path)
    _, other_desktop = _made(tmp_path, desktop="team-grace", users=("grace",), emails={})
    _, other_stack = _made(tmp_path, stack="lab", desktop="team-ada")
    others = {(r.stack, r.desktop): r for r in accounts.load(tmp_path) if (r.stack, r.desktop) != ("team", "team-ada")}
    assert len(others) == 2
    provider.update(mine.id, mine.outs, dict(mine.outs, users=["ada"]))
    provider.delete(mine.id, mine.outs)
    assert {(r.stack, r.desktop): r for r in accounts.load(tmp_path)} == others
    assert provider.read(other_desktop.id, other_desktop.outs).outs == other_desktop.outs
    assert provider.read(other_stack.id, other_stack.outs).outs == other_stack.outs
    assert provider.read(mine.id, mine.outs).id == ""


def test_the_record_says_whom_the_desktop_is_for_and_a_refresh_sees_groups_altered(tmp_path):
    provider = PortalAccountProvider()
    checked = provider.check({}, {"portal_dir": str(tmp_path), "stack": "team", "desktop": "team-ada",
                                  "users": ["ada", "grace"], "groups": {"ada": ["adm", "audio", "adm"]}})
    assert checked.failures == []
    created = provider.create(checked.inputs)
    assert accounts.recorded(tmp_path, "team", "team-ada").groups == {"ada": ("adm", "audio")}
    assert provider.read(created.id, created.outs).outs == created.outs          # untouched: no change
    path = tmp_path / accounts.ACCOUNTS_DIR / "team" / "team-ada.json"
    body = json.loads(path.read_text())
    body["groups"] = {"ada": ["audio"], "grace": ["adm"]}
    path.write_text(json.dumps(body))
    read = provider.read(created.id, created.outs)
    assert read.outs["groups"] == {"ada": ["audio"], "grace": ["adm"]}
    assert provider.diff(read.id, read.outs, created.outs).changes is True
    provider.update(read.id, read.outs, created.outs)
    assert accounts.recorded(tmp_path, "team", "team-ada").groups == {"ada": ("adm", "audio")}


def test_a_desktop_whose_users_have_no_group_declares_none(tmp_path):
    """As before groups were recorded, so an `up` of an older stack shows no change to its portal records."""
    provider, created = _made(tmp_path)
    assert created.outs["groups"] is None
    assert provider.read(created.id, created.outs).outs == created.outs
    assert provider.diff(created.id, {k: v for k, v in created.outs.items() if k != "groups"}, created.outs
                         ).changes is False


def test_groups_that_are_not_lists_of_names_are_refused(tmp_path):
    with pytest.raises(accounts.AccountError, match="their groups are a list of names"):
        accounts.publish(tmp_path, "team", "team-ada", ["ada"], {}, groups={"ada": "adm"})
