"""The storage pool XML model, and the host's storage pool capabilities."""
from __future__ import annotations

from .base import Children, Field, XMLObject


class PoolDevice(XMLObject):
    """A block device a logical pool's volume group lives on."""
    TAG = "device"
    path = Field("@path")


class Pool(XMLObject):
    TAG = "pool"
    type = Field("@type")                 # dir | logical | netfs
    name = Field("name")
    uuid = Field("uuid")
    source_host = Field("source/host/@name")          # netfs: the file server
    source_dir = Field("source/dir/@path")            # netfs: the exported directory (or share)
    source_devices = Children(PoolDevice, "source/device")   # logical: the volume group's devices
    source_name = Field("source/name")                # logical: the volume group
    source_format = Field("source/format/@type")      # netfs: nfs | cifs | glusterfs | auto; logical: lvm2
    target_path = Field("target/path")
    capacity = Field("capacity", "size:bytes")
    allocation = Field("allocation", "size:bytes")
    available = Field("available", "size:bytes")


class PoolTypeSupport(XMLObject):
    """One <pool type=… supported=…> of the host's storage pool capabilities."""
    TAG = "pool"
    type = Field("@type")
    supported = Field("@supported", bool)


class StoragePoolCapabilities(XMLObject):
    """virConnectGetStoragePoolCapabilities(): which pool types the host's libvirt can run."""
    TAG = "storagepoolCapabilities"
    pools = Children(PoolTypeSupport, "pool")


class PoolSource(XMLObject):
    """One <source> that virConnectFindStoragePoolSources() finds: for logical, a volume group of the host."""
    TAG = "source"
    name = Field("name")


class PoolSources(XMLObject):
    """virConnectFindStoragePoolSources(): the pool sources a host has (logical: its volume groups)."""
    TAG = "sources"
    sources = Children(PoolSource, "source")
