"""The administrator's policy: what a (possibly hostile) stack may make vdesk touch."""
from __future__ import annotations

import os
import subprocess

import pytest

from components.host import policy


@pytest.fixture
def roots(tmp_path):
    allowed = tmp_path / "allowed"
    (allowed / "images").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    file = tmp_path / "policy.yaml"
    file.write_text(f"images: [{allowed / 'images'}]\npools: [{allowed}]\nshares: []\n"
                    "transports: [unix, ssh]\nlibvirt_hosts: [localhost, kvm2, kvm2.example.org]\n")
    return tmp_path, policy.load(file)


def test_paths_inside_an_allowed_root_pass_and_others_name_the_roots(roots):
    tmp, p = roots
    assert p.path_problem("images", str(tmp / "allowed" / "images" / "x.qcow2")) is None
    assert p.path_problem("pools", str(tmp / "allowed")) is None
    problem = p.path_problem("images", "/etc/shadow")
    assert "'/etc/shadow' is outside the images roots" in problem and str(tmp / "allowed" / "images") in problem
    assert "outside the pools roots" in p.path_problem("pools", "/")
    assert "(none;" in p.path_problem("shares", str(tmp / "allowed"))


def test_a_symlink_inside_a_root_cannot_lead_out_of_it(roots):
    tmp, p = roots
    link = tmp / "allowed" / "images" / "shadow.qcow2"
    os.symlink("/etc/shadow", link)
    assert "resolves to /etc/shadow" in p.path_problem("images", str(link))


@pytest.mark.parametrize("path,message", [
    ("relative/x", "must be an absolute path"),
    ("/srv/../etc/shadow", "must not contain '..'"),
    ("", "must be an absolute path"),
    ("/tmp/a\nb", "must be an absolute path"),
    (7, "must be an absolute path"),
])
def test_malformed_paths_are_refused(roots, path, message):
    assert message in roots[1].path_problem("pools", path)


def test_remote_paths_are_compared_as_written(roots):
    tmp, p = roots
    assert p.path_problem("pools", str(tmp / "allowed" / "x"), local=False) is None


@pytest.mark.parametrize("uri", [
    "qemu:///system", "qemu+ssh://admin@kvm2.example.org/system", "qemu+ssh://kvm2:2222/system?no_tty=1",
    "lxc:///system", "test:///default", "qemu+unix:///session",
])
def test_libvirt_uris_vdesk_uses_pass(roots, uri):
    assert roots[1].uri_problem(uri) is None


@pytest.mark.parametrize("uri,message", [
    ("http://example.org/", "scheme 'http' is not a libvirt driver"),
    ("qemu+ext:///system?command=/tmp/evil", "transport 'ext' is not one vdesk allows"),
    ("qemu+ssh://kvm2/system?keyfile=/root/.ssh/id_rsa", "parameter 'keyfile' is not allowed"),
    ("qemu+ssh://kvm2/system?netcat=/tmp/nc", "parameter 'netcat' is not allowed"),
    ("qemu+unix:///system?socket=/tmp/evil.sock", "parameter 'socket' is not allowed"),
    ("qemu+tls://kvm2/system", "transport 'tls' is not allowed on this machine"),
    ("qemu+ssh://root:hunter2@kvm2/system", "must not carry a password"),
    ("qemu+ssh://kvm2/etc/shadow", "the path must be /system or /session"),
    ("qemu+ssh://kvm_2!/system", "is not a host name"),
    ("test:///etc/passwd", "scheme 'test' is not a libvirt driver"),
    ("qemu:///system\nx", "must be 'embedded' or a libvirt URI"),
    ("qemu+ssh://[::1/system", "is not a URI"),
    ("qemu+ssh://kvm3.example.org/system", "host 'kvm3.example.org' is not allowed on this machine"),
    ("qemu+ssh://kvm2/system?no_verify=1", "parameter 'no_verify' turns off or weakens the check"),
])
def test_dangerous_or_malformed_uris_are_refused_before_any_connection(roots, uri, message):
    assert message in roots[1].uri_problem(uri)


def test_without_a_policy_file_only_vdesks_own_directories_are_allowed(tmp_path, monkeypatch):
    monkeypatch.setenv("VDESK_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("VDESK_CACHE", str(tmp_path / "cache"))
    p = policy.load(tmp_path / "absent.yaml")
    assert p.source == "built-in defaults"
    assert p.path_problem("images", str(tmp_path / "cache" / "images" / "debian12" / "disk.qcow2")) is None
    assert p.path_problem("pools", str(tmp_path / "state" / "hosts" / "local" / "pools" / "dev-main")) is None
    assert p.path_problem("images", str(tmp_path / "own.qcow2")) is not None
    assert p.devices == ()


@pytest.mark.parametrize("text,message", [
    ("images: /srv", "images must be a list of absolute paths"),
    ("pools: [relative]", "pools must be a list of absolute paths"),
    ("everything: [/]", "unknown key(s) everything"),
    ("transports: [ext]", "transports must be a list"),
    ("[", "cannot read the host policy"),
    ("bridges: br0\n", "bridges must be a list of names"),
    ("writable_shares: [relative/dir]\n", "writable_shares must be a list of absolute paths"),
    ("containers_without_userns: yes please\n", "containers_without_userns must be true or false"),
    ("brigdes: [br0]\n", "unknown key(s) brigdes"),
])
def test_a_malformed_policy_is_the_administrators_error(tmp_path, text, message):
    file = tmp_path / "policy.yaml"
    file.write_text(text)
    with pytest.raises(policy.PolicyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        policy.load(file)


# -- "images must really be disk images" --------------------------------------------------------

def _qemu_img(*args):
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def test_a_standalone_qcow2_and_a_partitioned_raw_disk_are_images(tmp_path):
    _qemu_img("create", "-f", "qcow2", str(tmp_path / "a.qcow2"), "16M")
    assert policy.disk_image_problem(str(tmp_path / "a.qcow2")) is None
    raw = bytearray(2048)
    raw[510:512] = b"\x55\xaa"
    (tmp_path / "mbr.raw").write_bytes(bytes(raw))
    assert policy.disk_image_problem(str(tmp_path / "mbr.raw")) is None
    gpt = bytearray(2048)
    gpt[512:520] = b"EFI PART"
    (tmp_path / "gpt.raw").write_bytes(bytes(gpt))
    assert policy.disk_image_problem(str(tmp_path / "gpt.raw")) is None


def test_files_that_are_not_disk_images_are_refused(tmp_path):
    (tmp_path / "shadow").write_text("root:$6$abc:19000:0:99999:7:::\n")
    assert "is not a disk image" in policy.disk_image_problem(str(tmp_path / "shadow"))
    assert "cannot be read" in policy.disk_image_problem(str(tmp_path / "missing"))


def test_a_qcow2_that_points_at_another_file_is_refused(tmp_path):
    (tmp_path / "secret").write_bytes(b"s" * 4096)
    _qemu_img("create", "-f", "qcow2", "-b", str(tmp_path / "secret"), "-F", "raw", str(tmp_path / "x.qcow2"))
    assert "on a backing file" in policy.disk_image_problem(str(tmp_path / "x.qcow2"))
    _qemu_img("create", "-f", "qcow2", "-o", f"data_file={tmp_path / 'secret'}", str(tmp_path / "d.qcow2"), "4K")
    assert "external data file" in policy.disk_image_problem(str(tmp_path / "d.qcow2"))


def test_the_default_pool_root_is_each_embedded_hosts_own_pools_not_the_rest_of_its_state(tmp_path, monkeypatch):
    monkeypatch.setenv("VDESK_STATE", str(tmp_path / "state"))
    p = policy.load(tmp_path / "absent.yaml")
    hosts = tmp_path / "state" / "hosts"
    assert p.path_problem("pools", str(hosts / "other" / "pools")) is None
    for elsewhere in ("local/console", "local/run/libvirt", "local", "", "local/x/pools"):
        assert "outside the pools roots" in p.path_problem("pools", str(hosts / elsewhere)), elsewhere
