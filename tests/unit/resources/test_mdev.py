"""MediatedDevice: a vGPU made on the host for a desktop, on the GPU host fixture.

libvirt's test driver lists node devices but cannot define one (virNodeDeviceDefineXML needs mdevctl on a
real host), so the host here is the test driver's GPU host with that one call added: it records the
document vdesk sends, which is checked, and the new device then lists like the fixture's own.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import libvirt
import pytest

from components import xmlmodel
from components.errors import VdeskError
from components.resources import mdev

GPU_HOST = f"test://{Path(__file__).resolve().parents[2] / 'fixtures' / 'hosts' / 'gpu-host.xml'}"
MINE = "2203fc03-3a06-5d5a-b4b2-c942ac67e7f2"    # the fixture's existing instance


class _Made:
    def __init__(self, xml: str):
        self.xml, self.active, self.defined, self.autostart = xml, False, True, False

    def name(self):
        return "mdev_" + xmlmodel.NodeDevice.from_xml(self.xml).mdev_uuid.replace("-", "_")

    def XMLDesc(self, _flags):
        return self.xml

    def create(self, _flags):
        self.active = True

    def setAutostart(self, on):
        self.autostart = bool(on)

    def isActive(self):
        return self.active

    def destroy(self):
        self.active = False

    def undefine(self, _flags):
        self.defined = False


class _Host:
    """The test driver's GPU host, plus nodeDeviceDefineXML."""

    def __init__(self):
        self.conn = libvirt.open(GPU_HOST)
        self.made: list[_Made] = []

    def listAllDevices(self, flags):
        made = [d for d in self.made if d.defined] if flags & libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV else []
        return self.conn.listAllDevices(flags) + made

    def nodeDeviceDefineXML(self, xml, _flags):
        self.made.append(_Made(xml))
        return self.made[-1]


@pytest.fixture
def host(monkeypatch):
    h = _Host()
    monkeypatch.setattr(mdev, "connect", lambda _uri: contextlib.nullcontext(h))
    yield h
    h.conn.close()


def props(**more):
    return {"host_uri": GPU_HOST, "uuid": "0b9c1f2e-5d1a-5e4b-8c3d-2a1f0e9d8c7b", "type": "nvidia-222",
            "parent": None, "owner": "", **more}


def test_a_vgpu_is_defined_on_a_parent_that_offers_its_type_started_and_removed(host):
    provider = mdev.MdevProvider()
    created = provider.create(props())
    made = host.made[0]
    node = xmlmodel.NodeDevice.from_xml(made.xml)
    assert (node.parent, node.mdev_type, node.mdev_uuid) == ("pci_0000_01_00_0", "nvidia-222", props()["uuid"])
    assert made.active and made.autostart and created.outs["device"] == made.name()
    assert provider.read(created.id, created.outs).id == created.id
    provider.delete(created.id, created.outs)
    assert not made.active and not made.defined
    assert provider.read(created.id, created.outs).id == ""
    provider.delete(created.id, created.outs)          # gone already: quietly


def test_a_uuid_in_use_and_a_type_nobody_offers_are_refused(host):
    with pytest.raises(VdeskError, match="already exists"):
        mdev.MdevProvider().create(props(uuid=MINE))
    with pytest.raises(VdeskError, match="no 'nvidia-999' mediated device can be made on any device"):
        mdev.MdevProvider().create(props(type="nvidia-999"))
    with pytest.raises(VdeskError, match="on 0000:02:00.0"):
        mdev.MdevProvider().create(props(parent="0000:02:00.0"))
    assert host.made == []
