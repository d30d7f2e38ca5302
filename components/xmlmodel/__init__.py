"""libvirt XML as typed Python objects (see base.py for why)."""
from .base import VDESK_NS, XMLObject, declared_properties
from .domain import (Channel, Console, Disk, Domain, FirmwareFeature, Graphics, Input, Interface, Owner, Rng, Serial,
                     SharedDirectory, Tpm, Video)
from .hostcaps import (CpuMode, CpuModel, DomainCapabilities, GuestArch, GuestDomain, GuestType, HostCapabilities,
                       HostCpu, MdevType, NodeDevice, NumaCell)
from .hostdev import (Hostdev, MdevDefinition, VcpuPin, format_cpuset, format_pci_address, parse_cpuset,
                      split_pci_address)
from .network import IP, DhcpHost, DhcpRange, DnsHost, Network, NetworkOwner
from .pool import Pool, PoolDevice, PoolSource, PoolSources, PoolTypeSupport, StoragePoolCapabilities
from .volume import Volume

__all__ = [
    "VDESK_NS", "XMLObject", "declared_properties",
    "Channel", "Console", "Disk", "Domain", "FirmwareFeature", "Graphics", "Input", "Interface", "Owner", "Rng", "Serial",
    "SharedDirectory", "Tpm", "Video",
    "IP", "DhcpHost", "DhcpRange", "DnsHost", "Network", "NetworkOwner", "Pool", "PoolDevice", "PoolSource", "PoolSources",
    "PoolTypeSupport",
    "StoragePoolCapabilities", "Volume",
    "CpuMode", "CpuModel", "DomainCapabilities", "GuestArch", "GuestDomain", "GuestType", "HostCapabilities",
    "HostCpu", "MdevType", "NodeDevice", "NumaCell",
    "Hostdev", "MdevDefinition", "VcpuPin", "format_cpuset", "format_pci_address", "parse_cpuset",
    "split_pci_address",
]
