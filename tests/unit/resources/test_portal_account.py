"""The PortalAccount provider: its record is there exactly while the resource is, and holds only hashes."""
from __future__ import annotations

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
