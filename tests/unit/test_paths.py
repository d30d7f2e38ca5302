"""components/paths.py: the per-user cache and state, read as tools/paths.sh reads them, and shipped files."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from components import paths
from tests.support.project import REPO


@pytest.mark.parametrize("directory, env, expected", [
    (paths.cache_dir, {"VDESK_CACHE": "/c/vdesk", "XDG_CACHE_HOME": "/x"}, "/c/vdesk"),
    (paths.cache_dir, {"VDESK_CACHE": "", "XDG_CACHE_HOME": "/x"}, "/x/vdesk"),
    (paths.cache_dir, {"XDG_CACHE_HOME": "/x"}, "/x/vdesk"),
    (paths.cache_dir, {"XDG_CACHE_HOME": ""}, "/home/u/.cache/vdesk"),
    (paths.cache_dir, {}, "/home/u/.cache/vdesk"),
    (paths.state_dir, {"VDESK_STATE": "/s/vdesk", "XDG_STATE_HOME": "/x"}, "/s/vdesk"),
    (paths.state_dir, {"VDESK_STATE": "", "XDG_STATE_HOME": "/x"}, "/x/vdesk"),
    (paths.state_dir, {"XDG_STATE_HOME": ""}, "/home/u/.local/state/vdesk"),
    (paths.state_dir, {}, "/home/u/.local/state/vdesk"),
])
def test_the_variables_are_read_in_order(directory, env, expected, monkeypatch):
    for name in ("VDESK_CACHE", "XDG_CACHE_HOME", "VDESK_STATE", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", "/home/u")
    assert directory() == Path(expected)


def test_the_shell_and_the_code_agree(monkeypatch):
    for name in ("VDESK_CACHE", "VDESK_STATE", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", "/home/u")
    monkeypatch.setenv("XDG_CACHE_HOME", "/x/cache")
    out = subprocess.run(["bash", "-c", f'. {REPO}/tools/paths.sh && echo "$VDESK_CACHE $VDESK_STATE"'],
                         env=dict(os.environ), capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(paths.cache_dir()), str(paths.state_dir())] == ["/x/cache/vdesk", "/home/u/.local/state/vdesk"]


def test_in_a_checkout_shipped_files_are_at_its_top():
    assert paths.shipped("templates") == REPO / "templates"
    assert paths.shipped("tools/virtiofsd-ro") == REPO / "tools" / "virtiofsd-ro"
