"""The placement rule (components/host/placement.py) on its own: deterministic, by capacity, and stable."""
from __future__ import annotations

import hashlib
import itertools

import pytest

from components.host import placement
from components.host.capacity import Capacity
from components.host.hardware import Gpu, HardwareDemand, HostHardware, PciDevice
from components.host.placement import Want, place, ranked

HOSTS = ("a", "b", "c")
MiB = 1024**2
BIG = {h: Capacity(h, 64 * 1024 * MiB, 16, 255) for h in HOSTS}


def want(name, hosts=HOSTS, memory=1024, vcpus=1, running=True, hardware=None):   # (memory in MiB)
    return Want(name, f"st-{name}", tuple(hosts), memory * MiB, vcpus, running, hardware, f"users.{name}.hosts")


def placed(wants, existing=None, capacities=BIG, hardware=None, unreachable=(), overcommit=None):
    result = place(wants, capacities=capacities, hardware=hardware or {}, overcommit=overcommit or {},
                   existing=existing or {}, unreachable=unreachable)
    assert result.problems == []
    return result


NAMES = [f"user{i}" for i in range(40)]


def test_the_rank_is_rendezvous_hashing_as_documented():
    def weight(d, h):
        return int.from_bytes(hashlib.sha256(f"{d}\0{h}".encode()).digest()[:8], "big")
    for name in NAMES:
        assert ranked(name, HOSTS) == sorted(HOSTS, key=lambda h: weight(name, h), reverse=True)
    first = [ranked(n, HOSTS)[0] for n in NAMES]
    assert all(first.count(h) >= 6 for h in HOSTS), "spread over every host"


def test_without_pressure_each_desktop_goes_to_its_best_ranked_host_whatever_the_file_order():
    wants = [want(n) for n in NAMES]
    result = placed(wants)
    assert result.hosts == {n: ranked(n, HOSTS)[0] for n in NAMES}
    assert placed(list(reversed(wants))).hosts == result.hosts


def test_adding_a_desktop_moves_nobody_even_when_hosts_fill_up():
    small = {h: Capacity(h, 4 * 1024 * MiB, 16, 255) for h in HOSTS}    # room for 4 running 1 GiB desktops each
    before = placed([want(n) for n in NAMES[:10]], capacities=small)
    existing = {f"st-{n}": [h] for n, h in before.hosts.items()}
    for extra in NAMES[10:12]:
        after = placed([want(n) for n in NAMES[:10]] + [want(extra)], capacities=small, existing=existing)
        assert {n: after.hosts[n] for n in before.hosts} == before.hosts
        assert after.moves == [] and set(after.kept) == set(before.hosts)


def test_removing_a_host_moves_only_its_desktops_and_says_where():
    before = placed([want(n) for n in NAMES])
    existing = {f"st-{n}": [h] for n, h in before.hosts.items()}
    after = placed([want(n, hosts=("a", "c")) for n in NAMES], existing=existing)
    moved = {n for n, h in before.hosts.items() if h == "b"}
    assert {n for n in NAMES if after.hosts[n] != before.hosts[n]} == moved
    assert sorted(after.moves) == sorted((n, "b", ranked(n, ("a", "c"))[0]) for n in moved)


def test_a_full_host_is_skipped_for_the_next_in_rank_and_stopped_desktops_take_no_room():
    capacities = {"a": Capacity("a", 2048 * MiB, 2, 255), "b": BIG["b"]}
    names = [n for n in NAMES if ranked(n, ("a", "b"))[0] == "a"][:4]
    result = placed([want(n, hosts=("a", "b")) for n in names], capacities=capacities)
    assert [result.hosts[n] for n in names] == ["a", "a", "b", "b"]
    stopped = placed([want(n, hosts=("a", "b"), running=False) for n in names], capacities=capacities)
    assert set(stopped.hosts.values()) == {"a"}


def test_a_desktop_with_no_room_anywhere_is_a_problem_naming_each_hosts_reason():
    capacities = {h: Capacity(h, 1024 * MiB, 2, 4) for h in ("a", "b")}
    result = place([want("big", hosts=("a", "b"), memory=2048), want("wide", hosts=("a", "b"), vcpus=8)],
                   capacities=capacities, hardware={}, overcommit={}, existing={})
    order = ", ".join(f"{h}: 2048 MiB of memory is more than it has (1024 MiB)" for h in ranked("big", "ab"))
    assert result.problems == [
        ("users.big.hosts", f"no host has room for desktop 'big' ({order.replace(', b:', '; b:').replace(', a:', '; a:')})"),
        ("users.wide.hosts", "no host has room for desktop 'wide' (" + "; ".join(
            f"{h}: 8 vCPUs is more than a guest there may have (4)" for h in ranked("wide", "ab")) + ")")]


def test_hardware_decides_too_a_gpu_desktop_goes_where_the_device_is():
    gpu = HostHardware("b", tuple(range(8)), (), None,
                       {"0000:01:00.0": PciDevice("0000:01:00.0", "pci_0000_01_00_0", "0x030000", "GPU", 1,
                                                  ("0000:01:00.0",))}, {}, {})
    plain = HostHardware("a", tuple(range(8)), (), None, {}, {}, {})
    asks = HardwareDemand("g", None, gpus=(Gpu(pci="0000:01:00.0"),), fields=(("gpus", "users.g.gpus"),))
    names = [n for n in NAMES if ranked(n, ("a", "b"))[0] == "a"][:2]
    result = placed([want(names[0], hosts=("a", "b"), hardware=dataclass_named(asks, names[0]))],
                    hardware={"a": plain, "b": gpu})
    assert result.hosts[names[0]] == "b", "its best-ranked host a has no such device"
    second = place([want(n, hosts=("a", "b"), hardware=dataclass_named(asks, n)) for n in names],
                   capacities=BIG, hardware={"a": plain, "b": gpu}, overcommit={}, existing={})
    assert [p[0] for p in second.problems] == [f"users.{names[1]}.hosts"]
    assert "already claimed by desktop" in second.problems[0][1]


def dataclass_named(demand, name):
    import dataclasses
    return dataclasses.replace(demand, name=name)


def test_an_unreachable_host_keeps_its_rank_so_its_desktops_do_not_move_away():
    tiny = {"a": Capacity("a", 512 * MiB, 1, 1), "b": BIG["b"]}
    result = placed([want(n, hosts=("a", "b")) for n in NAMES], capacities=tiny, unreachable=["a"])
    assert result.hosts == {n: ranked(n, ("a", "b"))[0] for n in NAMES}


@pytest.mark.parametrize("order", list(itertools.permutations(["a", "b", "c"])))
def test_the_order_hosts_are_listed_in_does_not_matter(order):
    assert placed([want(n, hosts=order) for n in NAMES]).hosts == placed([want(n) for n in NAMES]).hosts


def test_a_desktop_found_on_several_hosts_stays_on_its_best_ranked_one():
    n = NAMES[0]
    both = placed([want(n)], existing={f"st-{n}": list(HOSTS)})
    assert both.hosts[n] == ranked(n, HOSTS)[0] and both.kept == {n: ranked(n, HOSTS)[0]}


def test_find_existing_reads_owner_metadata_from_the_hosts(conn):
    from components import xmlmodel
    mine = xmlmodel.Domain(type="test", name="st-ann", memory_kib=65536, vcpus=1, os_type="hvm",
                           owner=xmlmodel.Owner(stack="st", resource="st-ann"))
    other = xmlmodel.Domain(type="test", name="st-bob", memory_kib=65536, vcpus=1, os_type="hvm",
                            owner=xmlmodel.Owner(stack="another", resource="st-bob"))
    bare = xmlmodel.Domain(type="test", name="st-cy", memory_kib=65536, vcpus=1, os_type="hvm")
    doms = [conn.defineXML(d.to_xml()) for d in (mine, other, bare)]
    try:
        found = placement.find_existing({"h": "test:///default"}, "st", ["st-ann", "st-bob", "st-cy", "st-dee"])
        assert found == {"st-ann": ["h"]}
    finally:
        for d in doms:
            d.undefine()
