"""The desktops' account records: hashes only, 0600, and filed under the stack and desktop they name."""
from __future__ import annotations

import json
import stat

import pytest

from components.cloudinit.passwords import MIN_ROUNDS, hash_password
from components.portal import accounts


def test_a_record_is_private_and_holds_no_password(tmp_path):
    crypt = hash_password("s3cret-pw", rounds=MIN_ROUNDS)
    path = accounts.publish(tmp_path, "team", "team-ada", ["ada"], {"ada": crypt})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert "s3cret-pw" not in path.read_text()
    records = accounts.load(tmp_path)
    assert accounts.verify(records, "ada", "s3cret-pw") == [("team", "team-ada")]
    assert accounts.verify(records, "ada", "wrong") == [] and accounts.verify(records, "grace", "s3cret-pw") == []


def test_a_plaintext_password_is_never_written(tmp_path):
    with pytest.raises(accounts.AccountError, match="never a password"):
        accounts.publish(tmp_path, "team", "team-ada", ["ada"], {"ada": "s3cret-pw"})
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("stack, desktop", [("../etc", "d"), ("a/b", "d"), ("", "d"), ("team", "../x"),
                                            ("team", "")])
def test_a_record_is_filed_under_names_only(tmp_path, stack, desktop):
    with pytest.raises(accounts.AccountError):
        accounts.publish(tmp_path, stack, desktop, [], {})


def test_a_misplaced_record_or_one_with_a_password_is_skipped(tmp_path):
    crypt = hash_password("pw", rounds=MIN_ROUNDS)
    accounts.publish(tmp_path, "team", "team-ada", ["ada"], {"ada": crypt})
    folder = tmp_path / accounts.ACCOUNTS_DIR
    (folder / "lab").mkdir()
    (folder / "lab" / "lab-ada.json").write_text(json.dumps(
        {"stack": "team", "desktop": "lab-ada", "users": ["ada"], "hashes": {"ada": crypt}}))
    (folder / "team" / "odd.json").write_text(json.dumps(
        {"stack": "team", "desktop": "odd", "users": ["ada"], "hashes": {"ada": "pw"}}))
    (folder / "team" / "bad.json").write_text("{")
    assert [(r.stack, r.desktop) for r in accounts.load(tmp_path)] == [("team", "team-ada")]
    accounts.withdraw(tmp_path, "team", "team-ada")
    assert accounts.load(tmp_path) == []


def test_an_unknown_user_costs_a_hash_check_too(tmp_path, monkeypatch):
    checked = []
    monkeypatch.setattr(accounts, "verify_password", lambda pw, crypt: checked.append(crypt) or False)
    assert accounts.verify([], "nobody", "pw") == []
    assert len(checked) == 1 and checked[0].startswith("$6$rounds=100000$")
