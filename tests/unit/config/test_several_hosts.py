"""Several hosts in one stack: placement, what the preview says, and hardware checked against each host.

Each host is a libvirt test driver: `a` is test:///default (3 GiB, two NUMA cells), `gpu` is the GPU host
fixture. The program is the real one under Pulumi's mocks; hosts are read from libvirt, except that the
test driver has no domain capabilities, which come from the documents captured on this machine.
"""
from __future__ import annotations

import copy
from pathlib import Path

import libvirt
import pulumi
import pytest

from components import xmlmodel
from components.errors import InputError
from components.host import hardware
from components.host.placement import ranked
from components.host.resolve import HostUnreachable, ResolvedHost, offline
from tests.unit.config.test_program import after, golden, mocks  # noqa: F401  (fixtures)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hosts"
URIS = {"a": "test:///default", "b": "test:///default", "gpu": f"test://{FIXTURES / 'gpu-host.xml'}"}
USERS = ["ann", "ben", "cy", "dee", "eve", "fay"]
BASE = {
    "prefix": "lab",
    "hosts": {"a": {"uri": "embedded", "accelerator": "tcg"}, "b": {"uri": "qemu+ssh://root@b/system",
                                                                    "accelerator": "tcg"}},
    "pools": {"main": {"hosts": "all"}},
    "networks": {"lan": {"hosts": "all", "cidr": "10.77.0.0/24"}},
    "images": {"debian12": {"golden": "debian12"}},
    "profiles": {"std": {"hosts": "all", "pool": "main", "network": "lan", "image": "debian12",
                         "memory": "512MiB", "running": False}},
    "users": [{"name": n, "profile": "std"} for n in USERS],
}


@pytest.fixture
def hosts(monkeypatch, mocks, golden):  # noqa: F811
    """Hosts by name on the test driver; `down` lists those that do not answer."""
    down: set[str] = set()

    def resolve(h, probe_kernel):
        if h.name in down:
            raise HostUnreachable(h.name, h.uri, "ssh: connect to host b port 22: Connection refused")
        return ResolvedHost(h.name, URIS[h.name], None, "qemu", "tcg requested explicitly", "/pools", None,
                            ssh_jump=f"root@{h.name}:22" if h.uri.startswith("qemu+ssh") else None)

    monkeypatch.setattr("components.config.loader.resolve_host", resolve)
    logged = []
    for level in ("info", "warn"):
        monkeypatch.setattr(f"pulumi.log.{level}", lambda message, *_a, level=level, **_k: logged.append((level, message)))
    return {"down": down, "logged": logged, "mocks": mocks}


def declare(raw):
    from components.config.loader import declare as program
    return program("lab", copy.deepcopy(raw), config_keys={})


@pulumi.runtime.test
def test_desktops_are_placed_by_rank_and_each_host_gets_its_own_pool_network_and_image(hosts):
    outputs = declare(BASE)
    expected = {n: ranked(n, ("a", "b"))[0] for n in USERS}
    assert set(expected.values()) == {"a", "b"}

    def check(out):
        mocks = hosts["mocks"]
        assert out["placement"] == expected
        assert {n: out["desktops"][n]["host"] for n in USERS} == expected
        names = mocks.names()
        assert {"pool-main-a", "pool-main-b", "network-lan-a", "network-lan-b"} <= set(names)
        assert {"image-debian12-main-a-disk", "image-debian12-main-b-disk"} <= set(names)
        assert names.count("image-debian12-main-a-disk") == 1, "an image goes to each host once"
        assert out["hosts"]["b"]["ssh_jump"] == "root@b:22" and out["hosts"]["a"]["ssh_jump"] is None
        assert ("info", f"placement: desktop ann on host {expected['ann']} (placed by capacity; its hosts: a, b)") \
            in hosts["logged"]

    return after(outputs, check)


@pulumi.runtime.test
def test_a_desktop_found_on_a_host_stays_and_removing_a_host_moves_only_its_desktops(hosts):
    # ann already lives on the host her rank does not prefer (say, placed there when the other was full).
    other = [h for h in ("a", "b") if h != ranked("ann", ("a", "b"))[0]][0]
    stay = {"ann": other}
    conn = libvirt.open("test:///default")       # a and b share the test driver's state: the URI tells them apart
    URIS[other] = "test:///default"
    dom = conn.defineXML(xmlmodel.Domain(type="test", name="lab-ann", memory_kib=65536, vcpus=1, os_type="hvm",
                                         owner=xmlmodel.Owner(stack="lab", resource="lab-ann")).to_xml())
    URIS[[h for h in ("a", "b") if h != other][0]] = f"test://{FIXTURES / 'gpu-host.xml'}"
    try:
        raw = copy.deepcopy(BASE)
        raw["users"][0]["hosts"] = [h for h in ("a", "b") if h != other]      # her host leaves her list
        outputs = declare(raw)
        assert ("warn", f"placement: desktop ann moves from host {other} to host "
                        f"{raw['users'][0]['hosts'][0]} ({other} is no longer one of its hosts); it is made again "
                        "there, with the same keys") in hosts["logged"]
        kept = declare(BASE)
    finally:
        dom.undefine()
        conn.close()
        URIS.update(a="test:///default", b="test:///default")

    def check(outs):
        moved, stayed = outs
        assert stayed["placement"]["ann"] == stay["ann"]
        assert moved["placement"]["ann"] != stay["ann"]
        assert {n: h for n, h in moved["placement"].items() if n != "ann"} == \
            {n: ranked(n, ("a", "b"))[0] for n in USERS if n != "ann"}

    return after([outputs, kept], check)


@pulumi.runtime.test
def test_an_unreachable_host_is_warned_about_and_its_failure_is_declared_last(hosts):
    hosts["down"].add("b")
    outputs = declare(BASE)
    on_b = sorted(n for n in USERS if ranked(n, ("a", "b"))[0] == "b")

    def check(out):
        mocks = hosts["mocks"]
        assert out["hosts"]["b"]["reachable"] is None     # (the mocks echo inputs: the gate reports at up)
        assert out["placement"] == {n: ranked(n, ("a", "b"))[0] for n in USERS}, "b keeps its desktops"
        gate = mocks.named("host-b-reachable")
        assert gate["host"] == "b" and gate["desktops"] == on_b and "Connection refused" in gate["reason"]
        order = [n for _t, n, _i in mocks.resources]
        assert order.index("host-b-reachable") > max(order.index(f"{n}-vm") for n in USERS if n not in on_b)
        assert order.index("pool-main-b") > order.index("host-b-reachable"), "b's parts wait for its gate"
        assert any(level == "warn" and message.startswith("host b (qemu+ssh://root@b/system) cannot be reached")
                   for level, message in hosts["logged"])

    return after(outputs, check)


def test_one_host_that_cannot_be_reached_fails_the_preview_naming_it(hosts):
    raw = copy.deepcopy(BASE)
    del raw["hosts"]["a"]
    hosts["down"].add("b")
    with pytest.raises(InputError) as err:
        declare(raw)
    assert err.value.problems == [("hosts.b.uri", "cannot be reached: ssh: connect to host b port 22: "
                                                  "Connection refused")]


# --- hardware at preview: each case names its field ----------------------------------------------------

GPU_STACK = {
    "prefix": "gpu-lab",
    "hosts": {"gpu": {"uri": "embedded", "accelerator": "kvm"}},
    "pools": {"main": {"host": "gpu"}},
    "networks": {"lan": {"host": "gpu", "cidr": "10.77.0.0/24"}},
    "images": {"debian12": {"golden": "debian12"}},
    "profiles": {"vgpu": {"pool": "main", "network": "lan", "image": "debian12", "memory": "512MiB",
                          "gpus": [{"mdev": "nvidia-222"}]}},
    "users": [{"name": "ann", "profile": "vgpu"}, {"name": "ben", "profile": "vgpu"}],
}


@pytest.fixture
def gpu_host(hosts, monkeypatch):
    real = hardware._domain_caps
    monkeypatch.setattr(hardware, "_domain_caps", lambda conn, domain_type, machine: real(conn, domain_type, machine)
                        or xmlmodel.DomainCapabilities.from_xml((FIXTURES / "domcaps-kvm-vfio-x86_64.xml").read_text()))
    return hosts


def problems(raw):
    with pytest.raises(InputError) as err:
        declare(raw)
    return err.value.problems


HARDWARE = [
    ("a-missing-gpu", lambda r: r["users"][1].update(gpus=[{"pci": "0000:05:00.0"}]),
     [("users[1].gpus[0].pci", "host 'gpu' has no PCI device 0000:05:00.0 (its display devices: 0000:01:00.0, "
                               "0000:02:00.0, 0000:03:00.0)")]),
    ("a-gpu-that-cannot-be-assigned", lambda r: r["users"][1].update(gpus=[{"pci": "0000:03:00.0"}]),
     [("users[1].gpus[0].pci", "0000:03:00.0 on host 'gpu' cannot be assigned: it is in no IOMMU group (the "
                               "host needs VT-d/AMD-Vi enabled and intel_iommu=on or amd_iommu=on)")]),
    ("one-device-two-desktops", lambda r: [u.update(gpus=[{"pci": "0000:02:00.0"}, {"pci": "0000:02:00.1"}])
                                           for u in r["users"]],
     [("users[1].gpus[0].pci", "0000:02:00.0 on host 'gpu' is already claimed by desktop 'ann': a PCI device goes "
                               "to one desktop only"),
      ("users[1].gpus[1].pci", "0000:02:00.1 on host 'gpu' is already claimed by desktop 'ann': a PCI device goes "
                               "to one desktop only")]),
    ("more-vgpus-than-the-host-makes", lambda r: r["users"].append({"name": "cy", "profile": "vgpu"}) or
     r["users"].append({"name": "dee", "profile": "vgpu"}),
     [("profiles.vgpu.gpus[0].mdev", "host 'gpu' can make no more 'nvidia-222' devices (2 left before this "
                                     "stack's other desktops took 2)")]),
    ("a-cpu-model-the-host-cannot-run", lambda r: r["profiles"]["vgpu"].update(cpu={"model": "Skylake-Client"}),
     [("profiles.vgpu.cpu.model", "CPU model 'Skylake-Client' cannot run on host 'gpu': its CPU lacks features "
                                  "the model needs (usable there: pentium3, pentium2, pentium, 486)")] * 2),
    ("a-pin-to-a-cpu-the-host-lacks", lambda r: r["users"][0].update(cpu={"pinning": [16]}),
     [("users[0].cpu.pinning[0]", "host 'gpu' has no CPU 16 (its CPUs: 0-15)")]),
]


def test_the_gpu_stack_itself_is_fine(gpu_host):
    declare(GPU_STACK)     # ann's vGPU exists already (the fixture's instance is hers): ben takes the last one


@pytest.mark.parametrize("change,expected", [c[1:] for c in HARDWARE], ids=[c[0] for c in HARDWARE])
def test_hardware_the_host_cannot_give_fails_the_preview_naming_the_field(gpu_host, change, expected):
    raw = copy.deepcopy(GPU_STACK)
    change(raw)
    assert problems(raw) == expected
    assert gpu_host["mocks"].resources == [], "nothing is declared"


def test_a_cpu_mode_the_host_lacks_names_the_mode(hosts, monkeypatch):
    monkeypatch.setattr(hardware, "_domain_caps", lambda *_: xmlmodel.DomainCapabilities.from_xml(
        (FIXTURES / "domcaps-qemu-x86_64.xml").read_text()))
    raw = copy.deepcopy(BASE)
    raw["profiles"]["std"].update(hosts=["a"], cpu={"mode": "host-passthrough"})
    assert problems(raw) == [("profiles.std.cpu.mode", "CPU mode 'host-passthrough' is not supported by host 'a' "
                                                       "for qemu guests (it supports: host-model, custom)")] * 6


def test_a_gpu_decides_where_a_desktop_on_several_hosts_goes(hosts, monkeypatch):
    monkeypatch.setattr(hardware, "_domain_caps", lambda *_: xmlmodel.DomainCapabilities.from_xml(
        (FIXTURES / "domcaps-kvm-vfio-x86_64.xml").read_text()))
    URIS["b"] = URIS["gpu"]
    try:
        raw = copy.deepcopy(BASE)
        raw["users"] = [{"name": n, "profile": "std", "gpus": [{"pci": "0000:01:00.0"}]} for n in ("ann", "ben")]
        with pytest.raises(InputError) as err:
            declare(raw)
    finally:
        URIS["b"] = "test:///default"
    (field, message), = err.value.problems
    first = sorted(["ann", "ben"])[0]
    assert field == "profiles.std.hosts" and message.startswith(f"no host has room for desktop 'ben' (")
    assert f"0000:01:00.0 on host 'b' is already claimed by desktop '{first}'" in message
    assert "host 'a' has no PCI device 0000:01:00.0" in message


def test_offline_hosts_are_described_from_the_stack():
    from components.config.models import HostConfig
    h = offline(HostConfig("far", "qemu+ssh://admin@kvm2:2222/system", "tcg"), "timed out")
    assert (h.domain_type, h.ssh_jump, h.unreachable, h.netns) == ("qemu", "admin@kvm2:2222", "timed out", None)


@pulumi.runtime.test
def test_placed_desktops_keep_their_homes_shares_and_display_settings(hosts, tmp_path):
    (tmp_path / "docs").mkdir()
    raw = copy.deepcopy(BASE)
    raw["shares"] = {"docs": {"host": "a", "path": str(tmp_path / "docs")}}
    raw["profiles"]["std"].update(home="1GiB", display={"password_rotation": "2026-12"})
    raw["users"].append({"name": "gil", "profile": "std", "hosts": ["a"], "shares": ["docs"]})
    outputs = declare(raw)

    def check(out):
        mocks = hosts["mocks"]
        assert out["placement"]["gil"] == "a"
        assert {out["placement"][n] for n in USERS} == {"a", "b"}
        names = set(mocks.names())
        for n in [*USERS, "gil"]:
            assert {f"{n}-home", f"{n}-credentials"} <= names
            assert mocks.named(f"{n}-home")["pool"] == mocks.named(f"{n}-disk")["pool"]
        assert mocks.named("gil-vm")["shares"] == [{"source": str(tmp_path / "docs"), "tag": "docs",
                                                    "readonly": True}]
        assert all(mocks.named(f"{n}-vm")["shares"] == [] for n in USERS)

    return after(outputs, check)


def test_a_share_is_on_one_host_so_a_desktop_that_may_go_elsewhere_cannot_use_it(hosts, tmp_path):
    (tmp_path / "docs").mkdir()
    raw = copy.deepcopy(BASE)
    raw["shares"] = {"docs": {"host": "a", "path": str(tmp_path / "docs")}}
    raw["profiles"]["std"]["shares"] = ["docs"]
    raw["profiles"]["one"] = {**raw["profiles"]["std"], "hosts": ["a"]}
    raw["users"] = [{"name": "ann", "profile": "std"}, {"name": "ben", "profile": "one", "hosts": "all"},
                    {"name": "cy", "profile": "one"}]
    with pytest.raises(InputError) as err:
        declare(raw)
    problems = dict(err.value.problems)
    assert problems.pop("profiles.std.shares[0]") == (
        "share 'docs' is on host 'a', not on 'b', where this desktop may be placed: a share is on one host, "
        "so place the desktop there (host: a)")
    assert problems.pop("users[1].hosts").startswith("share 'docs' is on host 'a', not on 'b'")
    assert problems == {}, "cy stays on the share's host"
