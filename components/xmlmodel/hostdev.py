"""Devices of the host given to one guest: a whole PCI device, or a mediated device (a vGPU slice), and vCPU pins."""
from __future__ import annotations

from .base import Field, XMLObject


class MdevDefinition(XMLObject):
    """A node device document for a new mediated device: its parent, type and UUID (virNodeDeviceDefineXML)."""
    TAG = "device"
    parent = Field("parent")                       # the PCI parent's node device name, pci_0000_01_00_0
    capability = Field("capability/@type")         # mdev
    type_id = Field("capability/type/@id")         # nvidia-222
    uuid = Field("capability/uuid")

    @classmethod
    def new(cls, parent: str, mdev_type: str, uuid: str) -> "MdevDefinition":
        return cls(parent=parent, capability="mdev", type_id=mdev_type, uuid=uuid)


class Hostdev(XMLObject):
    """<hostdev mode='subsystem'>: type pci (the whole device, detached from its host driver while the guest
    runs: managed) or mdev (a mediated device instance, named by its UUID)."""
    TAG = "hostdev"
    mode = Field("@mode")                          # subsystem
    type = Field("@type")                          # pci | mdev
    managed = Field("@managed", bool)              # pci: libvirt detaches it from its host driver and back
    model = Field("@model")                        # mdev: vfio-pci
    display = Field("@display", "onoff")           # mdev: the vGPU's own display (off: vdesk's VNC/SPICE stays)
    address_domain = Field("source/address/@domain")      # pci, as libvirt writes it: 0x0000
    address_bus = Field("source/address/@bus")            # 0x01
    address_slot = Field("source/address/@slot")          # 0x00
    address_function = Field("source/address/@function")  # 0x0
    address_uuid = Field("source/address/@uuid")          # mdev

    @classmethod
    def pci(cls, address: str) -> "Hostdev":
        """The whole PCI device at a 'dddd:bb:ss.f' address."""
        domain, bus, slot, function = split_pci_address(address)
        return cls(mode="subsystem", type="pci", managed=True, address_domain=f"0x{domain:04x}",
                   address_bus=f"0x{bus:02x}", address_slot=f"0x{slot:02x}", address_function=f"0x{function:x}")

    @classmethod
    def mdev(cls, uuid: str) -> "Hostdev":
        """The mediated device instance with this UUID (its parent and type are the instance's)."""
        return cls(mode="subsystem", type="mdev", model="vfio-pci", display=False, address_uuid=uuid)

    @property
    def pci_address(self) -> str | None:
        """'dddd:bb:ss.f' of a pci hostdev, whatever number format libvirt wrote."""
        if self.type != "pci" or self.address_bus is None:
            return None
        parts = [int(v or "0", 0) for v in (self.address_domain, self.address_bus, self.address_slot,
                                            self.address_function)]
        return format_pci_address(*parts)


class VcpuPin(XMLObject):
    """<cputune><vcpupin vcpu='N' cpuset='...'/>: the host CPUs one vCPU may run on."""
    TAG = "vcpupin"
    vcpu = Field("@vcpu", int)
    cpuset = Field("@cpuset")


def split_pci_address(address: str) -> tuple[int, int, int, int]:
    """'0000:01:00.0' or '01:00.0' -> (domain, bus, slot, function); ValueError when it is none."""
    text = address.strip().lower()
    head, _, function = text.rpartition(".")
    parts = head.split(":")
    if len(parts) == 2:
        parts = ["0000", *parts]
    if len(parts) != 3 or not function:
        raise ValueError(f"{address!r} is not a PCI address (domain:bus:slot.function, e.g. 0000:01:00.0)")
    try:
        domain, bus, slot, func = (int(p, 16) for p in (*parts, function))
    except ValueError:
        raise ValueError(f"{address!r} is not a PCI address (domain:bus:slot.function, e.g. 0000:01:00.0)") from None
    if not (domain <= 0xffff and bus <= 0xff and slot <= 0x1f and func <= 7):
        raise ValueError(f"{address!r} is out of range (bus <= ff, slot <= 1f, function <= 7)")
    return domain, bus, slot, func


def format_pci_address(domain: int, bus: int, slot: int, function: int) -> str:
    return f"{domain:04x}:{bus:02x}:{slot:02x}.{function:x}"


def parse_cpuset(text) -> list[int]:
    """'0-2,5' (or an integer) -> [0, 1, 2, 5]; ValueError when it is no CPU set."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"{text} is not a CPU number")
        return [text]
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{text!r} is not a CPU set (e.g. 2, '2-3' or '0,4')")
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError:
            raise ValueError(f"{text!r} is not a CPU set (e.g. 2, '2-3' or '0,4')") from None
        if first < 0 or last < first:
            raise ValueError(f"{text!r} is not a CPU set (e.g. 2, '2-3' or '0,4')")
        cpus.update(range(first, last + 1))
    return sorted(cpus)


def format_cpuset(cpus) -> str:
    """[0, 1, 2, 5] -> '0-2,5', the form libvirt writes back (so a pin never reads as drift)."""
    ordered = sorted(set(cpus))
    runs: list[list[int]] = []
    for cpu in ordered:
        if runs and cpu == runs[-1][1] + 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
