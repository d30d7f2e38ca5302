"""The storage pool XML model."""
from __future__ import annotations

from .base import Field, XMLObject


class Pool(XMLObject):
    TAG = "pool"
    type = Field("@type")                 # dir | logical | netfs
    name = Field("name")
    uuid = Field("uuid")
    source_host = Field("source/host/@name")
    source_dir = Field("source/dir/@path")
    source_device = Field("source/device/@path")
    source_name = Field("source/name")
    source_format = Field("source/format/@type")
    target_path = Field("target/path")
    capacity = Field("capacity", "size:bytes")
    allocation = Field("allocation", "size:bytes")
    available = Field("available", "size:bytes")
