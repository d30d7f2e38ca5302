"""CPU and GPU settings against what a host really has: libvirt's test driver with host fixtures.

tests/fixtures/hosts/gpu-host.xml is a test-driver host with GPUs (one offering vGPU types, one sharing its
IOMMU group with its audio function, one in no IOMMU group) and a PCI bridge; test:///default is a host with
two NUMA cells. The test driver has no domain capabilities, so those are real documents captured from this
machine's libvirt (TCG and KVM), and one with VFIO and mdev added, as a GPU host reports them.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from components import xmlmodel
from components.host import hardware
from components.host.hardware import Gpu, HardwareDemand

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hosts"
GPU_HOST = f"test://{FIXTURES / 'gpu-host.xml'}"


def domcaps(name: str) -> xmlmodel.DomainCapabilities:
    return xmlmodel.DomainCapabilities.from_xml((FIXTURES / f"domcaps-{name}-x86_64.xml").read_text())


@pytest.fixture(scope="module")
def gpu_host():
    hw = hardware.read("gpu", GPU_HOST, "kvm")
    assert hw.domain_caps is None      # the test driver does not say; the fixture does
    return hardware.HostHardware(**{**hw.__dict__, "domain_caps": domcaps("kvm-vfio")})


@pytest.fixture(scope="module")
def tcg_host():
    hw = hardware.read("tcg", "test:///default", "test")
    return hardware.HostHardware(**{**hw.__dict__, "domain_caps": domcaps("qemu")})


def ask(host="gpu", name="ann", **settings) -> HardwareDemand:
    return HardwareDemand(name, host, fields=(("cpu", f"desktops.{name}.cpu"), ("gpus", f"desktops.{name}.gpus")),
                          **settings)


def test_the_host_is_read_from_libvirt(gpu_host, tcg_host):
    assert gpu_host.cpus == tuple(range(16)) and gpu_host.cells == ()
    assert set(gpu_host.pci) == {"0000:00:01.0", "0000:01:00.0", "0000:02:00.0", "0000:02:00.1", "0000:03:00.0"}
    assert gpu_host.pci["0000:02:00.0"].group == ("0000:02:00.0", "0000:02:00.1")
    assert gpu_host.mdev_types == {"nvidia-222": {"0000:01:00.0": 2}, "nvidia-230": {"0000:01:00.0": 1}}
    assert gpu_host.mdev_instances == {"2203fc03-3a06-5d5a-b4b2-c942ac67e7f2": "nvidia-222"}
    assert tcg_host.cells == ((0, tuple(range(8))), (1, tuple(range(8, 16))))


ALONE = [
    ("cpu-passthrough-under-tcg", "tcg", dict(cpu_mode="host-passthrough"),
     [("desktops.ann.cpu.mode", "CPU mode 'host-passthrough' is not supported by host 'tcg' for qemu guests (it "
                                "supports: host-model, custom)")]),
    ("cpu-host-model-under-tcg", "tcg", dict(cpu_mode="host-model"), []),
    ("cpu-model-unknown", "tcg", dict(cpu_model="Pentium5"),
     [("desktops.ann.cpu.model", "host 'tcg' knows no CPU model 'Pentium5' (usable there: qemu64, qemu32, "
                                 "pentium3, pentium2, pentium, n270, kvm64, kvm32, and 10 more)")]),
    ("cpu-model-not-usable", "gpu", dict(cpu_model="qemu64"),
     [("desktops.ann.cpu.model", "CPU model 'qemu64' cannot run on host 'gpu': its CPU lacks features the model "
                                 "needs (usable there: pentium3, pentium2, pentium, 486)")]),
    ("cpu-model-usable", "tcg", dict(cpu_model="Westmere"), []),
    ("pin-to-a-missing-cpu", "gpu", dict(pinning=(2, "15-17")),
     [("desktops.ann.cpu.pinning[1]", "host 'gpu' has no CPU 16-17 (its CPUs: 0-15)")]),
    ("pin-names-numa-cells", "tcg", dict(pinning=(16,)),
     [("desktops.ann.cpu.pinning[0]", "host 'tcg' has no CPU 16 (its CPUs: 0-15; NUMA cells 0: 0-7, 1: 8-15)")]),
    ("gpu-missing", "gpu", dict(gpus=(Gpu(pci="0000:05:00.0"),)),
     [("desktops.ann.gpus[0].pci", "host 'gpu' has no PCI device 0000:05:00.0 (its display devices: "
                                   "0000:01:00.0, 0000:02:00.0, 0000:03:00.0)")]),
    ("gpu-is-a-bridge", "gpu", dict(gpus=(Gpu(pci="00:01.0"),)),
     [("desktops.ann.gpus[0].pci", "0000:00:01.0 on host 'gpu' is a PCI bridge (Xeon E3-1200 PCI Express Root "
                                   "Port): it cannot be assigned to a guest")]),
    ("gpu-without-iommu", "gpu", dict(gpus=(Gpu(pci="0000:03:00.0"),)),
     [("desktops.ann.gpus[0].pci", "0000:03:00.0 on host 'gpu' cannot be assigned: it is in no IOMMU group (the "
                                   "host needs VT-d/AMD-Vi enabled and intel_iommu=on or amd_iommu=on)")]),
    ("gpu-sharing-its-group", "gpu", dict(gpus=(Gpu(pci="0000:02:00.0"),)),
     [("desktops.ann.gpus[0].pci", "0000:02:00.0 on host 'gpu' shares IOMMU group 13 with 0000:02:00.1: a guest "
                                   "can only have the whole group, so list those in gpus too")]),
    ("gpu-with-its-whole-group", "gpu", dict(gpus=(Gpu(pci="0000:02:00.0"), Gpu(pci="0000:02:00.1"))), []),
    ("gpu-twice-in-one-desktop", "gpu", dict(gpus=(Gpu(pci="0000:01:00.0"), Gpu(pci="01:00.0"))),
     [("desktops.ann.gpus[1].pci", "0000:01:00.0 is already gpus[0] of this desktop")]),
    ("mdev-type-not-offered", "gpu", dict(gpus=(Gpu(mdev="nvidia-999"),)),
     [("desktops.ann.gpus[0].mdev", "no device on host 'gpu' offers mediated device type 'nvidia-999' (offered: "
                                    "nvidia-222, nvidia-230)")]),
    ("mdev-parent-not-offering", "gpu", dict(gpus=(Gpu(mdev="nvidia-222", parent="0000:02:00.0"),)),
     [("desktops.ann.gpus[0].mdev", "0000:02:00.0 on host 'gpu' does not offer 'nvidia-222' (these do: "
                                    "0000:01:00.0)")]),
    ("gpu-on-a-host-without-passthrough", "tcg", dict(gpus=(Gpu(mdev="nvidia-222"),)),
     [("desktops.ann.gpus[0].mdev", "host 'tcg' cannot pass mdev devices to guests (its domain capabilities "
                                    "offer: pci, scsi, usb)")]),
]


@pytest.mark.parametrize("host,settings,expected", [c[1:] for c in ALONE], ids=[c[0] for c in ALONE])
def test_what_a_host_can_never_give_names_the_field(gpu_host, tcg_host, host, settings, expected):
    assert hardware.problems([ask(host, **settings)], {"gpu": gpu_host, "tcg": tcg_host}) == expected


def test_two_desktops_claiming_one_device_is_an_error_naming_the_first(gpu_host):
    demands = [ask(name="ann", gpus=(Gpu(pci="0000:01:00.0"),)), ask(name="bob", gpus=(Gpu(pci="0000:01:00.0"),))]
    assert hardware.problems(demands, {"gpu": gpu_host}) == [
        ("desktops.bob.gpus[0].pci", "0000:01:00.0 on host 'gpu' is already claimed by desktop 'ann': a PCI device "
                                     "goes to one desktop only")]


def test_mediated_devices_are_counted_and_a_desktops_own_instance_is_not_counted_twice(gpu_host):
    mine = "2203fc03-3a06-5d5a-b4b2-c942ac67e7f2"       # already made for ann (in the fixture)
    vgpu = (Gpu(mdev="nvidia-222"),)
    demands = [ask(name="ann", gpus=vgpu, mdev_uuids=(mine,)), ask(name="bob", gpus=vgpu, mdev_uuids=("b",)),
               ask(name="cy", gpus=vgpu, mdev_uuids=("c",)), ask(name="dee", gpus=vgpu, mdev_uuids=("d",))]
    assert hardware.problems(demands, {"gpu": gpu_host}) == [
        ("desktops.dee.gpus[0].mdev", "host 'gpu' can make no more 'nvidia-222' devices (2 left before this "
                                      "stack's other desktops took 2)")]


def test_an_unreachable_host_is_not_checked(gpu_host):
    assert hardware.problems([ask(host="far", cpu_mode="host-passthrough")], {"gpu": gpu_host}) == []


def test_without_domain_capabilities_modes_are_not_guessed(gpu_host):
    bare = hardware.HostHardware(**{**gpu_host.__dict__, "domain_caps": None})
    assert hardware.problems([ask(cpu_mode="host-passthrough", cpu_model=None)], {"gpu": bare}) == []
