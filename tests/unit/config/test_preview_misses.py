"""Values that passed preview and failed at `up` (or in the guest): each now fails at preview, naming its field,
with nothing declared. They are judged against what preview finds: the image's virtual size, the network's cidr.
"""
from __future__ import annotations

import dataclasses
import subprocess

import pulumi
import pytest

from components.config import against_host
from components.config.resolve import parse
from components.errors import InputError
from components.host.resolve import ResolvedHost
from components.images.golden import ImageFiles
from tests.unit.config.test_exposure import with_policy  # noqa: F401  (fixture)
from tests.unit.config.test_program import after, example_stack, golden, mocks, raw_config  # noqa: F401


def _problems(raw, stack="dev") -> dict[str, str]:
    from components.config.loader import declare
    with pytest.raises(InputError) as err:
        declare(stack, raw, config_keys={})
    return dict(err.value.problems)


def _qcow2(path, size: str) -> str:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return str(path)


def test_a_system_disk_smaller_than_its_own_image_names_the_disk(mocks, tmp_path):  # noqa: F811
    raw = raw_config(tmp_path)
    raw["images"]["own"]["path"] = _qcow2(tmp_path / "big.qcow2", "10G")
    raw["desktops"]["alice"]["disk"] = "8GiB"
    assert _problems(raw) == {"desktops.alice.disk": "8GiB is smaller than image 'own' (10GiB): the system disk is "
                                                     "made from it, so give at least 10GiB"}
    assert mocks.resources == []
    raw["desktops"]["alice"]["disk"] = "10GiB"
    from components.config.loader import declare
    declare("dev", raw, config_keys={})           # as big as the image: fine


def test_a_disk_smaller_than_a_recipe_image_names_the_profile_once_and_a_users_own_disk(mocks):  # noqa: F811
    raw = example_stack("dev")                      # its image 'xfce' is built from a recipe at `up`
    raw["profiles"]["desktop"]["disk"] = "2GiB"
    raw["users"].append({"name": "ada", "profile": "desktop", "disk": 3})
    problems = _problems(raw)
    assert problems == {
        "profiles.desktop.disk": "2GiB is smaller than image 'xfce' (4GiB): the system disk is made from it, "
                                 "so give at least 4GiB",
        "users[1].disk": "3GiB is smaller than image 'xfce' (4GiB): the system disk is made from it, so give at "
                         "least 4GiB"}
    assert mocks.resources == []


def test_a_disk_smaller_than_the_golden_image_names_the_disk(mocks, monkeypatch, tmp_path):  # noqa: F811
    disk = _qcow2(tmp_path / "disk.qcow2", "4G")
    monkeypatch.setattr("components.config.loader.image_files.resolve",
                        lambda image: ImageFiles(image.name, disk, "kernel", "recipe0", "/k", "/i", "console=ttyS0"))
    raw = raw_config(tmp_path)
    raw["images"]["own"] = {"golden": "debian12"}
    raw["desktops"]["alice"]["disk"] = 1
    assert _problems(raw) == {"desktops.alice.disk": "1GiB is smaller than image 'own' (4GiB): the system disk is "
                                                     "made from it, so give at least 4GiB"}
    assert mocks.resources == []


def test_a_recipe_image_is_as_big_as_vdesk_builds_it():
    assert against_host.built_image_bytes() == 4 * 1024**3       # tools/build-image.sh's DISK_BYTES


def test_a_home_volume_too_small_to_format_names_the_home(mocks, tmp_path):  # noqa: F811
    raw = raw_config(tmp_path)
    raw["desktops"]["alice"]["home"] = "64KiB"
    assert "too small for a home volume" in _problems(raw)["desktops.alice.home"]


def _reserve(raw, **host):
    raw["networks"]["lan"]["dhcp_hosts"] = [{"mac": "52:54:00:00:00:01", "ip": "10.77.0.5", **host}]


@pytest.mark.parametrize("case,change,field,message", [
    ("address-outside-the-network", lambda r: _reserve(r, ip="10.78.0.5"), "networks.lan.dhcp_hosts[0].ip",
     "10.78.0.5 is outside network 'lan' (10.77.0.0/24)"),
    ("the-broadcast-address", lambda r: _reserve(r, ip="10.77.0.255"), "networks.lan.dhcp_hosts[0].ip",
     "10.77.0.255 is outside network 'lan' (10.77.0.0/24)"),
    ("the-gateway", lambda r: _reserve(r, ip="10.77.0.1"), "networks.lan.dhcp_hosts[0].ip",
     "10.77.0.1 is the gateway of network 'lan' (10.77.0.0/24), not a guest's address"),
    ("not-an-address", lambda r: _reserve(r, ip="10.77.0"), "networks.lan.dhcp_hosts[0].ip",
     "'10.77.0' is not an IPv4 address"),
    ("a-mac-that-is-not-a-mac", lambda r: _reserve(r, mac="52:54:00:00:00"), "networks.lan.dhcp_hosts[0].mac",
     "'52:54:00:00:00' is not a MAC address (six hex pairs joined by ':', e.g. 52:54:00:12:34:56)"),
    ("a-multicast-mac", lambda r: _reserve(r, mac="01:00:5e:00:00:01"), "networks.lan.dhcp_hosts[0].mac",
     "'01:00:5e:00:00:01' is a multicast MAC address: a NIC's MAC is unicast (its first byte is even)"),
    ("a-mac-reserved-twice", lambda r: r["networks"]["lan"].update(dhcp_hosts=[
        {"mac": "52:54:00:00:00:01", "ip": "10.77.0.5"}, {"mac": "52:54:00:00:00:01", "ip": "10.77.0.6"}]),
     "networks.lan.dhcp_hosts[1].mac", "52:54:00:00:00:01 is already reserved by dhcp_hosts[0]"),
    ("an-address-reserved-twice", lambda r: r["networks"]["lan"].update(dhcp_hosts=[
        {"mac": "52:54:00:00:00:01", "ip": "10.77.0.5"}, {"mac": "52:54:00:00:00:02", "ip": "10.77.0.5"}]),
     "networks.lan.dhcp_hosts[1].ip", "10.77.0.5 is already reserved by dhcp_hosts[0]"),
    ("a-reservation-without-dhcp", lambda r: (_reserve(r), r["networks"]["lan"].update(dhcp=False)),
     "networks.lan.dhcp_hosts", "needs dhcp: true (a reservation is what this network's DHCP hands out)"),
    ("a-reservation-name-that-is-no-dns-name", lambda r: _reserve(r, name="alice laptop"),
     "networks.lan.dhcp_hosts[0].name", "'alice laptop' is not a DNS name"),
    ("a-domain-that-is-no-dns-name", lambda r: r["networks"]["lan"].update(domain="lab\nserver=6.6.6.6"),
     "networks.lan.domain", "is not a DNS name"),
    ("a-dns-record-that-is-no-address", lambda r: r["networks"]["lan"].update(
        dns_hosts=[{"ip": "files", "hostnames": ["files"]}]), "networks.lan.dns_hosts[0].ip",
     "'files' is not an IP address"),
    ("a-dns-record-name-that-is-no-dns-name", lambda r: r["networks"]["lan"].update(
        dns_hosts=[{"ip": "10.77.0.9", "hostnames": ["files", "-x"]}]), "networks.lan.dns_hosts[0].hostnames[1]",
     "'-x' is not a DNS name"),
])
def test_a_network_entry_libvirt_would_refuse_fails_at_preview(case, change, field, message,
                                                               mocks, tmp_path):  # noqa: F811
    raw = raw_config(tmp_path)
    change(raw)
    problems = _problems(raw)
    assert message in problems[field], problems
    assert mocks.resources == []


@pulumi.runtime.test
def test_a_valid_reservation_passes(mocks, tmp_path):  # noqa: F811
    raw = raw_config(tmp_path)
    _reserve(raw, mac="52:54:00:AB:CD:EF", name="alice")
    raw["networks"]["lan"]["domain"] = "lab.example.org"
    from components.config.loader import declare

    def check(_out):
        assert mocks.named("network-lan")["dhcp_hosts"] == [{"mac": "52:54:00:ab:cd:ef", "ip": "10.77.0.5",
                                                             "name": "alice"}]
    return after(declare("dev", raw, config_keys={}), check)


def test_a_network_whose_addresses_another_active_libvirt_network_uses_names_its_cidr(mocks, tmp_path):  # noqa: F811
    raw = raw_config(tmp_path)        # the host is libvirt's test driver, whose `default` is 192.168.122.0/24
    raw["networks"]["lan"]["cidr"] = "192.168.122.0/25"
    assert _problems(raw) == {"networks.lan.cidr": "192.168.122.0/25 overlaps libvirt network 'default' "
                                                   "(192.168.122.0/24) on host 'local': libvirt would refuse to start "
                                                   "it; choose another cidr"}
    assert mocks.resources == []


def test_a_pool_directory_that_is_a_file_and_devices_that_are_no_block_devices(tmp_path):
    raw = raw_config(tmp_path)
    (tmp_path / "afile").write_text("x")
    raw["pools"]["main"]["path"] = str(tmp_path / "afile")
    raw["pools"]["vg"] = {"host": "local", "type": "logical", "source_name": "vg_unit",
                          "source_devices": ["/dev/null", "/dev/vdesk-no-such-disk"]}
    this_machine = ResolvedHost("local", "qemu:///system", None, "kvm", "kvm", "/var/lib/libvirt/images", None)
    problems = dict(against_host.pool_problems(parse(raw, stack="dev"), {"local": this_machine}))
    assert problems == {"pools.main.path": f"{str(tmp_path / 'afile')!r} is there and is not a directory",
                        "pools.vg.source_devices[0]": "'/dev/null' is not a block device",
                        "pools.vg.source_devices[1]": "'/dev/vdesk-no-such-disk' does not exist on this host"}
    test_driver = dataclasses.replace(this_machine, uri="test:///default")     # not this machine: not judged
    assert against_host.pool_problems(parse(raw, stack="dev"), {"local": test_driver}) == []


def test_a_console_address_this_machine_does_not_have_and_a_certificate_it_cannot_load(mocks, golden,  # noqa: F811
                                                                                      with_policy, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    raw = example_stack("dev")
    raw["hosts"]["local"]["console"] = {"bind": "::2", "tls_cert": str(junk)}     # the host's, restated
    with_policy(f"console:\n  bind: '::2'\n  tls_cert: {junk}")
    problems = _problems(raw)
    assert problems["hosts.local.console.bind"].startswith("the console cannot listen on ::2 here: ")
    assert problems["hosts.local.console.tls_cert"].startswith("is not a PEM certificate with its private key")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    raw["hosts"]["local"]["console"] = {"bind": "127.0.0.1", "tls_cert": str(cert), "tls_key": str(key)}
    with_policy(f"console:\n  tls_cert: {cert}\n  tls_key: {key}")
    assert "hosts.local.console.tls_key" not in _problems_or_none(raw)
    raw["hosts"]["local"]["console"] = {"bind": "127.0.0.1", "tls_cert": str(cert)}      # the key is elsewhere
    with_policy(f"console:\n  tls_cert: {cert}")
    assert "must hold the key" in _problems(raw)["hosts.local.console.tls_cert"]


def _problems_or_none(raw) -> dict[str, str]:
    from components.config.loader import declare
    try:
        declare("dev", raw, config_keys={})
    except InputError as exc:
        return dict(exc.problems)
    return {}


def test_a_share_name_longer_than_a_virtiofs_tag_names_the_share(mocks, tmp_path):  # noqa: F811
    raw = raw_config(tmp_path)
    (tmp_path / "docs").mkdir()
    long = "team-documents-and-design-drafts-2026"              # 37 characters
    raw["shares"] = {long: {"path": str(tmp_path / "docs")}, "docs": {"path": str(tmp_path / "docs")}}
    raw["desktops"]["alice"]["shares"] = [long, "docs"]
    assert _problems(raw) == {f"shares.{long}": f"{long!r} is 37 characters: a share's name is its virtio-fs tag, "
                                                "which holds at most 36"}


def test_container_environment_names_and_mount_targets_libvirt_would_refuse(mocks, golden):  # noqa: F811
    raw = example_stack("lab")
    name = next(iter(raw["containers"]))
    raw["containers"][name]["env"] = {"GOOD_NAME": "1", "A=B": "x", "9LIVES": "y"}
    raw["containers"][name]["mounts"] = [{"source": "/tmp", "target": "data"}]
    problems = _problems(raw, "lab")
    assert set(k for k in problems if k.startswith(f"containers.{name}.")) == {
        f"containers.{name}.env.A=B", f"containers.{name}.env.9LIVES", f"containers.{name}.mounts[0].target"}
    assert problems[f"containers.{name}.mounts[0].target"] == \
        "'data' must be an absolute directory inside the container, not '/'"
    assert mocks.resources == []


def test_a_volume_group_the_host_does_not_have_names_the_source_name(mocks, with_policy, tmp_path):  # noqa: F811
    with_policy("volume_groups: ['*']", "libvirt_hosts: [localhost]")
    raw = raw_config(tmp_path)             # on libvirt's test driver, whose volume groups are testvg1 and testvg2
    raw["pools"]["vg"] = {"host": "local", "type": "logical", "source_name": "vg_desktops"}
    raw["pools"]["ok"] = {"host": "local", "type": "logical", "source_name": "testvg1"}
    raw["pools"]["built"] = {"host": "local", "type": "logical", "source_name": "vg_new",
                             "source_devices": ["/dev/vdb"]}     # made by vdesk from its devices: not looked for
    assert _problems(raw) == {"pools.vg.source_name": "host 'local' has no volume group 'vg_desktops' (it has: "
                                                      "testvg1, testvg2): give source_devices to build it"}
    assert mocks.resources == []
