"""Shared by every tier: the host policy the tests run under.

Tests make image files, pools and mounts in pytest's temporary directories, so
the policy allows those (as an administrator would allow /srv/vdesk), beside
vdesk's own cache and state. Tests of the policy itself load their own files.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def host_policy(tmp_path_factory):
    scratch = Path(tempfile.gettempdir()).resolve()
    home = Path(os.environ.get("VDESK_STATE") or Path.home() / ".local" / "state" / "vdesk").resolve()
    cache = Path(os.environ.get("VDESK_CACHE") or Path.home() / ".cache" / "vdesk").resolve()
    file = tmp_path_factory.mktemp("policy") / "policy.yaml"
    file.write_text(f"images: [{cache}/images, {scratch}]\n"
                    f"pools: [{home}/hosts, /var/lib/libvirt/images, {scratch}]\n"
                    f"shares: [{scratch}]\ncontainer_mounts: [{scratch}]\ndevices: ['/dev/*']\n")
    os.environ["VDESK_POLICY"] = str(file)
    yield file
    os.environ.pop("VDESK_POLICY", None)


@pytest.fixture(scope="session")
def remote_host(tmp_path_factory):
    """A second KVM host reached only over SSH (tests/support/remote_host.py), shared by the tests that need it."""
    from tests.support import remote_host as remote
    host = remote.start(tmp_path_factory.mktemp("remote"))
    yield host
    remote.stop(host)


_PREBUILD = None


def pytest_collection_finish(session):
    """Start building the recipe images the collected tests declare (tests/support/prebuild.py)."""
    global _PREBUILD
    if session.config.option.collectonly:
        return
    from tests.support import prebuild
    modules = list(dict.fromkeys(item.module for item in session.items if getattr(item, "module", None)))
    _PREBUILD = prebuild.start(modules)


def pytest_sessionfinish(session):
    if _PREBUILD is not None:
        _PREBUILD.stop()


def pytest_terminal_summary(terminalreporter):
    if _PREBUILD is not None:
        terminalreporter.write_line(_PREBUILD.summary())
