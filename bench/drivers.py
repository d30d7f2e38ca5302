"""The two ways of making a desktop that the bench compares: raw libvirt calls and vdesk's providers."""
from __future__ import annotations

import contextlib
from typing import Any

import libvirt

from components import xmlmodel
from components.resources.domain import DomainProvider, desired_model
from components.errors import VdeskError
from components.resources.volume import VolumeProvider

from .testbed import Testbed

MEMORY_MIB = 32
SHUTDOWN_TIMEOUT_S = 1  # the smallest grace vdesk allows; the OS-less guest never answers ACPI


def domain_props(bed: Testbed, name: str, disk_path: str) -> dict:
    """What a Pulumi program would declare for the bench desktop."""
    return {"host_uri": bed.uri, "name": name, "owner": "bench", "domain_type": "qemu", "boot": "bios",
            "memory_mib": MEMORY_MIB, "vcpus": 1, "disks": [{"path": disk_path}], "nics": [],
            "running": True, "shutdown_timeout_s": SHUTDOWN_TIMEOUT_S}


def raw_domain_xml(name: str, disk_path: str) -> str:
    """The same guest as desired_model() makes, written by hand (checked by same_guest())."""
    kib = MEMORY_MIB * 1024
    return f"""<domain type="qemu">
  <name>{name}</name>
  <memory unit="KiB">{kib}</memory>
  <currentMemory unit="KiB">{kib}</currentMemory>
  <vcpu>1</vcpu>
  <os><type arch="x86_64">hvm</type><boot dev="hd"/></os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <metadata>
    <b:desktop xmlns:b="{xmlmodel.VDESK_NS}"><b:stack>bench</b:stack><b:resource>{name}</b:resource></b:desktop>
  </metadata>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2"/><source file="{disk_path}"/><target dev="vda" bus="virtio"/>
    </disk>
    <channel type="unix"><target type="virtio" name="org.qemu.guest_agent.0"/></channel>
    <graphics type="vnc" autoport="yes"><listen type="address" address="127.0.0.1"/></graphics>
    <serial type="pty"/>
    <console type="pty"><target type="serial"/></console>
    <rng model="virtio"><backend model="random">/dev/urandom</backend></rng>
  </devices>
</domain>"""


def same_guest(bed: Testbed) -> list[str]:
    """Differences between the raw XML and vdesk's model, both ways: must be none for a fair race."""
    props = domain_props(bed, "bench-check", "/x/disk.qcow2")
    ours = desired_model(props)
    raw = xmlmodel.Domain.from_xml(raw_domain_xml("bench-check", "/x/disk.qcow2"))
    return ours.differences(raw) + raw.differences(ours)


class RawDriver:
    """The floor: one shared connection and the fewest libvirt calls per desktop."""

    key = "raw"

    def __init__(self, bed: Testbed):
        self.bed = bed

    @contextlib.contextmanager
    def session(self):
        conn = libvirt.open(self.bed.uri)
        try:
            yield conn
        finally:
            conn.close()

    def create(self, conn, name: str) -> Any:
        pool = conn.storagePoolLookupByName(self.bed.pool)
        vol = pool.createXML(
            f"<volume><name>{name}.qcow2</name><capacity unit='bytes'>{self.bed.base_bytes}</capacity>"
            f"<target><format type='qcow2'/></target><backingStore><path>{self.bed.base_path}</path>"
            "<format type='qcow2'/></backingStore></volume>", 0)
        dom = conn.defineXML(raw_domain_xml(name, vol.path()))
        dom.create()
        return name

    def destroy(self, conn, name: str, _token: Any) -> None:
        dom = conn.lookupByName(name)
        dom.destroy()
        dom.undefine()
        conn.storagePoolLookupByName(self.bed.pool).storageVolLookupByName(f"{name}.qcow2").delete(0)


def _checked(provider, props: dict) -> dict:
    result = provider.check({}, props)
    if result.failures:
        raise VdeskError("; ".join(f"{f.property}: {f.reason}" for f in result.failures))
    return result.inputs


class VdeskDriver:
    """vdesk's providers, called as the Pulumi engine calls them: check, create; delete with the outputs."""

    key = "vd"

    def __init__(self, bed: Testbed):
        self.bed = bed

    @contextlib.contextmanager
    def session(self):
        yield None  # every provider operation opens its own connection

    def create(self, _conn, name: str) -> Any:
        vp, dp = VolumeProvider(), DomainProvider()
        vol = vp.create(_checked(vp, {"host_uri": self.bed.uri, "pool": self.bed.pool, "name": f"{name}.qcow2",
                                      "backing_path": self.bed.base_path}))
        dom = dp.create(_checked(dp, domain_props(self.bed, name, vol.outs["path"])))
        return vol, dom

    def destroy(self, _conn, _name: str, token: Any) -> None:
        vol, dom = token
        DomainProvider().delete(dom.id, dom.outs)
        VolumeProvider().delete(vol.id, vol.outs)

