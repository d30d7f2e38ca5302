"""`up` on a host with a portal publishes each desktop's users with their seed's hashes, never a password."""
from __future__ import annotations

import dataclasses

import pulumi
import pytest
import yaml

from components.cloudinit import verify_password
from tests.unit.config.test_program import RecordingMocks, _resolved_host, _this_machine, after, two_users
from tests.unit.config.test_program import golden  # noqa: F401 - a fixture

PLAINTEXT = "correct horse battery staple"


@pytest.fixture
def portal_mocks(monkeypatch):
    m = RecordingMocks()
    pulumi.runtime.set_mocks(m, project="vdesk", stack="unit", preview=False)
    monkeypatch.setattr("components.config.loader.resolve_host", lambda h, probe_kernel: dataclasses.replace(
        _resolved_host(h, probe_kernel), console_dir="/state/hosts/local/console"))
    monkeypatch.setattr("components.host.capacity.read", _this_machine)
    return m


@pulumi.runtime.test
def test_the_portal_gets_the_seeds_hash_for_each_desktop(portal_mocks, golden):  # noqa: F811
    from components.config.loader import declare
    outputs = declare("team", two_users(password="carol-password"), config_keys={"carol-password": True},
                      secret=lambda key: pulumi.Output.secret(PLAINTEXT))

    def check(_):
        carol = portal_mocks.named("carol-portal")
        seeded = yaml.safe_load(portal_mocks.named("carol-seed")["user_data"])["users"][0]["hashed_passwd"]
        assert carol["portal_dir"] == "/state/hosts/local/portal" and carol["stack"] == "unit"
        assert carol["desktop"] == portal_mocks.named("carol-vm")["name"] and carol["users"] == ["carol"]
        assert portal_mocks.named("carol-vm")["owner"] == carol["stack"]     # what the portal checks it against
        assert carol["hashes"] == {"carol": seeded} and verify_password(PLAINTEXT, seeded)
        assert PLAINTEXT not in repr(carol)
        alice = portal_mocks.named("alice-portal")
        assert alice["users"] == ["alice"] and alice["hashes"] == {}

    return after(outputs, check)
