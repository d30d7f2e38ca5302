"""Host devices and CPU settings in domain XML: golden documents, and libvirt (test driver) accepts them."""
from __future__ import annotations

from pathlib import Path

import libvirt
import pytest
from lxml import etree

from components import xmlmodel
from components.resources.domain import DomainProvider, desired_model

GOLDEN = Path(__file__).with_name("golden")
MDEV = "2203fc03-3a06-5d5a-b4b2-c942ac67e7f2"


def hardware_props(name="gpu-desk"):
    return {"host_uri": "test:///default", "name": name, "owner": "unit", "domain_type": "test", "boot": "kernel",
            "memory": 1024 * 1024**2, "vcpus": 2, "kernel": "/boot/vmlinuz", "cmdline": "root=/dev/vda",
            "cpu_mode": "custom", "cpu_model": "qemu64", "cpu_pinning": ["2", "3-4"],
            "hostdevs": [{"type": "pci", "address": "0000:01:00.0"}, {"type": "mdev", "uuid": MDEV}]}


@pytest.mark.parametrize("golden,model", [
    ("hostdev-pci.xml", lambda: xmlmodel.Hostdev.pci("01:00.0")),
    ("hostdev-mdev.xml", lambda: xmlmodel.Hostdev.mdev(MDEV)),
])
def test_generated_xml_is_the_golden_document(golden, model):
    assert model().to_xml() == (GOLDEN / golden).read_text()
    assert type(model()).from_xml((GOLDEN / golden).read_text()) == model()


def hardware_parts(xml: str) -> str:
    """The domain's <cpu>, <cputune> and <hostdev> elements (the rest of the document is other settings')."""
    root = etree.fromstring(xml.encode())
    return "\n".join(etree.tostring(el, encoding="unicode", with_tail=False)
                     for el in root.xpath("cpu | cputune | devices/hostdev")) + "\n"


def test_a_desktops_domain_carries_its_cpu_pins_and_devices_as_the_golden_document():
    assert hardware_parts(desired_model(hardware_props()).to_xml()) == (GOLDEN / "domain-hardware.xml").read_text()


def test_libvirt_accepts_it_and_reads_it_back_without_a_difference(conn):
    desired = desired_model(hardware_props("gpu-accepted"))
    dom = conn.defineXML(desired.to_xml())
    try:
        live = xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert desired.differences(live) == []
        assert [h.pci_address for h in live.hostdevs] == ["0000:01:00.0", None]
        assert [h.address_uuid for h in live.hostdevs] == [None, MDEV]
        dom.create()
        assert dom.isActive()
        dom.destroy()
    finally:
        dom.undefine()


def test_the_provider_reads_its_declaration_back_as_declared(conn):
    provider = DomainProvider()
    props = provider.check({}, hardware_props("gpu-provider")).inputs
    created = provider.create(props)
    try:
        observed = provider.read(created.id, created.outs).outs
        assert {k: observed[k] for k in ("cpu_mode", "cpu_model", "cpu_pinning", "hostdevs")} == {
            k: props[k] for k in ("cpu_mode", "cpu_model", "cpu_pinning", "hostdevs")}
        assert provider.diff(created.id, observed, props).changes is False
    finally:
        provider.delete(created.id, created.outs)


@pytest.mark.parametrize("text,cpus,canonical", [
    ("2", [2], "2"), (3, [3], "3"), ("0-2,5", [0, 1, 2, 5], "0-2,5"), ("5,0,1,2", [0, 1, 2, 5], "0-2,5")])
def test_cpu_sets_are_written_as_libvirt_writes_them(text, cpus, canonical):
    assert xmlmodel.parse_cpuset(text) == cpus and xmlmodel.format_cpuset(cpus) == canonical


@pytest.mark.parametrize("bad", ["", "2-", "a", "3-1", -1, "1,,2"])
def test_what_is_no_cpu_set_says_so(bad):
    with pytest.raises(ValueError):
        xmlmodel.parse_cpuset(bad)


@pytest.mark.parametrize("address,parts", [("0000:01:00.0", (0, 1, 0, 0)), ("01:00.1", (0, 1, 0, 1)),
                                           ("000a:ff:1f.7", (10, 255, 31, 7))])
def test_pci_addresses(address, parts):
    assert xmlmodel.split_pci_address(address) == parts


@pytest.mark.parametrize("bad", ["01:00", "0000:100:00.0", "01:20.0", "01:00.8", "gpu0"])
def test_what_is_no_pci_address_says_so(bad):
    with pytest.raises(ValueError):
        xmlmodel.split_pci_address(bad)


@pytest.mark.parametrize("cls,sample", [
    (xmlmodel.Hostdev, [xmlmodel.Hostdev.pci("01:00.0"), xmlmodel.Hostdev.mdev(MDEV)]),
    (xmlmodel.VcpuPin, [xmlmodel.VcpuPin(vcpu=0, cpuset="1")]),
])
def test_every_declared_property_is_exercised(cls, sample):
    unset = [name for name, _ in xmlmodel.declared_properties(cls)
             if all(getattr(s, name) in (None, []) for s in sample)]
    assert unset == [], f"{cls.__name__} properties never exercised: {unset}"
