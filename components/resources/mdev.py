"""MediatedDevice: a vGPU (mediated device) made on the host for one desktop, through libvirt's node devices.

libvirt (7.3 and later, with mdevctl on the host) defines and starts mediated devices as node
devices; the desktop's domain then names the instance by UUID. The UUID is derived from the
desktop's name and the GPU's index, so a preview can tell the instance is this desktop's own.
"""
from __future__ import annotations

import logging

import libvirt
import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from .. import xmlmodel
from ..errors import VdeskError
from ..host.connection import connect
from .provider import OWNER, DeclaredProvider, Prop

log = logging.getLogger(__name__)


def _device_xml(parent: str, mdev_type: str, uuid: str) -> str:
    return xmlmodel.MdevDefinition.new(parent, mdev_type, uuid).to_xml()


def find(conn, uuid: str):
    """The node device of the mdev instance with this UUID, or None."""
    for dev in conn.listAllDevices(libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV):
        try:
            if xmlmodel.NodeDevice.from_xml(dev.XMLDesc(0)).mdev_uuid == uuid:
                return dev
        except libvirt.libvirtError:
            continue
    return None


def choose_parent(conn, mdev_type: str, parent: str | None) -> str:
    """The node device name of the PCI device to make the instance on: the one asked for, else the first (by
    address) that can still make one of this type."""
    offering = []
    for dev in conn.listAllDevices(libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV_TYPES):
        node = xmlmodel.NodeDevice.from_xml(dev.XMLDesc(0))
        for t in node.mdev_types:
            if t.id == mdev_type:
                address = xmlmodel.format_pci_address(node.pci_domain or 0, node.pci_bus or 0, node.pci_slot or 0,
                                                      node.pci_function or 0)
                offering.append((address, node.name, t.available or 0))
    if parent is not None:
        wanted = xmlmodel.format_pci_address(*xmlmodel.split_pci_address(parent))
        offering = [o for o in offering if o[0] == wanted]
    usable = sorted(o for o in offering if o[2] > 0)
    if not usable:
        where = f"on {parent}" if parent else "on any device of the host"
        raise VdeskError(f"no {mdev_type!r} mediated device can be made {where} (none left)")
    return usable[0][1]


class MdevProvider(DeclaredProvider):
    PROPS = {
        "host_uri": Prop(str, required=True, replaces=True),
        "uuid": Prop(str, required=True, replaces=True),
        "type": Prop(str, required=True, replaces=True, doc="the mediated device type, e.g. nvidia-222"),
        "parent": Prop(str, replaces=True, doc="the PCI device to make it on (default: any that offers the type)"),
        "owner": OWNER,
    }
    OUTPUTS = ("device",)
    JOURNAL_KIND = "mdev"

    def journal_name(self, props):
        return props["uuid"]

    def create(self, props):
        with connect(props["host_uri"]) as conn:
            if find(conn, props["uuid"]) is not None:
                raise VdeskError(f"a mediated device {props['uuid']} already exists on {props['host_uri']}")
            parent = choose_parent(conn, props["type"], props.get("parent"))
            dev = conn.nodeDeviceDefineXML(_device_xml(parent, props["type"], props["uuid"]), 0)
            try:
                dev.create(0)
                dev.setAutostart(1)
            except libvirt.libvirtError:
                dev.undefine(0)
                raise
            return CreateResult(props["uuid"], {**self.inputs_of(props), "device": dev.name()})

    def read(self, id_, props):
        with connect(props["host_uri"]) as conn:
            dev = find(conn, props["uuid"])
            return ReadResult(id_, {**self.inputs_of(props), "device": dev.name()}) if dev else ReadResult("", {})

    def update(self, _id, _olds, news):
        return UpdateResult({**self.inputs_of(news), "device": _olds.get("device")})

    def delete(self, _id, props):
        with connect(props["host_uri"]) as conn:
            dev = find(conn, props["uuid"])
            if dev is None:
                return
            if dev.isActive():
                dev.destroy()
            dev.undefine(0)


class MediatedDevice(Resource):
    """A vGPU instance of `type` on the host, for one desktop."""

    uuid: pulumi.Output[str]

    def __init__(self, name: str, *, host_uri: str, uuid: str, type: str, parent: str | None = None, opts=None):
        super().__init__(MdevProvider(), name, MdevProvider.resource_props(
            "MediatedDevice", {"host_uri": host_uri, "uuid": uuid, "type": type, "parent": parent,
                               "owner": pulumi.get_stack()}), opts)
