"""The reliability tier: hypothesis profiles (bounded in `make test`, thorough in `make reliability`).
Its summary of what was tried and what leaked is printed by tests/conftest.py, which also sees xdist's workers."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from components.guest.keys import generate_ed25519

settings.register_profile("test", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=600, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("VDESK_RELIABILITY", "test"))


def pytest_configure(config):
    config.addinivalue_line("markers", "reliability: killed runs, host faults, hostile input (tier 4)")


@pytest.fixture(scope="session")
def host_keys():
    """A real ed25519 host key pair in the form the seed templates take."""
    pair = generate_ed25519("vdesk-hostile")
    return {"ed25519_private": pair.private_openssh, "ed25519_public": pair.public_openssh}
