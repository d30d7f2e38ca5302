"""Checked at preview against a real host's qemu (the integration tier's own libvirtd; no guest runs):
a machine type the host's qemu does not have is named at the field that asks for it."""
from __future__ import annotations

import pytest

from components.config import against_host
from components.config.resolve import parse
from components.host.resolve import ResolvedHost

pytestmark = pytest.mark.integration


def _stack(machine: str) -> dict:
    return {"hosts": {"local": {"uri": "embedded", "accelerator": "tcg"}},
            "pools": {"main": {"host": "local"}},
            "networks": {"lan": {"host": "local", "cidr": "10.79.0.0/24"}},
            "images": {"debian12": {"golden": "debian12"}},
            "profiles": {"std": {"pool": "main", "network": "lan", "image": "debian12", "machine": machine}},
            "users": [{"name": "ada", "profile": "std"}]}


def test_a_machine_type_the_hosts_qemu_lacks_names_the_profiles_machine(own_host):
    host = ResolvedHost("local", own_host.uri, own_host.netns, "qemu", "tcg", "/pools", None)
    problems = against_host.host_problems(parse(_stack("pc-q35-1.0-no-such"), stack="unit"), {"local": host})
    assert [field for field, _ in problems] == ["profiles.std.machine"]
    assert problems[0][1].startswith("host 'local' has no machine type 'pc-q35-1.0-no-such' for qemu guests")
    for machine in ("q35", "pc"):
        assert against_host.host_problems(parse(_stack(machine), stack="unit"), {"local": host}) == []
