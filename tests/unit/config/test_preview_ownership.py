"""At preview, a stack that reaches for another stack's objects is refused, naming the field and the owner.

Stack `dev` (the example stack file) owns `dev-main`, `dev-lan` and the desktop `dev-dev` on libvirt's test
driver. Stack `takeover` copies its file, as in issue 23: with `vdesk:prefix: dev` and `adopt: true` on its pool,
network and user, and then with the prefix alone. Every problem is reported at once; nothing is declared.
"""
from __future__ import annotations

import pytest

from components import xmlmodel
from components.errors import InputError
from components.resources import journal
from components.resources.network import NetworkProvider
from components.resources.pool import PoolProvider
from components.resources.volume import VolumeProvider
from components.resources.ownership import stack_problems
from tests.support.providers import checked
from tests.unit.config.test_program import example_stack, golden, mocks  # noqa: F401  (fixtures)

URI = "test:///default"
OWNED = "belongs to stack 'dev'; a stack never adopts, changes or removes another stack's objects"


@pytest.fixture
def dev_stack(conn, tmp_path, monkeypatch, mocks, golden):  # noqa: F811
    """What stack dev's `up` leaves: its network (owner in its metadata), pool, disk and domain."""
    monkeypatch.setenv("VDESK_STATE", str(tmp_path / "state"))
    lan = NetworkProvider().create(checked(NetworkProvider(), {"host_uri": URI, "name": "dev-lan",
                                                               "cidr": "10.77.0.0/24", "owner": "dev"}))
    pool = PoolProvider().create(checked(PoolProvider(), {"host_uri": URI, "name": "dev-main",
                                                          "path": str(tmp_path / "dev-main"), "owner": "dev"}))
    disk = VolumeProvider().create(checked(VolumeProvider(), {"host_uri": URI, "pool": "dev-main",
                                                              "name": "dev-dev.qcow2", "format": "qcow2",
                                                              "capacity_bytes": 1024**2, "owner": "dev"}))
    dom = conn.defineXML(xmlmodel.Domain(type="test", name="dev-dev", memory_kib=65536, vcpus=1, os_type="hvm",
                                         arch="x86_64", owner=xmlmodel.Owner(stack="dev", resource="dev-dev"))
                         .to_xml())
    yield mocks
    dom.undefine()
    VolumeProvider().delete(disk.id, disk.outs)
    PoolProvider().delete(pool.id, pool.outs)
    NetworkProvider().delete(lan.id, lan.outs)


def test_a_record_of_an_object_that_is_gone_refuses_nothing(dev_stack, conn):
    """(A journal entry can outlive its object, e.g. one removed by hand: only what is there collides.)"""
    journal.note("dev", "domain", URI, "dev-gone", journal.CREATED)
    raw = _takeover()
    raw["users"][0]["name"] = "gone"
    problems = _problems(raw)
    assert not [m for _, m in problems if "dev-gone" in m]


def _takeover(**adopt):
    raw = example_stack("dev")
    raw["prefix"] = "dev"
    for section, entry in (("pools", "main"), ("networks", "lan")):
        if adopt.get(section):
            raw[section][entry]["adopt"] = True
    if adopt.get("users"):
        raw["users"][0]["adopt"] = True
    return raw


def _problems(raw):
    from components.config.loader import declare
    with pytest.raises(InputError) as err:
        declare("takeover", raw, config_keys={})
    return err.value.problems


def test_adopting_another_stacks_objects_names_each_adopt_field_and_the_owner(dev_stack):
    problems = _problems(_takeover(pools=True, networks=True, users=True))
    assert problems == [
        ("pools.main.adopt", f"pool 'dev-main' {OWNED}"),
        ("networks.lan.adopt", f"network 'dev-lan' {OWNED}"),
        ("users[0].adopt", f"domain 'dev-dev' {OWNED}"),
        ("users[0].adopt", f"volume 'dev-dev.qcow2' {OWNED}"),
    ]
    assert dev_stack.resources == [], "nothing was declared"


def test_a_prefix_that_makes_another_stacks_names_is_refused(dev_stack):
    problems = _problems(_takeover())
    assert {p for p, _ in problems} == {"vdesk:prefix"}
    assert [m for _, m in problems] == [
        f"'dev' makes the name of {what}, which belongs to stack 'dev': choose a prefix of this stack's own"
        for what in ("pool 'dev-main'", "network 'dev-lan'", "domain 'dev-dev'", "volume 'dev-dev.qcow2'")]
    assert dev_stack.resources == []


def test_the_owner_itself_passes(dev_stack):
    from components.config.loader import HostFacts, place_desktops, resolve_hosts, validate
    config = validate("dev", _takeover(pools=True, networks=True, users=True), config_keys={})
    hosts = resolve_hosts(config, None)
    config, _ = place_desktops("dev", config, HostFacts(hosts))
    assert stack_problems("dev", config, hosts) == []
