"""A host's CPUs and devices as libvirt reports them, and what desktops ask of them: checked at preview.

A CPU mode or model the host cannot run, a pin to a CPU it does not have, a GPU
that is not there or cannot be handed to a guest, or one device claimed by two
desktops all fail only when a guest starts, after its disk and seed were made.
So the host's domain capabilities, CPUs (by NUMA cell) and node devices are read
while the stack is previewed, and every such problem is reported naming the
stack field that asks for it.
"""
from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from typing import Iterable

import libvirt

from .. import xmlmodel
from ..kinds import CPU_MODES
from ..xmlmodel import format_cpuset, format_pci_address, parse_cpuset, split_pci_address
from .connection import connect

log = logging.getLogger(__name__)

_BRIDGE_CLASSES = ("0x0600", "0x0604")     # host bridge, PCI-to-PCI bridge: never a guest's
_MAX_LISTED = 8


@dataclasses.dataclass(frozen=True)
class Gpu:
    """One GPU of a desktop: a whole PCI device (`pci`) or a mediated device of a type (`mdev`)."""

    pci: str | None = None       # 0000:01:00.0
    mdev: str | None = None      # a vGPU type id, e.g. nvidia-222
    parent: str | None = None    # mdev: the PCI device to make it on (default: any that offers the type)

    def __post_init__(self):
        if (self.pci is None) == (self.mdev is None):
            raise ValueError("a GPU is either {pci: <address>} or {mdev: <type>}")

    @property
    def address(self) -> str | None:
        return format_pci_address(*split_pci_address(self.pci)) if self.pci else None


@dataclasses.dataclass(frozen=True)
class PciDevice:
    address: str
    name: str                    # libvirt's node device name, pci_0000_01_00_0
    pci_class: str               # 0x030000
    product: str
    iommu_group: int | None
    group: tuple[str, ...]       # addresses in its IOMMU group (itself included)


@dataclasses.dataclass(frozen=True)
class HostHardware:
    """What one host offers guests, read from libvirt."""

    host: str
    cpus: tuple[int, ...]                            # host CPU ids
    cells: tuple[tuple[int, tuple[int, ...]], ...]   # NUMA cells: (id, CPU ids)
    domain_caps: xmlmodel.DomainCapabilities | None  # None: the driver does not say (libvirt's test driver)
    pci: dict[str, PciDevice]
    mdev_types: dict[str, dict[str, int]]            # type id -> {parent address: instances it can still make}
    mdev_instances: dict[str, str]                   # existing mdev UUID -> its type id


@dataclasses.dataclass(frozen=True)
class HardwareDemand:
    """What one desktop asks of its host's CPUs and devices; `fields` says where each is written."""

    name: str
    host: str
    cpu_mode: str | None = None
    cpu_model: str | None = None
    pinning: tuple = ()                   # one CPU set per vCPU, as written
    gpus: tuple[Gpu, ...] = ()
    mdev_uuids: tuple[str | None, ...] = ()   # per GPU: the UUID its mdev instance has (None for pci)
    fields: tuple[tuple[str, str], ...] = ()  # (cpu | gpus, where the setting is written)

    def field(self, key: str) -> str:
        return dict(self.fields).get(key, key)

    @property
    def asks(self) -> bool:
        return bool(self.cpu_mode or self.cpu_model or self.pinning or self.gpus)


def read(host: str, uri: str, domain_type: str, machine: str | None = None) -> HostHardware:
    with connect(uri) as conn:
        caps = xmlmodel.HostCapabilities.of(conn)
        cells = tuple((c.id, tuple(cpu.id for cpu in c.cpus)) for c in caps.cells)
        cpus = tuple(sorted({cpu for _, ids in cells for cpu in ids})) or tuple(range(conn.getInfo()[2]))
        return HostHardware(host, cpus, cells, _domain_caps(conn, domain_type, machine), *_devices(conn))


def _domain_caps(conn, domain_type: str, machine: str | None) -> xmlmodel.DomainCapabilities | None:
    try:
        return xmlmodel.DomainCapabilities.of(conn, domain_type, machine)
    except libvirt.libvirtError as exc:
        log.info("no domain capabilities from %s (%s): CPU modes are not checked there", conn.getURI(),
                 exc.get_error_message())
        return None


def _devices(conn) -> tuple[dict, dict, dict]:
    pci: dict[str, PciDevice] = {}
    mdev_types: dict[str, dict[str, int]] = {}
    instances: dict[str, str] = {}
    for dev in conn.listAllDevices(0):
        try:
            node = xmlmodel.NodeDevice.from_xml(dev.XMLDesc(0))
        except libvirt.libvirtError:
            continue       # went away meanwhile
        if node.capability == "pci" and node.pci_bus is not None:
            address = format_pci_address(node.pci_domain or 0, node.pci_bus, node.pci_slot or 0,
                                         node.pci_function or 0)
            group = tuple(format_pci_address(*(int(getattr(a, k), 16) for k in ("domain", "bus", "slot", "function")))
                          for a in node.iommu_members)
            pci[address] = PciDevice(address, node.name, node.pci_class or "", (node.product or "").strip(),
                                     node.iommu_group, group or ((address,) if node.iommu_group is not None else ()))
            for t in node.mdev_types:
                mdev_types.setdefault(t.id, {})[address] = t.available or 0
        elif node.capability == "mdev" and node.mdev_uuid:
            instances[node.mdev_uuid] = node.mdev_type or ""
    return pci, mdev_types, instances


# --- checks --------------------------------------------------------------------------------------------

def problems(demands: Iterable[HardwareDemand], hardware: dict[str, HostHardware]) -> list[tuple[str, str]]:
    """(field, message) for every CPU or device setting a desktop's host cannot satisfy, and every device
    two desktops claim. Hosts missing from `hardware` (unreachable) are not checked."""
    found: list[tuple[str, str]] = []
    claims = Claims()
    for d in demands:
        hw = hardware.get(d.host)
        if hw is None or not d.asks:
            continue
        found += alone(d, hw)
        found += claims.take(d, hw)
    return found


def alone(d: HardwareDemand, hw: HostHardware) -> list[tuple[str, str]]:
    """What this host can never give this desktop, whatever else runs there."""
    return _cpu_problems(d, hw) + _pin_problems(d, hw) + _gpu_problems(d, hw)


class Claims:
    """Devices already given to desktops on each host: a PCI device to one desktop, mdev types up to what
    the host can still make (instances that already exist for these desktops are theirs)."""

    def __init__(self):
        self.pci: dict[tuple[str, str], str] = {}      # (host, address) -> who
        self.mdev: Counter = Counter()                  # (host, type) -> new instances claimed

    def take(self, d: HardwareDemand, hw: HostHardware, *, dry_run: bool = False) -> list[tuple[str, str]]:
        found = []
        taken_pci, taken_mdev = [], Counter()
        for i, gpu in enumerate(d.gpus):
            where = f"{d.field('gpus')}[{i}]"
            if gpu.pci:
                key = (hw.host, gpu.address)
                if key in self.pci:
                    found.append((f"{where}.pci", f"{gpu.address} on host {hw.host!r} is already claimed by "
                                                  f"{self.pci[key]}: a PCI device goes to one desktop only"))
                else:
                    taken_pci.append(key)
            elif gpu.mdev and not _mdev_problems(gpu, hw):
                uuid = d.mdev_uuids[i] if i < len(d.mdev_uuids) else None
                if uuid and hw.mdev_instances.get(uuid) == gpu.mdev:
                    continue               # made for this desktop already: counted out of the host's rest
                key = (hw.host, gpu.mdev)
                left = _mdev_left(hw, gpu) - self.mdev[key] - taken_mdev[key]
                if left <= 0:
                    found.append((f"{where}.mdev", f"host {hw.host!r} can make no more {gpu.mdev!r} devices "
                                                   f"({_mdev_left(hw, gpu)} left before this stack's other "
                                                   f"desktops took {self.mdev[key]})"))
                else:
                    taken_mdev[key] += 1
        if not found and not dry_run:
            for key in taken_pci:
                self.pci[key] = f"desktop {d.name!r}"
            self.mdev.update(taken_mdev)
        return found


def _mdev_left(hw: HostHardware, gpu: Gpu) -> int:
    parents = hw.mdev_types.get(gpu.mdev, {})
    if gpu.parent:
        return parents.get(format_pci_address(*split_pci_address(gpu.parent)), 0)
    return sum(parents.values())


def _cpu_problems(d: HardwareDemand, hw: HostHardware) -> list[tuple[str, str]]:
    mode = d.cpu_mode or ("custom" if d.cpu_model else None)
    caps = hw.domain_caps
    if mode is None or caps is None:
        return []
    where = d.field("cpu")
    offered = caps.cpu_mode(mode)
    if offered is None or not offered.supported:
        supported = ", ".join(m.name for m in caps.cpu_modes if m.supported and m.name in CPU_MODES) or "none"
        return [(f"{where}.mode" if d.cpu_mode else f"{where}.model",
                 f"CPU mode {mode!r} is not supported by host {hw.host!r} for {caps.domain} guests "
                 f"(it supports: {supported})")]
    if not d.cpu_model:
        return []
    model = next((m for m in offered.models if m.name == d.cpu_model), None)
    if model is None:
        usable = [m.name for m in offered.models if m.usable == "yes"]
        return [(f"{where}.model", f"host {hw.host!r} knows no CPU model {d.cpu_model!r} (usable there: "
                                   f"{_some(usable)})")]
    if model.usable == "no":
        return [(f"{where}.model", f"CPU model {d.cpu_model!r} cannot run on host {hw.host!r}: its CPU lacks "
                                   f"features the model needs (usable there: "
                                   f"{_some([m.name for m in offered.models if m.usable == 'yes'])})")]
    return []


def _pin_problems(d: HardwareDemand, hw: HostHardware) -> list[tuple[str, str]]:
    found = []
    have = set(hw.cpus)
    for i, cpuset in enumerate(d.pinning):
        missing = [cpu for cpu in parse_cpuset(cpuset) if cpu not in have]
        if missing:
            found.append((f"{d.field('cpu')}.pinning[{i}]",
                          f"host {hw.host!r} has no CPU {format_cpuset(missing)} (its CPUs: "
                          f"{format_cpuset(hw.cpus)}{_cells(hw)})"))
    return found


def _cells(hw: HostHardware) -> str:
    if len(hw.cells) < 2:
        return ""
    return "; NUMA cells " + ", ".join(f"{cell}: {format_cpuset(cpus)}" for cell, cpus in hw.cells)


def _gpu_problems(d: HardwareDemand, hw: HostHardware) -> list[tuple[str, str]]:
    found = []
    types = set(hw.domain_caps.hostdev_types) if hw.domain_caps and hw.domain_caps.hostdev_types else None
    claimed = {g.address for g in d.gpus if g.pci}
    for i, gpu in enumerate(d.gpus):
        where = f"{d.field('gpus')}[{i}]"
        kind = "pci" if gpu.pci else "mdev"
        if types is not None and kind not in types:
            found.append((f"{where}.{kind}", f"host {hw.host!r} cannot pass {kind} devices to guests (its domain "
                                             f"capabilities offer: {', '.join(sorted(types)) or 'none'})"))
            continue
        if gpu.pci:
            found += [(f"{where}.pci", m) for m in _pci_problems(gpu.address, hw, claimed)]
        else:
            found += [(f"{where}.mdev", m) for m in _mdev_problems(gpu, hw)]
    seen: dict[str, int] = {}
    for i, gpu in enumerate(d.gpus):
        if gpu.pci and gpu.address in seen:
            found.append((f"{d.field('gpus')}[{i}].pci", f"{gpu.address} is already gpus[{seen[gpu.address]}] "
                                                         "of this desktop"))
        elif gpu.pci:
            seen[gpu.address] = i
    return found


def _pci_problems(address: str, hw: HostHardware, claimed: set[str]) -> list[str]:
    dev = hw.pci.get(address)
    if dev is None:
        displays = sorted(a for a, p in hw.pci.items() if p.pci_class.startswith("0x03"))
        return [f"host {hw.host!r} has no PCI device {address} (its display devices: {_some(displays)})"]
    if dev.pci_class[:6] in _BRIDGE_CLASSES:
        return [f"{address} on host {hw.host!r} is a PCI bridge ({dev.product or dev.pci_class}): it cannot be "
                "assigned to a guest"]
    if dev.iommu_group is None:
        return [f"{address} on host {hw.host!r} cannot be assigned: it is in no IOMMU group (the host needs "
                "VT-d/AMD-Vi enabled and intel_iommu=on or amd_iommu=on)"]
    others = [a for a in dev.group if a != address and a not in claimed
              and not (a in hw.pci and hw.pci[a].pci_class[:6] in _BRIDGE_CLASSES)]
    if others:
        return [f"{address} on host {hw.host!r} shares IOMMU group {dev.iommu_group} with {', '.join(others)}: "
                "a guest can only have the whole group, so list those in gpus too"]
    return []


def _mdev_problems(gpu: Gpu, hw: HostHardware) -> list[str]:
    parents = hw.mdev_types.get(gpu.mdev)
    if parents is None:
        return [f"no device on host {hw.host!r} offers mediated device type {gpu.mdev!r} (offered: "
                f"{_some(sorted(hw.mdev_types))})"]
    if gpu.parent and format_pci_address(*split_pci_address(gpu.parent)) not in parents:
        return [f"{gpu.parent} on host {hw.host!r} does not offer {gpu.mdev!r} (these do: {_some(sorted(parents))})"]
    return []


def _some(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")
