"""Files holding secrets (signing key, viewer files, keys) and screenshots: owner-only, never through a symlink."""
from __future__ import annotations

import os
import stat

import pytest

from components.console.tokens import KEY_FILE, Refused, signing_key
from components.console.viewer import write_private
from components.guest.screenshot import _write_atomically


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_signing_key_replaced_by_a_symlink_is_refused(tmp_path):
    known = tmp_path / "known-key"
    known.write_bytes(b"k" * 32)                     # a key the attacker knows
    (tmp_path / "console").mkdir()
    (tmp_path / "console" / KEY_FILE).symlink_to(known)
    with pytest.raises(Refused, match="Too many levels of symbolic links|not a vdesk signing key"):
        signing_key(tmp_path / "console")


def test_an_existing_signing_key_readable_by_others_is_made_the_owners_again(tmp_path):
    key = signing_key(tmp_path, create=True)
    os.chmod(tmp_path / KEY_FILE, 0o644)
    assert signing_key(tmp_path) == key and _mode(tmp_path / KEY_FILE) == 0o600


def test_a_private_file_is_never_written_through_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    (tmp_path / "desk.vv").symlink_to(victim)
    with pytest.raises(OSError):
        write_private(tmp_path / "desk.vv", "password=secret\n")
    assert victim.read_text() == "untouched\n"


def test_an_existing_private_file_is_re_moded_and_rewritten_whole(tmp_path):
    path = tmp_path / "desk.vv"
    path.write_text("a much longer old text than the new one\n")
    os.chmod(path, 0o644)
    write_private(path, "new\n")
    assert path.read_text() == "new\n" and _mode(path) == 0o600


def test_screenshots_are_the_owners_only(tmp_path):
    _write_atomically(tmp_path / "shots" / "desk.png", b"\x89PNG")
    assert _mode(tmp_path / "shots" / "desk.png") == 0o600 and _mode(tmp_path / "shots") == 0o700
    assert sorted(p.name for p in (tmp_path / "shots").iterdir()) == ["desk.png"]
