"""examples/program: a hand-written Pulumi program on vdesk's component API, previewed with mocks."""
from __future__ import annotations

import runpy
from pathlib import Path

import pulumi
import pytest

from components.host.resolve import ResolvedHost
from components.images.golden import ImageFiles
from tests.unit.config.test_program import RecordingMocks, _fake_render, after

PROGRAM = Path(__file__).resolve().parents[2] / "examples" / "program" / "__main__.py"
PARTS = ("credentials", "disk", "seed", "vm", "ready")


@pytest.fixture
def mocks(monkeypatch):
    m = RecordingMocks()
    pulumi.runtime.set_mocks(m, project="vdesk-program", stack="demo", preview=True)
    monkeypatch.setattr("components.host.resolve.resolve_host", lambda name, uri, accel, probe_kernel, **_: ResolvedHost(
        name, "test:///default", "/run/netns/vdesk-unit", "qemu", "tcg requested explicitly", "/pools", "/displays",
        display_listen="socket", spice=True))
    monkeypatch.setattr("components.images.golden.resolve", lambda src: ImageFiles(
        src.name, "/images/debian12/disk.qcow2", "kernel", "recipe0123456789abcdef", "/images/debian12/vmlinuz",
        "/images/debian12/initrd.img", "console=ttyS0 root=/dev/vda"))
    monkeypatch.setattr("components.desktop.component.render_seed", _fake_render)
    return m


@pulumi.runtime.test
def test_the_example_declares_two_desktops_on_one_network(mocks):
    namespace = runpy.run_path(str(PROGRAM))
    desktops = namespace["desktops"]

    def check(_):
        assert mocks.names() == sorted([
            "main", "lan", "debian12", "debian12-main-disk", "debian12-main-kernel", "debian12-main-initrd",
            *(f"{p}-{part}" for p in ("ada", "grace") for part in PARTS), "ada", "grace"])
        ada, grace = mocks.named("ada-vm"), mocks.named("grace-vm")
        assert ada["name"] == "demo-ada" and grace["name"] == "demo-grace"
        assert ada["nics"][0]["network"] == grace["nics"][0]["network"] == "demo-lan"
        assert ada["nics"][0]["mac"] != grace["nics"][0]["mac"]
        # both disks are linked clones on the one imported image
        image = mocks.named("debian12-main-disk")["name"]
        assert image.startswith("demo-debian12-recipe012345")
        assert mocks.named("ada-disk")["backing_path"] == mocks.named("grace-disk")["backing_path"]
        assert mocks.named("ada-ready")["checks"] == [{"service": "ssh"},
                                                       {"user": "ada", "groups": ["audio", "video"]}]

    return after(pulumi.Output.all(*(d.ip for d in desktops)), check)   # the gates are the last parts


def test_bad_arguments_are_refused_naming_the_field(mocks):
    from components import Desktop, DesktopArgs, Host, Image, ImageArgs, InputError, Network, NetworkArgs
    from components import StoragePool, StoragePoolArgs
    host = Host.embedded("local", accelerator="tcg")
    args = DesktopArgs(image=Image("img", ImageArgs(golden="debian12")),
                       pool=StoragePool("p", StoragePoolArgs(host=host)),
                       network=Network("n", NetworkArgs(host=host, cidr="10.9.0.0/24")),
                       memory="2 GB", vcpus=0, disk_clone="thin", address="10.9.0.1")
    with pytest.raises(InputError) as err:
        Desktop("bad", args)
    assert [path for path, _ in err.value.problems] == [
        "bad.memory", "bad.vcpus", "bad.disk_clone", "bad.address"]
    assert "2 GB" in str(err.value) and "gateway" in str(err.value)


def test_a_desktops_own_settings_are_checked_by_their_declaration_in_the_stack_files_words(mocks):
    from components import Desktop, DesktopArgs, Host, Image, ImageArgs, InputError, Network, NetworkArgs
    from components import StoragePool, StoragePoolArgs
    host = Host.embedded("local", accelerator="tcg")
    args = DesktopArgs(image=Image("img", ImageArgs(golden="debian12")),
                       pool=StoragePool("p", StoragePoolArgs(host=host)),
                       network=Network("n", NetworkArgs(host=host, cidr="10.9.0.0/24")),
                       memory=128, disk_backup_days=4000, home_on_removal="maybe", kernel_args="a;b",
                       secure_boot="yes", display_password_valid_for="3 weeks")
    with pytest.raises(InputError) as err:
        Desktop("bad", args)
    problems = dict(err.value.problems)
    assert len(problems) == len(err.value.problems) == 6       # each once, all at once
    assert problems["bad.memory"] == "must be at least 256MiB"
    assert problems["bad.disk_backup_days"] == "must be at most 3650, got 4000"
    assert problems["bad.home_on_removal"] == "'maybe' is not one of keep, delete"
    assert problems["bad.kernel_args"].startswith("must be kernel parameters separated by single spaces")
    assert problems["bad.secure_boot"] == "must be true or false"
    assert problems["bad.display_password_valid_for"].startswith("'3 weeks' is not a duration")
    assert mocks.resources == []

