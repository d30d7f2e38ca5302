"""A share's path is checked again when it is used, and libvirt gets its resolved path."""
from __future__ import annotations

import pytest

from components import xmlmodel
from components.errors import VdeskError
from components import rootexec
from components.resources.domain import desired_model, observed_inputs, shares_at_use

LOCAL = "qemu:///system?socket=/run/vdesk-test.sock"   # shares_at_use opens no connection


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """A policy allowing shares under tmp/shares only, and a share made there (as preview saw it)."""
    (tmp_path / "shares" / "team").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (tmp_path / "policy.yaml").write_text(f"shares: [{tmp_path / 'shares'}]\n")
    monkeypatch.setenv("VDESK_POLICY", str(tmp_path / "policy.yaml"))
    monkeypatch.setenv("VDESK_LIBEXEC", str(tmp_path / "libexec"))
    return tmp_path


def _props(source, readonly=False):
    return {"host_uri": LOCAL, "name": "vm", "shares": [{"source": str(source), "tag": "team", "readonly": readonly}]}


def test_a_path_swapped_for_a_symlink_after_preview_is_refused_at_use(roots):
    team = roots / "shares" / "team"
    assert shares_at_use(_props(team))["shares"][0]["source"] == str(team)     # what preview allowed
    team.rmdir()
    team.symlink_to(roots / "secret")                                         # the swap
    with pytest.raises(VdeskError, match=r"shares\[0\].source: .*team' now resolves to .*secret, which is refused "
                                         r"at use: .* is outside the shares roots"):
        shares_at_use(_props(team))


def test_libvirt_gets_the_resolved_path_and_a_refresh_shows_the_declared_one(roots):
    (roots / "shares" / "link").symlink_to(roots / "shares" / "team")         # inside the roots: allowed
    props = _props(roots / "shares" / "link")
    used = shares_at_use(props)
    model = desired_model({**used, "memory": 512 * 1024**2, "vcpus": 1, "boot": "bios"})
    assert [(f.source_dir, f.binary) for f in model.shared_dirs] == [
        (str(roots / "shares" / "team"), rootexec.installed_path("virtiofsd-rw"))]
    assert rootexec.owner_problem(rootexec.installed_path("virtiofsd-rw")) is None   # installed, root's alone
    live = xmlmodel.Domain.from_xml(model.to_xml())
    assert observed_inputs(live, props)["shares"] == props["shares"]             # no drift from the resolution


def test_a_share_served_by_another_virtiofsd_reads_as_drift(roots):
    props = _props(roots / "shares" / "team", readonly=True)
    model = desired_model({**props, "memory": 512 * 1024**2, "vcpus": 1, "boot": "bios"})
    model.shared_dirs[0].binary = "/home/someone/vdesk/tools/virtiofsd-ro"     # a domain defined from a checkout
    live = xmlmodel.Domain.from_xml(model.to_xml())
    assert observed_inputs(live, props)["shares"][0]["readonly"] is None


def test_the_test_driver_and_remote_hosts_are_left_as_declared(roots):
    for uri in ("test:///default", "qemu+ssh://admin@kvm2/system"):
        props = {**_props("/srv/not-here"), "host_uri": uri}
        assert shares_at_use(props) is props


def test_a_container_mount_swapped_for_a_symlink_after_preview_is_refused_at_use(roots, monkeypatch):
    from components.resources.container import mounts_at_use
    (roots / "policy.yaml").write_text(f"container_mounts: [{roots / 'shares'}]\n")
    team = roots / "shares" / "team"
    props = {"host_uri": "lxc:///system", "mounts": [{"source": str(team), "target": "/mnt/team"}]}
    assert mounts_at_use(props) == [{"source": str(team), "target": "/mnt/team", "readonly": True}]
    team.rmdir()
    team.symlink_to(roots / "secret")
    with pytest.raises(VdeskError, match=r"mounts\[0\].source: .*team' now resolves to .*secret, which is refused "
                                         r"at use: .* is outside the container mounts roots"):
        mounts_at_use(props)


def test_a_pool_path_swapped_for_a_symlink_after_preview_is_refused_at_use(roots):
    from components.resources.pool import path_at_use
    (roots / "policy.yaml").write_text(f"pools: [{roots / 'shares'}]\n")
    team = roots / "shares" / "team"
    props = {"host_uri": LOCAL, "type": "dir", "name": "p", "path": str(team)}
    assert path_at_use(props)["path"] == str(team)
    team.rmdir()
    team.symlink_to(roots / "secret")
    with pytest.raises(VdeskError, match=r"^path: .*team' now resolves to .*secret, which is refused at use"):
        path_at_use(props)
    assert path_at_use({**props, "type": "logical", "path": "/dev/vg"})["path"] == "/dev/vg"   # a volume group


def test_an_image_file_swapped_for_a_symlink_after_preview_is_refused_at_upload(roots, conn):
    import subprocess
    from components.resources.volume import VolumeProvider
    images = roots / "images"
    images.mkdir()
    (roots / "policy.yaml").write_text(f"images: [{images}]\n")
    own = images / "own.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(own), "16M"], check=True)
    from components.resources.atuse import image_file
    assert image_file(str(own), "source_path", disk=True) == str(own)          # what preview allowed
    props = {"host_uri": "test:///default", "pool": "default-pool", "name": "own-disk.qcow2", "format": "qcow2",
             "source_path": str(own)}
    (roots / "secret" / "shadow").write_text("root:x:0:0\n")
    own.unlink()
    own.symlink_to(roots / "secret" / "shadow")                                  # the swap
    with pytest.raises(VdeskError, match=r"^source_path: .*own.qcow2' now resolves to .*shadow, which is refused at "
                                         r"use: .* is outside the images roots"):
        VolumeProvider().create(props)
    # inside the roots, but a qcow2 on a backing file (it would read the file it names): refused too
    base = images / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "16M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base),
                    str(images / "on-backing.qcow2")], check=True)
    own.unlink()
    own.symlink_to(images / "on-backing.qcow2")
    with pytest.raises(VdeskError, match=r"^source_path: .*own.qcow2' is refused at use: .* on a backing file"):
        VolumeProvider().create(props)
    assert "own-disk.qcow2" not in conn.storagePoolLookupByName("default-pool").listVolumes()
