"""StoragePool: a libvirt storage pool (dir, logical/LVM or netfs) that holds desktop disks and seeds."""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import TYPE_CHECKING, Sequence

import libvirt
import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from .. import xmlmodel
from ..host.connection import connect, lookup
from ..errors import VdeskError
from ..kinds import NETFS_FORMATS, POOL_TYPES, FileServer, NetfsFormat, PoolType, VolumeGroup, vg_name_problem
from ..names import name_problem
from . import atuse, backups, journal
from .provider import ADOPT, OWNER, DeclaredProvider, Prop, declared
from .provider import _is_unknown

if TYPE_CHECKING:
    from ..host.resolve import Host

log = logging.getLogger(__name__)


def _kept_by(props: dict, volume: str) -> bool:
    """Whether `volume` is one this pool's stack made and keeps when it goes (a home: its journal entry stays)."""
    owner = props.get("owner")
    return bool(owner) and journal.lookup(owner, "volume", props["host_uri"], f"{props['name']}/{volume}") is not None


def _absolute(path: str) -> str | None:
    return None if os.path.isabs(path) else f"{path!r} must be an absolute path on the host"


# Which pool type each source property belongs to (anything else rejects it).
SOURCE_PROPS = {"source_devices": "logical", "source_name": "logical", "source_host": "netfs",
                "source_dir": "netfs", "source_format": "netfs"}


def _devices_problem(value: list) -> str | None:
    if not value:
        return "must list at least one block device, e.g. [/dev/sdb]"
    for device in value:
        if not isinstance(device, str) or not os.path.isabs(device) or os.path.normpath(device) != device:
            return f"{device!r} must be a normalised absolute block device path, e.g. /dev/sdb"
    if len(set(value)) != len(value):
        return "lists a device twice"
    return None


def _with_type_defaults(news: dict) -> dict:
    """What libvirt fills in for a pool type, filled in up front so that a read-back never diffs:
    a logical pool's volume group defaults to the pool's name and its target is /dev/<vg>;
    a netfs pool's format defaults to auto."""
    news = dict(news)
    kind = news.get("type") or "dir"
    if kind == "logical":
        name = news.get("name")
        if news.get("source_name") is None and isinstance(name, str) and not _is_unknown(name):
            news["source_name"] = name
        vg = news.get("source_name")
        if news.get("path") is None and isinstance(vg, str) and not _is_unknown(vg) and not vg_name_problem(vg):
            news["path"] = f"/dev/{vg}"
    elif kind == "netfs" and news.get("source_format") is None:
        news["source_format"] = "auto"
    return news


def owns_storage(props: dict) -> bool:
    """Whether vdesk made the pool's storage (and so removes it): not so for a pre-made volume group."""
    return props.get("type") != "logical" or bool(props.get("source_devices"))


def support_problem(caps: xmlmodel.StoragePoolCapabilities, kind: str, uri: str) -> str | None:
    """Why the host (by its storage pool capabilities) cannot run a pool of this type, or None."""
    entry = next((p for p in caps.pools if p.type == kind), None)
    if entry is not None and entry.supported:
        return None
    supported = ", ".join(sorted(p.type for p in caps.pools if p.supported)) or "none"
    return f"host {uri} does not support {kind!r} storage pools (its libvirt supports: {supported})"


def require_support(conn, kind: str, uri: str) -> None:
    """Ask the host before defining anything; a libvirt without the call is left to say so itself."""
    try:
        caps_xml = conn.getStoragePoolCapabilities(0)
    except AttributeError:
        return  # libvirt-python older than 5.2
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
            raise
        log.info("%s cannot report storage pool capabilities; defining the %s pool will tell", uri, kind)
        return
    problem = support_problem(xmlmodel.StoragePoolCapabilities.from_xml(caps_xml), kind, uri)
    if problem:
        raise VdeskError(problem)


def _build_flags(conn, kind: str) -> int:
    """A logical build runs pvcreate on its devices: refuse devices that already hold data.
    (libvirt's test driver, which has no devices, takes no build flags.)"""
    if kind == "logical" and conn.getType() != "TEST":
        return libvirt.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE
    return 0


def path_at_use(props: dict) -> dict:
    """props with a dir or netfs pool's path checked against the policy again and resolved, on this machine
    (resources/atuse.py): a directory swapped for a symlink since preview cannot put the pool elsewhere."""
    if (props.get("type") or "dir") == "logical" or not props.get("path") \
            or not atuse.on_this_machine(props["host_uri"]):
        return props
    return {**props, "path": atuse.resolved("pools", props["path"], "path")}


def pool_model(props: dict) -> xmlmodel.Pool:
    """The libvirt definition of a pool from its (checked) properties."""
    kind = props["type"]
    model = xmlmodel.Pool(type=kind, name=props["name"], target_path=props.get("path"))
    if kind == "logical":
        model.source_name = props.get("source_name")
        model.source_devices = [xmlmodel.PoolDevice(path=d) for d in props.get("source_devices") or []]
        model.source_format = "lvm2"
    elif kind == "netfs":
        model.source_host, model.source_dir = props["source_host"], props["source_dir"]
        model.source_format = props.get("source_format") or "auto"
    return model


class PoolProvider(DeclaredProvider):
    PROPS = {
        "host_uri": Prop(str, required=True, replaces=True, doc="libvirt URI of the host"),
        "name": Prop(str, required=True, replaces=True, validate=name_problem),
        "type": declared(PoolType, f"{{input}} is not one of {', '.join(POOL_TYPES)}", default="dir", replaces=True,
                         doc="dir, logical (LVM) or netfs"),
        "path": Prop(str, replaces=True, validate=_absolute,
                     doc="target directory (dir, netfs: required); logical: /dev/<source_name>, filled in"),
        "source_devices": Prop(list, replaces=True, validate=_devices_problem,
                               doc="logical: block devices to build the volume group on (must hold no data)"),
        "source_name": declared(VolumeGroup, replaces=True,
                                doc="logical: the volume group (default: the pool's name); without "
                                "source_devices it must exist already and is kept on delete"),
        "source_host": declared(FileServer, replaces=True, doc="netfs: the file server"),
        "source_dir": Prop(str, replaces=True, doc="netfs: the exported directory (cifs: the share name)"),
        "source_format": declared(NetfsFormat, f"{{input}} is not one of {', '.join(NETFS_FORMATS)}", replaces=True,
                                  doc="netfs: nfs, cifs, glusterfs or auto (default auto)"),
        "autostart": Prop(bool, default=True),
        "adopt": ADOPT,
        "owner": OWNER,
    }
    OUTPUTS = ("uuid", "active", "capacity_bytes", "allocation_bytes", "available_bytes")
    JOURNAL_KIND = "pool"

    def check(self, olds, news):
        return super().check(olds, _with_type_defaults(news))

    def check_more(self, inputs):
        """Each pool type takes its own source properties, and needs its own."""
        kind = inputs.get("type")
        if kind not in POOL_TYPES:
            return []  # already reported by `type`
        problems = [(prop, f"{prop}: only for {owner} pools, not {kind}")
                    for prop, owner in SOURCE_PROPS.items() if inputs.get(prop) is not None and owner != kind]
        path = inputs.get("path")
        if kind in ("dir", "netfs") and path is None:
            problems.append(("path", f"path is required for a {kind} pool (its target directory)"))
        if kind == "logical":
            vg = inputs.get("source_name")
            if isinstance(vg, str) and isinstance(path, str) and not _is_unknown(path) and path != f"/dev/{vg}":
                problems.append(("path", f"path: a logical pool's target is /dev/<source_name> (/dev/{vg}), "
                                         f"not {path!r}; leave path unset"))
        if kind == "netfs":
            for prop in ("source_host", "source_dir"):
                if inputs.get(prop) is None:
                    problems.append((prop, f"{prop} is required for a netfs pool"))
            src, fmt = inputs.get("source_dir"), inputs.get("source_format")
            if isinstance(src, str) and not _is_unknown(src):
                if fmt == "cifs" and (not src or src.startswith("/")):
                    problems.append(("source_dir", f"source_dir: {src!r}: a cifs share is named without a "
                                                   "leading '/', e.g. 'desktops'"))
                elif fmt != "cifs" and not os.path.isabs(src):
                    problems.append(("source_dir", f"source_dir: {src!r} must be the absolute exported path, "
                                                   "e.g. /srv/desktops"))
        return problems

    def create(self, props):
        with connect(props["host_uri"]) as conn:
            if lookup(conn.storagePoolLookupByName, props["name"]):
                raise VdeskError(f"storage pool {props['name']!r} already exists on {props['host_uri']}; "
                                 "set adopt: true to take it over, or choose another name")
            kind = props.get("type") or "dir"
            require_support(conn, kind, props["host_uri"])
            pool = conn.storagePoolDefineXML(pool_model(path_at_use(props)).to_xml(), 0)
            built = False
            try:
                if owns_storage(props):
                    pool.build(_build_flags(conn, kind))
                    built = True
                pool.create(0)
                pool.setAutostart(1 if props["autostart"] else 0)
            except libvirt.libvirtError as exc:
                _remove(pool, storage=built)   # never remove storage this create did not make
                raise VdeskError(f"storage pool {props['name']!r} ({kind}) could not be set up on "
                                 f"{props['host_uri']}: {exc.get_error_message()}") from exc
            return CreateResult(pool.UUIDString(), self._outputs(props, pool))

    def existing_id(self, props):
        with connect(props["host_uri"]) as conn:
            pool = lookup(conn.storagePoolLookupByName, props["name"])
            return pool.UUIDString() if pool else None

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
                # This stack's kept copies of replaced disks go with its pool; another stack's keep it.
                backups.remove_all(pool, owner=props.get("owner") or "", uri=props["host_uri"])
                leftovers = pool.listVolumes()
                kept = [v for v in leftovers if _kept_by(props, v)]
                if kept and len(kept) == len(leftovers):
                    log.warning("keeping storage pool %r: it holds volumes this stack keeps on removal (%s)",
                                props["name"], ", ".join(sorted(kept)))
                    return
                if leftovers:
                    raise VdeskError(
                        f"refusing to delete storage pool {props['name']!r}: it still holds volumes "
                        f"vdesk does not own: {', '.join(sorted(leftovers))}")
            _remove(pool, storage=owns_storage(props))

    def _outputs(self, props, pool):
        model = xmlmodel.Pool.from_xml(pool.XMLDesc(0))
        active = bool(pool.isActive())
        return {
            **self.inputs_of(props),
            "uuid": pool.UUIDString(),
            # What libvirt has, so drift shows up (and adoption compares real values).
            "type": model.type,
            "path": atuse.as_declared(props.get("path"), model.target_path, props["host_uri"]),
            "source_devices": [d.path for d in model.source_devices] or None,
            "source_name": model.source_name if model.type == "logical" else None,
            "source_host": model.source_host,
            "source_dir": model.source_dir,
            "source_format": model.source_format if model.type == "netfs" else None,   # logical: always lvm2
            "autostart": bool(pool.autostart()),
            "active": active,
            "capacity_bytes": model.capacity or 0,
            "allocation_bytes": model.allocation or 0,
            "available_bytes": model.available or 0,
        }


def _remove(pool, *, storage: bool = True) -> None:
    """Stop, delete the storage vdesk made (the empty directory, or the volume group and its
    physical volumes) and undefine."""
    if pool.isActive():
        pool.destroy()
    if storage:
        try:
            pool.delete(0)
        except libvirt.libvirtError as exc:
            log.warning("pool storage not removed: %s", exc.get_error_message())
    pool.undefine()


@dataclasses.dataclass
class StoragePoolArgs:
    """Where a host keeps desktop disks, seeds and imported images."""

    host: "Host"
    path: str | None = None              # dir/netfs: the directory (default: the host's pool root/<name>)
    type: str = "dir"                    # dir | logical (an LVM volume group) | netfs (a network share)
    source_devices: Sequence[str] | None = None   # logical: block devices to build the volume group on
    source_name: str | None = None       # logical: the volume group
    source_host: str | None = None       # netfs: the file server
    source_dir: str | None = None        # netfs: the exported directory (cifs: the share)
    source_format: str | None = None     # netfs: nfs | cifs | glusterfs | auto
    libvirt_name: str | None = None      # its name on the host (default: <stack>-<resource name>)
    autostart: bool = True
    adopt: bool = False                  # take over an existing pool of this name instead of failing
    keep_on_destroy: bool = False        # `destroy` leaves it on the host


class StoragePool(Resource):
    """A storage pool on a host: a directory, an LVM volume group (logical) or a network share (netfs)."""

    name: pulumi.Output[str]
    path: pulumi.Output[str]
    capacity_bytes: pulumi.Output[int]

    def __init__(self, name: str, args: StoragePoolArgs, opts: pulumi.ResourceOptions | None = None):
        self.host = args.host
        self.resource_name = name
        pool_name = args.libvirt_name or f"{pulumi.get_stack()}-{name}"
        path = None if args.type == "logical" else args.path or f"{args.host.pool_root}/{pool_name}"
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(retain_on_delete=args.keep_on_destroy or None))
        super().__init__(PoolProvider(), name, {
            "host_uri": args.host.uri, "name": pool_name, "type": args.type, "path": path,
            "autostart": args.autostart,
            "source_devices": list(args.source_devices) if args.source_devices else None,
            "source_name": args.source_name, "source_host": args.source_host, "source_dir": args.source_dir,
            "source_format": args.source_format, "adopt": args.adopt, "owner": pulumi.get_stack(),
            **dict.fromkeys(PoolProvider.OUTPUTS),
        }, opts)
