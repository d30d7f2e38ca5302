"""The storage volume XML model."""
from __future__ import annotations

from .base import Field, XMLObject


class Volume(XMLObject):
    TAG = "volume"
    name = Field("name")
    key = Field("key")
    capacity = Field("capacity", "size:bytes")
    allocation = Field("allocation", "size:bytes")
    format = Field("target/format/@type")  # qcow2 | raw | iso
    path = Field("target/path")
    backing_path = Field("backingStore/path")
    backing_format = Field("backingStore/format/@type")
