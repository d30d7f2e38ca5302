"""Stack configuration is validated as a whole; each problem names its config path."""
import copy

import pytest

from components.config import parse
from components.errors import InputError

VALID = {
    "hosts": {"local": {"uri": "embedded", "accelerator": "tcg"}},
    "pools": {"main": {"host": "local"}},
    "networks": {"lan": {"host": "local", "cidr": "10.77.0.0/24"}},
    "images": {"debian12": {"golden": "debian12"}},
    "desktops": {"dev": {"pool": "main", "network": "lan", "image": "debian12", "memory": "1GiB",
                         "vcpus": 2, "disk": "8GiB", "users": [{"name": "dev"}]}},
}


def with_change(path, value):
    cfg = copy.deepcopy(VALID)
    node = cfg
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return cfg


_DELETE = object()


def test_valid_config_parses_with_units_normalised():
    cfg = parse(VALID, stack="dev")
    desk = cfg.desktops["dev"]
    assert (desk.memory_mib, desk.vcpus, desk.disk_bytes) == (1024, 2, 8 * 1024**3)
    assert desk.host == "local" and cfg.prefix == "dev"


@pytest.mark.parametrize("path,value,field,message", [
    ("desktops.dev.memory", "2 GB", "desktops.dev.memory", "'2 GB' is not a size"),
    ("desktops.dev.memory", 128, "desktops.dev.memory", "must be at least 256MiB"),
    ("desktops.dev.network", "wan", "desktops.dev.network", "unknown network 'wan' (declared: lan)"),
    ("desktops.dev.pool", "fast", "desktops.dev.pool", "unknown pool 'fast' (declared: main)"),
    ("desktops.dev.vcpus", 0, "desktops.dev.vcpus", "must be an integer >= 1, got 0"),
    ("desktops.dev.vcpus", "two", "desktops.dev.vcpus", "must be an integer >= 1, got 'two'"),
    ("desktops.dev.disk", "lots", "desktops.dev.disk", "'lots' is not a size"),
    ("desktops.dev.colour", "blue", "desktops.dev.colour", "unknown setting"),
    ("images.debian12", {"path": "/nonexistent/disk.qcow2"}, "images.debian12.path",
     "'/nonexistent/disk.qcow2' does not exist or is not a file"),
    ("images.debian12", {"golden": "fedora"}, "images.debian12.golden", "'fedora' is not an image vdesk builds"),
    ("hosts.local.accelerator", "fast", "hosts.local.accelerator", "'fast' is not one of kvm, tcg, auto"),
    ("hosts.local.uri", "localhost", "hosts.local.uri", "must be 'embedded' or a libvirt URI"),
    ("networks.lan.cidr", "10.77.0.1/24", "networks.lan.cidr", "is not a network in CIDR form"),
    ("networks.lan.cidr", "10.77.0.0/30", "networks.lan.cidr", "too small"),
    ("networks.lan.mode", "bridged", "networks.lan.mode", "'bridged' is not one of nat, isolated, route, open"),
    ("desktops.dev.users", [{"name": "root"}], "desktops.dev.users[0].name", "'root' is not a usable login name"),
    ("desktops.dev.users", [{"name": "a", "ssh_authorized_keys": ["hunter2"]}],
     "desktops.dev.users[0].ssh_authorized_keys", "must be a list of OpenSSH public keys"),
    ("desktops.Dev_1", {}, "desktops.Dev_1", "is not a valid name"),
    ("pools.main.path", "relative/dir", "pools.main.path", "must be an absolute path"),
    ("networks.lan.dns_hosts", [{"ip": "10.77.0.9"}], "networks.lan.dns_hosts[0]", "needs ip and hostnames"),
    ("networks.lan.dhcp_hosts", "alice", "networks.lan.dhcp_hosts", "must be a list"),
])
def test_bad_input_names_the_field(path, value, field, message):
    with pytest.raises(InputError) as err:
        parse(with_change(path, value), stack="dev")
    assert any(p == field and message in m for p, m in err.value.problems), err.value.problems


def test_every_problem_is_reported_at_once():
    cfg = with_change("desktops.dev.memory", "2 GB")
    cfg["desktops"]["dev"]["network"] = "wan"
    cfg["images"]["debian12"] = {"path": "/nonexistent.qcow2"}
    with pytest.raises(InputError) as err:
        parse(cfg, stack="dev")
    fields = {p for p, _ in err.value.problems}
    assert {"desktops.dev.memory", "desktops.dev.network", "images.debian12.path"} <= fields
    text = str(err.value)
    assert "desktops.dev.memory: '2 GB' is not a size" in text


def test_overlapping_networks_on_one_host_are_rejected():
    cfg = copy.deepcopy(VALID)
    cfg["networks"]["lab"] = {"host": "local", "cidr": "10.77.0.128/25"}
    with pytest.raises(InputError) as err:
        parse(cfg, stack="dev")
    assert ("networks.lab.cidr", "10.77.0.128/25 overlaps networks.lan (10.77.0.0/24) on host 'local'") \
        in err.value.problems


def test_user_image_with_its_own_bootloader_is_accepted(tmp_path):
    image = tmp_path / "cloud.qcow2"
    image.write_bytes(b"QFI\xfb" + b"\0" * 60)
    cfg = with_change("images.debian12", {"path": str(image), "boot": "uefi"})
    assert parse(cfg, stack="dev").images["debian12"].boot == "uefi"
