"""The reliability tier: hypothesis profiles (bounded in `make test`, thorough in `make reliability`)
and the summary of what was tried and what leaked."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from components.guest.keys import generate_ed25519

from tests.reliability import ledger

settings.register_profile("test", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=600, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("VDESK_RELIABILITY", "test"))


def pytest_configure(config):
    config.addinivalue_line("markers", "reliability: killed runs, host faults, hostile input (tier 4)")


def pytest_terminal_summary(terminalreporter):
    lines = ledger.summary_lines()
    if lines:
        terminalreporter.section("vdesk reliability summary")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def host_keys():
    """A real ed25519 host key pair in the form the seed templates take."""
    pair = generate_ed25519("vdesk-hostile")
    return {"ed25519_private": pair.private_openssh, "ed25519_public": pair.public_openssh}
