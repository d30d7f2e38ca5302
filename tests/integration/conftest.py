"""The integration tier's own libvirtd: one embedded host per test session."""
from __future__ import annotations

import pytest

from components.host import embedded
from tests.support.browser import chromium


@pytest.fixture(scope="session")
def own_host(tmp_path_factory):
    host = embedded.embedded_host("itest", state_root=tmp_path_factory.mktemp("itest-state"))
    embedded.ensure_running(host)
    yield host
    embedded.stop(host, purge=True)


@pytest.fixture
def browser():
    """A headless Chromium at the portal's usual window size, for the portal's browser tests."""
    with chromium(1280, 800) as driver:
        yield driver
