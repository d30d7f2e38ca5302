"""Host capabilities read one way (xmlmodel.hostcaps): the answers the old ad-hoc readers gave, on libvirt's test
driver and on a real host's captured documents; and the XML vdesk writes for the host (probe, mdev) is golden."""
from __future__ import annotations

import re
from pathlib import Path

import libvirt
import pytest
from lxml import etree

from components import xmlmodel
from components.host import accel
from components.resources import mdev

GOLDEN = Path(__file__).with_name("golden")
HOSTS = Path(__file__).resolve().parents[2] / "fixtures" / "hosts"
REAL_CAPS = (HOSTS / "caps-qemu-x86_64.xml").read_text()
DOMCAPS = sorted(HOSTS.glob("domcaps-*.xml"))
MDEV = "2203fc03-3a06-5d5a-b4b2-c942ac67e7f2"


def _xpath(document: str, path: str, **variables):
    return etree.fromstring(document.encode()).xpath(path, **variables)


@pytest.fixture(params=["test:///default", "captured"])
def capabilities(request, conn) -> str:
    return conn.getCapabilities() if request.param == "test:///default" else REAL_CAPS


def test_the_guest_types_are_what_an_xpath_over_the_document_finds(capabilities):
    caps = xmlmodel.HostCapabilities.from_xml(capabilities)
    arch = _xpath(capabilities, "string(host/cpu/arch)")
    assert caps.arch == arch
    for os_type in ("hvm", "xen", "exe"):
        assert caps.offers(os_type) is (f"<os_type>{os_type}</os_type>" in capabilities)   # the old substring test
        assert caps.domain_types(os_type, arch) == set(_xpath(
            capabilities, "guest[os_type=$t]/arch[@name=$a]/domain/@type", t=os_type, a=arch))
        assert caps.emulator(os_type) == (_xpath(capabilities, "string(//guest[os_type=$t]/arch/emulator)",
                                                 t=os_type) or None)


def test_the_test_driver_and_a_real_host_say_what_they_run(conn):
    assert accel.host_domain_types(conn) == ("i686", {"test"})
    real = xmlmodel.HostCapabilities.from_xml(REAL_CAPS)
    assert (real.arch, real.domain_types("hvm", "x86_64")) == ("x86_64", {"qemu", "kvm"})
    assert real.emulator("hvm") == "/usr/bin/qemu-system-i386" and not real.offers("exe")
    assert [len(c.cpus) for c in xmlmodel.HostCapabilities.of(conn).cells] == [8, 8]


def test_capabilities_round_trip_through_the_model(capabilities):
    caps = xmlmodel.HostCapabilities.from_xml(capabilities)
    assert xmlmodel.HostCapabilities.from_xml(caps.to_xml()) == caps


@pytest.mark.parametrize("fixture", DOMCAPS, ids=lambda p: p.name)
def test_domain_capabilities_give_the_vcpu_limit_and_graphics_the_old_readers_found(fixture):
    text = fixture.read_text()
    caps = xmlmodel.DomainCapabilities.from_xml(text)
    assert caps.vcpu_max == int(re.search(r"<vcpu max='(\d+)'", text).group(1))
    assert caps.graphics_types == _xpath(text, "devices/graphics[@supported='yes']/enum[@name='type']/value/text()")


def test_a_real_kvm_host_offers_spice():
    caps = xmlmodel.DomainCapabilities.from_xml((HOSTS / "domcaps-kvm-x86_64.xml").read_text())
    assert {"vnc", "spice"} <= set(caps.graphics_types)


def test_the_accelerator_probe_is_the_golden_document_and_the_test_driver_takes_it(conn):
    xml = accel._probe_xml("vdesk-accel-probe-golden", "test", "i686", "/boot/vmlinuz",
                           "/tmp/vdesk-accel-golden/console.log")
    assert xml == (GOLDEN / "accel-probe.xml").read_text()
    desired = xmlmodel.Domain.from_xml(xml)
    dom = conn.defineXML(xml)
    try:
        # libvirt adds a <console> for the serial port; everything the probe declares reads back as declared
        assert desired.differences(xmlmodel.Domain.from_xml(dom.XMLDesc(0))) == ["consoles"]
    finally:
        dom.undefine()


def test_a_new_mdev_is_the_golden_document_and_reads_back_as_a_node_device():
    xml = mdev._device_xml("pci_0000_01_00_0", "nvidia-222", MDEV)
    assert xml == (GOLDEN / "mdev-definition.xml").read_text()
    assert xmlmodel.MdevDefinition.from_xml(xml) == xmlmodel.MdevDefinition.new("pci_0000_01_00_0", "nvidia-222", MDEV)
    node = xmlmodel.NodeDevice.from_xml(xml)
    assert (node.parent, node.capability, node.mdev_type, node.mdev_uuid) == (
        "pci_0000_01_00_0", "mdev", "nvidia-222", MDEV)


@pytest.mark.parametrize("cls,samples", [
    (xmlmodel.GuestType, lambda: xmlmodel.HostCapabilities.from_xml(REAL_CAPS).guests),
    (xmlmodel.GuestArch, lambda: xmlmodel.HostCapabilities.from_xml(REAL_CAPS).guests[0].arches),
    (xmlmodel.GuestDomain, lambda: xmlmodel.HostCapabilities.from_xml(REAL_CAPS).guests[0].arches[0].domains),
    (xmlmodel.MdevDefinition, lambda: [xmlmodel.MdevDefinition.new("pci_0000_01_00_0", "nvidia-222", MDEV)]),
])
def test_every_declared_property_is_exercised(cls, samples):
    unset = [name for name, _ in xmlmodel.declared_properties(cls)
             if all(getattr(s, name) in (None, []) for s in samples())]
    assert unset == [], f"{cls.__name__} properties never exercised: {unset}"
