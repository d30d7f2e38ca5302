"""What a host says about itself: its capabilities (CPUs, NUMA cells, guest types), domain capabilities and node
devices.

These models only read libvirt's documents (getCapabilities, getDomainCapabilities, nodeDevice XMLDesc);
vdesk never writes them, and reads them nowhere else: `HostCapabilities.of(conn)` and
`DomainCapabilities.of(conn, domain_type)` are the one way in. Paths with a predicate pick one
<capability type=...> of several.
"""
from __future__ import annotations

from .base import Children, Field, TextList, XMLObject


class HostCpu(XMLObject):
    TAG = "cpu"
    id = Field("@id", int)
    socket_id = Field("@socket_id", int)
    core_id = Field("@core_id", int)
    siblings = Field("@siblings")


class NumaCell(XMLObject):
    TAG = "cell"
    id = Field("@id", int)
    memory_kib = Field("memory", "size:KiB", default_unit="KiB")
    cpus = Children(HostCpu, "cpus/cpu")


class GuestDomain(XMLObject):
    TAG = "domain"
    type = Field("@type")              # kvm | qemu | lxc | test


class GuestArch(XMLObject):
    TAG = "arch"
    name = Field("@name")              # x86_64 | i686 | ...
    emulator = Field("emulator")       # qemu-system-x86_64; for exe (LXC) guests, the libvirt_lxc controller
    domains = Children(GuestDomain, "domain")


class GuestType(XMLObject):
    """One <guest>: an OS type (hvm for VMs, exe for containers) and the architectures it runs."""
    TAG = "guest"
    os_type = Field("os_type")
    arches = Children(GuestArch, "arch")


class HostCapabilities(XMLObject):
    """virConnectGetCapabilities(): the host's CPUs by NUMA cell, whether it has an IOMMU, and its guest types."""
    TAG = "capabilities"
    arch = Field("host/cpu/arch")
    iommu = Field("host/iommu/@support", bool)
    cells = Children(NumaCell, "host/topology/cells/cell")
    guests = Children(GuestType, "guest")

    @classmethod
    def of(cls, conn) -> "HostCapabilities":
        """The capabilities of the host behind an open libvirt connection."""
        return cls.from_xml(conn.getCapabilities())

    def offers(self, os_type: str) -> bool:
        """Whether the driver runs guests of this OS type at all (hvm: VMs, exe: containers)."""
        return any(g.os_type == os_type for g in self.guests)

    def domain_types(self, os_type: str, arch: str) -> set[str]:
        """The <domain type=...> values offered for guests of os_type on arch (kvm, qemu, ...)."""
        return {d.type for g in self.guests if g.os_type == os_type
                for a in g.arches if a.name == arch for d in a.domains if d.type}

    def emulator(self, os_type: str) -> str | None:
        """The first emulator the driver names for guests of os_type (exe: the libvirt_lxc controller)."""
        return next((a.emulator for g in self.guests if g.os_type == os_type
                     for a in g.arches if a.emulator is not None), None)


class CpuModel(XMLObject):
    TAG = "model"
    name = Field(".")
    usable = Field("@usable")          # yes | no | unknown
    fallback = Field("@fallback")


class CpuMode(XMLObject):
    TAG = "mode"
    name = Field("@name")              # host-passthrough | maximum | host-model | custom
    supported = Field("@supported", bool)
    models = Children(CpuModel, "model")


class DomainCapabilities(XMLObject):
    """virConnectGetDomainCapabilities(): what a guest of one domain type may have on this host."""
    TAG = "domainCapabilities"
    domain = Field("domain")           # kvm | qemu
    machine = Field("machine")
    vcpu_max = Field("vcpu/@max", int)
    cpu_modes = Children(CpuMode, "cpu/mode")
    hostdev = Field("devices/hostdev/@supported", bool)
    hostdev_types = TextList("devices/hostdev/enum[@name='subsysType']/value")
    graphics_types = TextList("devices/graphics[@supported='yes']/enum[@name='type']/value")   # vnc, spice, ...

    @classmethod
    def of(cls, conn, domain_type: str, machine: str | None = None) -> "DomainCapabilities":
        """What an x86_64 guest of domain_type (kvm | qemu) may have on the host behind conn."""
        return cls.from_xml(conn.getDomainCapabilities(None, "x86_64", machine, domain_type, 0))

    def cpu_mode(self, name: str) -> CpuMode | None:
        return next((m for m in self.cpu_modes if m.name == name), None)


class IommuAddress(XMLObject):
    TAG = "address"
    domain = Field("@domain")
    bus = Field("@bus")
    slot = Field("@slot")
    function = Field("@function")


class MdevType(XMLObject):
    """One vGPU (mediated device) type a parent device offers, and how many more instances it can make."""
    TAG = "type"
    id = Field("@id")
    name = Field("name")
    device_api = Field("deviceAPI")
    available = Field("availableInstances", int)


class NodeDevice(XMLObject):
    """A host device from virConnectListAllDevices(): a PCI device (maybe a vGPU parent) or an mdev instance."""
    TAG = "device"
    name = Field("name")
    parent = Field("parent")
    driver = Field("driver/name")
    capability = Field("capability/@type")     # pci | mdev | ...
    pci_class = Field("capability[@type='pci']/class")
    pci_domain = Field("capability[@type='pci']/domain", int)
    pci_bus = Field("capability[@type='pci']/bus", int)
    pci_slot = Field("capability[@type='pci']/slot", int)
    pci_function = Field("capability[@type='pci']/function", int)
    product = Field("capability[@type='pci']/product")
    vendor = Field("capability[@type='pci']/vendor")
    iommu_group = Field("capability[@type='pci']/iommuGroup/@number", int)
    iommu_members = Children(IommuAddress, "capability[@type='pci']/iommuGroup/address")
    mdev_types = Children(MdevType, "capability[@type='pci']/capability[@type='mdev_types']/type")
    mdev_type = Field("capability[@type='mdev']/type/@id")
    mdev_uuid = Field("capability[@type='mdev']/uuid")
