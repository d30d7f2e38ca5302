"""The bench's peer (kcli): its plan and client config, the leak check on libvirt's test driver, the summary."""
from __future__ import annotations

import libvirt
import pytest
import yaml

from bench import peer

from ..conftest import TEST_DRIVER


def _plan(n=3, **kw):
    args = dict(disk="/cache/images/debian12/disk.qcow2", pool_root="/srv/pools", cidr="10.79.2.0/24",
                memory_mib=768, vcpus=1, disk_gib=4)
    return peer.plan(n, **{**args, **kw})


def test_plan_declares_pool_network_image_then_n_stopped_linked_clones():
    pp = _plan(3)
    entries = yaml.safe_load(pp.text)
    assert list(entries)[:3] == ["kcli-lan", "kcli-main", peer.IMAGE]
    assert entries["kcli-lan"] == {"type": "network", "cidr": "10.79.2.0/24", "dhcp": True, "nat": True}
    assert entries["kcli-main"] == {"type": "pool", "path": "/srv/pools/kcli-main"}
    assert entries[peer.IMAGE] == {"type": "image", "url": "file:///cache/images/debian12/disk.qcow2",
                                   "pool": "kcli-main"}
    assert pp.vms == ("kcli-d00", "kcli-d01", "kcli-d02")
    for vm in pp.vms:
        assert entries[vm] == {"image": peer.IMAGE, "pool": "kcli-main", "nets": ["kcli-lan"], "memory": 768,
                               "numcpus": 1, "disks": [4], "start": False, "cloudinit": True}
    assert (pp.pool, pp.pool_path, pp.network) == ("kcli-main", "/srv/pools/kcli-main", "kcli-lan")


def test_plan_names_sixty_vms_in_order():
    pp = _plan(60)
    assert len(pp.vms) == 60 and pp.vms[-1] == "kcli-d59"
    assert [k for k in yaml.safe_load(pp.text) if k.startswith("kcli-d")] == list(pp.vms)


def test_client_config_points_kcli_at_the_hosts_uri():
    uri = "qemu:///system?socket=/tmp/vdb-x/hosts/local/run/libvirt/libvirt-sock"
    config = yaml.safe_load(peer.client_config(uri, "kcli-main"))
    assert config == {"default": {"client": "bench"}, "bench": {"type": "kvm", "url": uri, "pool": "kcli-main"}}


def _domain_xml(name, disk_backing, cdrom):
    backing = f"<backingStore type='file'><format type='qcow2'/><source file='{disk_backing}'/></backingStore>" \
        if disk_backing else ""
    iso = f"<disk type='file' device='cdrom'><source file='{cdrom}'/><target dev='hdc' bus='ide'/><readonly/></disk>" \
        if cdrom else ""
    return (f"<domain type='test'><name>{name}</name><memory>786432</memory><os><type>hvm</type></os><devices>"
            f"<disk type='file' device='disk'><source file='/srv/pools/kcli-main/{name}_0.img'/>{backing}"
            f"<target dev='vda' bus='virtio'/></disk>{iso}</devices></domain>")


@pytest.fixture
def pp(conn, tmp_path):
    """A one-VM plan whose pool lives in tmp_path; whatever a test leaves of it is swept."""
    plan = _plan(2, pool_root=str(tmp_path))
    yield plan
    peer.sweep(TEST_DRIVER, plan)


def _make(conn, pp, *, backing=True, cdrom=True):
    conn.networkDefineXML("<network><name>kcli-lan</name><ip address='10.79.2.1' netmask='255.255.255.0'/></network>")
    pool = conn.storagePoolDefineXML(f"<pool type='dir'><name>kcli-main</name><target><path>{pp.pool_path}</path>"
                                     "</target></pool>", 0)
    pool.create(0)
    pool.createXML("<volume><name>kcli-image.qcow2</name><capacity>1048576</capacity></volume>", 0)
    for vm in pp.vms:
        conn.defineXML(_domain_xml(vm, f"{pp.pool_path}/{peer.IMAGE}" if backing else None,
                                   f"{pp.pool_path}/{vm}.ISO" if cdrom else None))


def test_inventory_and_leaks_show_what_a_plan_left_and_sweep_removes_it(conn, pp):
    before = peer.inventory(TEST_DRIVER)
    _make(conn, pp)
    after = peer.inventory(TEST_DRIVER)
    assert peer.leaks(before, after) == {"domains": ["kcli-d00", "kcli-d01"], "networks": ["kcli-lan"],
                                         "pools": ["kcli-main"], "volumes": ["kcli-main/kcli-image.qcow2"]}
    peer.sweep(TEST_DRIVER, pp)
    assert peer.inventory(TEST_DRIVER) == before
    assert peer.leaks(before, peer.inventory(TEST_DRIVER)) == {}


def test_shape_accepts_linked_clones_with_a_seed_iso(conn, pp):
    _make(conn, pp)
    assert peer.shape_problems(conn, pp) == []


def test_shape_names_each_vm_without_a_linked_clone_or_iso(conn, pp):
    _make(conn, pp, backing=False, cdrom=False)
    assert peer.shape_problems(conn, pp) == [
        "kcli-d00: no disk backed by kcli-image.qcow2", "kcli-d00: no cloud-init ISO",
        "kcli-d01: no disk backed by kcli-image.qcow2", "kcli-d01: no cloud-init ISO"]


def test_shape_names_a_vm_that_was_not_defined(conn, pp):
    assert peer.shape_problems(conn, pp) == ["kcli-d00: not defined", "kcli-d01: not defined"]


def _round(create, delete, failures=()):
    steps = [peer.Step(["create", "plan", "-f", "p.yml", "b1"], create or 9.0, 0 if create else 1, ""),
             peer.Step(["delete", "plan", "--yes", "b1"], delete or 1.0, 0, "")]
    return peer.PeerRound(create, delete, steps, 1, {}, list(failures))


def test_summary_is_the_median_of_the_clean_rounds_and_keeps_every_round():
    got = peer.summary([_round(3.0, 1.0), _round(5.0, 2.0), _round(4.0, 1.2), _round(None, None, ["rc 1"])],
                       "version: 99.0")
    assert (got["create"], got["delete"], got["version"]) == (4.0, 1.2, "version: 99.0")
    assert len(got["rounds"]) == 4
    assert got["rounds"][0]["steps"] == {"create plan": 3.0, "delete plan": 1.0}


def test_summary_of_only_failed_rounds_has_no_times():
    got = peer.summary([_round(None, None, ["leak"])], "v")
    assert (got["create"], got["delete"]) == (None, None)


@pytest.mark.parametrize("text, expected", [
    ("version: 99.0 commit: ec5eb9c 2026/10/25 Available Updates: N/A\n", "kcli 99.0 commit ec5eb9c 2026/10/25"),
    ("version: 99.0 commit: ec5eb9c 2026/10/25\n", "kcli 99.0 commit ec5eb9c 2026/10/25"),
    ("", "kcli ?"),
])
def test_parse_version(text, expected):
    assert peer.parse_version(text) == expected
