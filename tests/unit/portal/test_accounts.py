"""The stacks' account records: hashes only, 0600, and nothing but a stack's own name."""
from __future__ import annotations

import json
import stat

import pytest

from components.cloudinit.passwords import MIN_ROUNDS, hash_password
from components.portal import accounts


def test_a_record_is_private_and_holds_no_password(tmp_path):
    crypt = hash_password("s3cret-pw", rounds=MIN_ROUNDS)
    path = accounts.publish(tmp_path, "team", {"team-ada": ["ada"]}, {"ada": crypt})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "s3cret-pw" not in path.read_text()
    [record] = accounts.load(tmp_path)
    assert record.desktops_of("ada") == ["team-ada"] and record.desktops_of("grace") == []
    assert accounts.verify([record], "ada", "s3cret-pw") == ["team"]
    assert accounts.verify([record], "ada", "wrong") == [] and accounts.verify([record], "grace", "s3cret-pw") == []


def test_a_plaintext_password_is_never_written(tmp_path):
    with pytest.raises(accounts.AccountError, match="never a password"):
        accounts.publish(tmp_path, "team", {"team-ada": ["ada"]}, {"ada": "s3cret-pw"})
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("stack", ["../etc", "a/b", "", "-x"])
def test_a_record_is_named_for_a_stack_only(tmp_path, stack):
    with pytest.raises(accounts.AccountError):
        accounts.publish(tmp_path, stack, {}, {})


def test_a_record_that_names_another_stack_or_holds_a_password_is_skipped(tmp_path):
    crypt = hash_password("pw", rounds=MIN_ROUNDS)
    accounts.publish(tmp_path, "team", {"team-ada": ["ada"]}, {"ada": crypt})
    folder = tmp_path / accounts.ACCOUNTS_DIR
    (folder / "lab.json").write_text(json.dumps({"stack": "team", "desktops": {}, "hashes": {}}))
    (folder / "odd.json").write_text(json.dumps({"stack": "odd", "desktops": {}, "hashes": {"ada": "pw"}}))
    (folder / "bad.json").write_text("{")
    assert [r.stack for r in accounts.load(tmp_path)] == ["team"]
    accounts.withdraw(tmp_path, "team")
    assert accounts.load(tmp_path) == []
