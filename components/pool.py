"""StoragePool: a libvirt storage pool (dir) that holds desktop disks and seeds."""
from __future__ import annotations

import logging
import os

import libvirt
import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from . import xmlmodel
from .connection import connect, lookup
from .errors import VdeskError
from .names import name_problem
from .provider import DeclaredProvider, Prop

log = logging.getLogger(__name__)


def _absolute(path: str) -> str | None:
    return None if os.path.isabs(path) else f"{path!r} must be an absolute path on the host"


class PoolProvider(DeclaredProvider):
    PROPS = {
        "host_uri": Prop(str, required=True, replaces=True, doc="libvirt URI of the host"),
        "name": Prop(str, required=True, replaces=True, validate=name_problem),
        "type": Prop(str, default="dir", replaces=True,
                     validate=lambda v: None if v == "dir" else f"{v!r}: only 'dir' pools are supported"),
        "path": Prop(str, required=True, replaces=True, validate=_absolute, doc="target directory"),
        "autostart": Prop(bool, default=True),
    }
    OUTPUTS = ("uuid", "active", "capacity_bytes", "allocation_bytes", "available_bytes")

    def create(self, props):
        with connect(props["host_uri"]) as conn:
            if lookup(conn.storagePoolLookupByName, props["name"]):
                raise VdeskError(f"storage pool {props['name']!r} already exists on {props['host_uri']}; "
                                 "adopt it with `pulumi import` or choose another name")
            xml = xmlmodel.Pool(type="dir", name=props["name"], target_path=props["path"]).to_xml()
            pool = conn.storagePoolDefineXML(xml, 0)
            try:
                pool.build(0)
                pool.create(0)
                pool.setAutostart(1 if props["autostart"] else 0)
            except libvirt.libvirtError:
                _remove(pool)
                raise
            return CreateResult(pool.UUIDString(), self._outputs(props, pool))

    def read(self, id_, props):
        with connect(props["host_uri"]) as conn:
            pool = lookup(conn.storagePoolLookupByName, props["name"])
            if pool is None or pool.UUIDString() != id_:
                return ReadResult("", {})
            return ReadResult(id_, self._outputs(props, pool))

    def update(self, _id, _olds, news):
        with connect(news["host_uri"]) as conn:
            pool = conn.storagePoolLookupByName(news["name"])
            pool.setAutostart(1 if news["autostart"] else 0)
            return UpdateResult(self._outputs(news, pool))

    def delete(self, id_, props):
        with connect(props["host_uri"]) as conn:
            pool = lookup(conn.storagePoolLookupByName, props["name"])
            if pool is None:
                return
            if pool.isActive():
                pool.refresh(0)
                leftovers = pool.listVolumes()
                if leftovers:
                    raise VdeskError(
                        f"refusing to delete storage pool {props['name']!r}: it still holds volumes "
                        f"vdesk does not own: {', '.join(sorted(leftovers))}")
            _remove(pool)

    def _outputs(self, props, pool):
        model = xmlmodel.Pool.from_xml(pool.XMLDesc(0))
        active = bool(pool.isActive())
        return {
            **self.inputs_of(props),
            "uuid": pool.UUIDString(),
            "path": model.target_path,
            "autostart": bool(pool.autostart()),
            "active": active,
            "capacity_bytes": model.capacity or 0,
            "allocation_bytes": model.allocation or 0,
            "available_bytes": model.available or 0,
        }


def _remove(pool) -> None:
    """Stop, delete the (empty) directory and undefine."""
    if pool.isActive():
        pool.destroy()
    try:
        pool.delete(0)
    except libvirt.libvirtError as exc:
        log.warning("pool directory not removed: %s", exc.get_error_message())
    pool.undefine()


class StoragePool(Resource):
    """A directory storage pool on a host."""

    name: pulumi.Output[str]
    path: pulumi.Output[str]
    capacity_bytes: pulumi.Output[int]

    def __init__(self, name: str, *, host_uri, pool_name, path, autostart=True, opts=None):
        super().__init__(PoolProvider(), name, {
            "host_uri": host_uri, "name": pool_name, "type": "dir", "path": path, "autostart": autostart,
            **dict.fromkeys(PoolProvider.OUTPUTS),
        }, opts)
