"""Volume: a disk in a pool — an imported image, a linked clone on a backing store, a full copy, or empty."""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import struct
import urllib.parse
from typing import TYPE_CHECKING

import libvirt
import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from .. import xmlmodel
from ..host.connection import connect, lookup
from ..errors import VdeskError
from ..kinds import BackupDays   # (a desktop's disk_backup_days is declared with it)
from ..names import name_problem, parse_size
from . import atuse, backups, faults
from .lifecycle import shut_down
from .provider import ADOPT, OWNER, DeclaredProvider, Prop, _is_unknown, declared

if TYPE_CHECKING:
    from .pool import StoragePool

log = logging.getLogger(__name__)

_CHUNK = 4 * 1024 * 1024
_SHUTDOWN_S = 60          # a guest's chance to power off cleanly before its disk is copied
_FORMATS = ("qcow2", "raw")


def _volume_name_problem(value: str) -> str | None:
    base, _, ext = value.rpartition(".")
    return name_problem(base if ext in ("qcow2", "raw", "img", "iso") else value)


def _format_problem(value: str) -> str | None:
    return None if value in _FORMATS else f"{value!r} must be one of {', '.join(_FORMATS)}"


def file_virtual_size(path: str) -> tuple[str, int]:
    """(format, virtual size) of a local image file: qcow2 header or raw length.

    Read from the file itself so that no qemu-img is needed on the client.
    """
    with open(path, "rb") as f:
        header = f.read(32)
    if header[:4] == b"QFI\xfb":
        return "qcow2", struct.unpack(">Q", header[24:32])[0]
    return "raw", os.path.getsize(path)


def upload_file(conn, vol, path: str) -> str:
    """Stream a local file into a volume (local and remote hosts alike); the sha256 of what was sent."""
    size = os.path.getsize(path)
    digest = hashlib.sha256()
    stream = conn.newStream(0)
    vol.upload(stream, 0, size, 0)
    with open(path, "rb") as f:
        try:
            def chunk(_stream, n, fh):
                data = fh.read(min(n, _CHUNK))
                digest.update(data)
                if fh.tell() > _CHUNK:
                    faults.point("import")     # half uploaded
                return data

            stream.sendAll(chunk, f)
            stream.finish()
        except Exception:
            stream.abort()
            raise
    return digest.hexdigest()


def volume_sha256(conn, vol, length: int) -> str:
    """The sha256 of the first `length` bytes of a volume, as the host has them (read back through libvirt)."""
    digest = hashlib.sha256()
    stream = conn.newStream(0)
    vol.download(stream, 0, length, 0)
    try:
        def sink(_stream, data, d):
            d.update(data)
            return len(data)

        stream.recvAll(sink, digest)
        stream.finish()
    except Exception:
        stream.abort()
        raise
    return digest.hexdigest()


def _file_here(conn, vol) -> str | None:
    """The volume's file when the host is this machine (a URI without a host name: the embedded host, or
    qemu:///system) and it can be read here; None otherwise."""
    if urllib.parse.urlsplit(conn.getURI()).hostname:
        return None
    path = vol.path()
    return path if os.path.isfile(path) and os.access(path, os.R_OK) else None


def file_sha256(path: str, length: int) -> str:
    """The sha256 of the first `length` bytes of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while length > 0 and (data := f.read(min(length, _CHUNK))):
            digest.update(data)
            length -= len(data)
    return digest.hexdigest()


def verify_import(conn, vol, path: str, sent: str, props: dict) -> None:
    """An imported image must arrive whole: its content on the host is read back and compared.

    Reading it back costs one more transfer of the image per host, once, when it is imported; a
    cheaper check (size, or a sample) would not catch a flipped or lost chunk on the way. On a host that
    is this machine the volume's file is read where libvirt wrote it, not streamed back through libvirt
    (the same bytes, without a second transfer: about 1 s of every new stack's `up` for the golden image)."""
    length = os.path.getsize(path)
    here = _file_here(conn, vol)
    got = file_sha256(here, length) if here else volume_sha256(conn, vol, length)
    if got != sent:
        raise VdeskError(f"volume {props['name']!r} on {props['host_uri']}: the uploaded content does not match "
                         f"{path} (sha256 {got} on the host, {sent} sent): the volume was removed; run up again")


def upload_bytes(conn, vol, data: bytes) -> None:
    stream = conn.newStream(0)
    vol.upload(stream, 0, len(data), 0)
    try:
        view = memoryview(data)
        while view:
            sent = stream.send(bytes(view[:_CHUNK]))
            view = view[sent:]
        stream.finish()
    except Exception:
        stream.abort()
        raise


def _absolute_problem(path: str) -> str | None:
    return None if os.path.isabs(path) else f"{path!r} must be the absolute path of a volume on the host"


def _volume_at(conn, path: str, props: dict):
    """The volume a copy is made from; a clear error when the path is no volume on that host."""
    try:
        return conn.storageVolLookupByPath(path)
    except libvirt.libvirtError as exc:
        raise VdeskError(f"volume {props['name']!r}: copy_of {path!r} is not a volume on {props['host_uri']}: "
                         f"{exc.get_error_message()}") from exc


def _creation_failed(props: dict, pool, exc: libvirt.libvirtError) -> VdeskError:
    """libvirt's reason, and what it means for the pool's type (LVM volumes need device-mapper)."""
    message = exc.get_error_message()
    try:
        kind = xmlmodel.Pool.from_xml(pool.XMLDesc(0)).type
    except libvirt.libvirtError:
        kind = None
    reason = ""
    if kind == "logical" and ("device-mapper" in message or "/dev/mapper/control" in message):
        reason = ("logical (LVM) volumes need the kernel's device-mapper (dm_mod), which this host lacks: "
                  "load it, or put the volume in a dir pool. libvirt said: ")
    return VdeskError(f"volume {props['name']!r} could not be created in {kind or 'storage'} pool "
                      f"{props['pool']!r} on {props['host_uri']}: {reason}{message.strip()}")


def find_volume(conn, pool_name: str, name: str):
    """The volume, or None when it or its pool no longer exists."""
    pool = lookup(conn.storagePoolLookupByName, pool_name)
    return pool and lookup(pool.storageVolLookupByName, name)


def domains_using(conn, path: str, name: str | None = None) -> list:
    """The defined domains that have `path` as one of their disks (only domain `name`, when given)."""
    found = []
    candidates = [d for d in [lookup(conn.lookupByName, name)] if d] if name else conn.listAllDomains(0)
    for dom in candidates:
        try:
            if any(d.source_file == path for d in xmlmodel.Domain.from_xml(dom.XMLDesc(0)).disks):
                found.append(dom)
        except libvirt.libvirtError:
            continue      # undefined meanwhile
    return found


def backing_users(pool, path: str) -> list[str]:
    """Names of the volumes in a pool that use `path` as their backing store."""
    users = []
    for vol in pool.listAllVolumes(0):
        try:
            model = xmlmodel.Volume.from_xml(vol.XMLDesc(0))
        except libvirt.libvirtError:
            continue  # deleted meanwhile
        if model.backing_path == path:
            users.append(vol.name())
    return sorted(users)


class VolumeProvider(DeclaredProvider):
    PROPS = {
        "host_uri": Prop(str, required=True, replaces=True),
        "pool": Prop(str, required=True, replaces=True),
        "name": Prop(str, required=True, replaces=True, validate=_volume_name_problem),
        "format": Prop(str, default="qcow2", replaces=True, validate=_format_problem),
        "capacity_bytes": Prop(int, doc="virtual size; grows in place, never shrinks",
                               validate=lambda v: None if v > 0 else "must be positive"),
        "source_path": Prop(str, replaces=True, doc="local image file to import (uploaded)"),
        "source_id": Prop(str, replaces=True, doc="identity of the imported content (e.g. recipe hash)"),
        "backing_path": Prop(str, replaces=True, doc="linked clone of this volume path"),
        "backing_format": Prop(str, default="qcow2", replaces=True, validate=_format_problem),
        "copy_of": Prop(str, replaces=True, validate=_absolute_problem,
                        doc="full copy of this volume path on the same host: independent of it, no backing store"),
        "domain": Prop(str, inert=True, doc="the domain this disk belongs to (stopped for a consistent backup)"),
        "backup_days": declared(BackupDays, "must be 0..3650", default=0,
                                doc="a desktop's system disk: when a change replaces it, keep a flattened copy for "
                                    "this many days (0: none); used at the replacement, never at destroy"),
        "adopt": ADOPT,
        "owner": OWNER,
    }
    OUTPUTS = ("path", "key", "allocation_bytes", "sha256")
    JOURNAL_KIND = "volume"

    def journal_name(self, props):
        return f"{props['pool']}/{props['name']}"

    def check_more(self, inputs):
        problems = []
        if inputs.get("source_path") and inputs.get("backing_path"):
            problems.append(("source_path", "give either source_path (import) or backing_path (clone), not both"))
        if inputs.get("copy_of") and (inputs.get("source_path") or inputs.get("backing_path")):
            other = "source_path" if inputs.get("source_path") else "backing_path"
            problems.append(("copy_of", f"copy_of (full copy) excludes {other}: give only one of source_path "
                                        "(import), backing_path (linked clone) or copy_of (full copy)"))
        src = inputs.get("source_path")
        if src and not _is_unknown(src) and not os.path.isfile(src):   # a path known only after apply: later
            problems.append(("source_path", f"{src!r} does not exist or is not a file"))
        return problems

    def check(self, olds, news):
        result = super().check(olds, news)
        old_cap, new_cap = (olds or {}).get("capacity_bytes"), result.inputs.get("capacity_bytes")
        if isinstance(old_cap, (int, float)) and isinstance(new_cap, (int, float)) and new_cap < old_cap:
            from pulumi.dynamic import CheckFailure
            result.failures.append(CheckFailure(
                "capacity_bytes", f"capacity_bytes: shrinking a disk ({int(old_cap)} -> {int(new_cap)} bytes) "
                "would lose data; only growing is supported"))
        return result

    def create(self, props):
        with connect(props["host_uri"]) as conn:
            pool = conn.storagePoolLookupByName(props["pool"])
            backups.prune(pool, owner=props.get("owner") or "", uri=props["host_uri"])
            if lookup(pool.storageVolLookupByName, props["name"]):
                raise VdeskError(f"volume {props['name']!r} already exists in pool {props['pool']!r}; "
                                 "set adopt: true to take it over, or choose another name")
            model = xmlmodel.Volume(name=props["name"], format=props["format"])
            capacity = props.get("capacity_bytes")
            if props.get("source_path"):
                # (the upload runs on this machine: the file is checked again here, and the resolved one read)
                source = atuse.image_file(props["source_path"], "source_path", disk=props["format"] == "qcow2")
                _fmt, size = file_virtual_size(source)
                model.capacity = size
                model.format = _fmt
            elif props.get("backing_path"):
                backing = conn.storageVolLookupByPath(props["backing_path"])
                base = xmlmodel.Volume.from_xml(backing.XMLDesc(0))
                model.backing_path, model.backing_format = props["backing_path"], props["backing_format"]
                model.capacity = max(capacity or 0, base.capacity)
            elif props.get("copy_of"):
                source = _volume_at(conn, props["copy_of"], props)
                model.capacity = max(capacity or 0, xmlmodel.Volume.from_xml(source.XMLDesc(0)).capacity)
            else:
                if not capacity:
                    raise VdeskError(f"volume {props['name']!r}: capacity_bytes is required for an empty volume")
                model.capacity = capacity
            try:
                if props.get("copy_of"):
                    # libvirt copies the data (qemu-img convert): the copy has no backing store.
                    vol = pool.createXMLFrom(model.to_xml(), source, 0)
                else:
                    vol = pool.createXML(model.to_xml(), 0)
            except libvirt.libvirtError as exc:
                raise _creation_failed(props, pool, exc) from exc
            if props.get("backing_path"):
                faults.point("clone")           # the clone exists, its create has not returned
            try:
                if props.get("source_path"):
                    sha256 = upload_file(conn, vol, source)
                    verify_import(conn, vol, source, sha256, props)
                    if capacity and capacity > model.capacity:
                        vol.resize(capacity, 0)
                elif props.get("copy_of") and xmlmodel.Volume.from_xml(vol.XMLDesc(0)).capacity < model.capacity:
                    vol.resize(model.capacity, 0)   # a qcow2 copy keeps the source's size: grow it
            except Exception:
                vol.delete(0)
                raise
            return CreateResult(vol.key(), self._outputs(
                {**props, "sha256": sha256 if props.get("source_path") else None}, vol))

    def existing_id(self, props):
        with connect(props["host_uri"]) as conn:
            vol = find_volume(conn, props["pool"], props["name"])
            return vol.key() if vol else None

    def read(self, id_, props):
        with connect(props["host_uri"]) as conn:
            vol = find_volume(conn, props["pool"], props["name"])
            if not vol:
                return ReadResult("", {})
            return ReadResult(id_, self._outputs(props, vol))

    def update(self, _id, olds, news):
        with connect(news["host_uri"]) as conn:
            pool = conn.storagePoolLookupByName(news["pool"])
            backups.prune(pool, owner=news.get("owner") or "", uri=news["host_uri"])
            vol = pool.storageVolLookupByName(news["name"])
            want = news.get("capacity_bytes")
            have = xmlmodel.Volume.from_xml(vol.XMLDesc(0)).capacity
            if want and want > have:
                vol.resize(want, 0)  # the guest sees it after a restart; cloud-init grows the fs
            elif want and want < have:
                raise VdeskError(f"volume {news['name']!r}: refusing to shrink from {have} to {want} bytes")
            return UpdateResult(self._outputs({**news, "sha256": olds.get("sha256")}, vol))

    def delete(self, _id, props):
        with connect(props["host_uri"]) as conn:
            vol = find_volume(conn, props["pool"], props["name"])
            if not vol:
                return
            pool = vol.storagePoolLookupByVolume()
            # Only an imported image can be another volume's backing store (a clone or copy never is): the
            # scan of the pool is skipped for desktop disks, so destroying N desktops is not O(N^2).
            leaf = bool(props.get("backing_path") or props.get("copy_of"))
            users = [] if leaf else backing_users(pool, vol.path())
            if users:
                raise VdeskError(f"refusing to delete volume {props['name']!r}: it is the backing store of "
                                 f"{', '.join(users)}")
            # A domain that is kept still uses this disk: the disk is being replaced, not destroyed
            # (at destroy, domains go first). Stop the guest so the copy is consistent; the domain's own
            # update, which follows, starts it on the new disk.
            domains = domains_using(conn, vol.path(), props.get("domain")) if props.get("backup_days") else []
            if domains:
                for dom in domains:
                    shut_down(dom, _SHUTDOWN_S)
                backups.take(pool, vol, props["backup_days"], owner=props.get("owner") or "", uri=props["host_uri"])
            vol.delete(0)

    def _outputs(self, props, vol):
        model = xmlmodel.Volume.from_xml(vol.XMLDesc(0))
        return {
            **self.inputs_of(props),
            "capacity_bytes": props.get("capacity_bytes") and model.capacity,
            "path": vol.path(),
            "key": vol.key(),
            "allocation_bytes": model.allocation,
            "sha256": props.get("sha256"),       # of an imported file, verified on the host when imported
        }


@dataclasses.dataclass
class VolumeArgs:
    """A disk in a pool: empty, an imported file, a linked clone (backing_path) or a full copy (copy_of)."""

    pool: "StoragePool"
    libvirt_name: str                    # its name in the pool, e.g. alice.qcow2
    format: str = "qcow2"                # qcow2 | raw
    capacity: int | str | None = None    # bytes, or a size such as "8GiB" (a clone or copy grows to it)
    source_path: str | None = None       # a file on this machine to upload
    source_id: str | None = None         # changes when that file's content changes (a new upload)
    backing_path: pulumi.Input[str] | None = None    # a linked clone on this volume path
    copy_of: pulumi.Input[str] | None = None         # an independent copy of this volume path
    adopt: bool = False
    backup_days: int = 0                 # a system disk: keep a copy this long when a change replaces it
    domain: str | None = None            # the domain it is the system disk of


class Volume(Resource):
    """A storage volume in a pool."""

    path: pulumi.Output[str]
    capacity_bytes: pulumi.Output[int]

    def __init__(self, name: str, args: VolumeArgs, opts: pulumi.ResourceOptions | None = None):
        self.host = args.pool.host
        capacity = parse_size(args.capacity) if args.capacity is not None else None
        super().__init__(VolumeProvider(), name, {
            "host_uri": args.pool.host.uri, "pool": args.pool.name, "name": args.libvirt_name,
            "format": args.format, "capacity_bytes": capacity, "source_path": args.source_path,
            "source_id": args.source_id, "backing_path": args.backing_path,
            "backing_format": "qcow2" if args.backing_path is not None else None, "copy_of": args.copy_of,
            "backup_days": args.backup_days, "domain": args.domain, "adopt": args.adopt,
            "owner": pulumi.get_stack(),
            **dict.fromkeys(VolumeProvider.OUTPUTS),
        }, opts)
