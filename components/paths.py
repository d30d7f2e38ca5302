"""Where vdesk keeps its files: the per-user cache and state, and the files it ships beside its code.

One home for each, so that tools/paths.sh (the shell's reading) and the code never disagree:
    cache  ${VDESK_CACHE:-${XDG_CACHE_HOME:-~/.cache}/vdesk}        rebuildable: images, indexes, schema
    state  ${VDESK_STATE:-${XDG_STATE_HOME:-~/.local/state}/vdesk}  not rebuildable: keys, journal, hosts
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _user_dir(own: str, xdg: str, fallback: tuple[str, ...]) -> Path:
    if os.environ.get(own):
        return Path(os.environ[own])
    return Path(os.environ.get(xdg) or Path.home().joinpath(*fallback)) / "vdesk"


def cache_dir() -> Path:
    """The per-user cache (everything in it can be made again)."""
    return _user_dir("VDESK_CACHE", "XDG_CACHE_HOME", (".cache",))


def state_dir() -> Path:
    """The per-user state (keys, the creation journal, the embedded hosts)."""
    return _user_dir("VDESK_STATE", "XDG_STATE_HOME", (".local", "state"))


def shipped(relative: str) -> Path:
    """A file vdesk reads or runs at run time (templates/, tools/virtiofsd-ro, the image build).

    Installed, it is package data inside the package (pyproject.toml's package-data); in a
    checkout, it is at the top of the repository beside components/.
    """
    installed = PACKAGE / relative
    return installed if installed.exists() else PACKAGE.parent / relative
