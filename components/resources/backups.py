"""Backups of desktop disks that a change replaces: kept beside them for a declared time, restorable.

A new image (a recipe change: how a team rolls out an update) or a new
`disk_clone` replaces a desktop's system disk. Before the old disk goes, it is
copied, flattened into a standalone qcow2 (the image it was a clone of may go
with the same change), into the same pool under a name that says when it was
taken and for how long it is kept:

    <disk stem>-backup-<YYYYmmdd-HHMMSS>-keep<days>d.qcow2

Expired backups are removed by the next change in that pool; a pool that vdesk
deletes takes its backups with it. `make restore` puts one back. A backup is its
stack's: the creation journal records it, and pruning or deleting a pool removes
only the backups of the stack that does it (a pool may hold several stacks' disks).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re

import libvirt

from .. import xmlmodel
from . import journal

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(?P<stem>.+)-backup-(?P<taken>\d{8}-\d{6})-keep(?P<days>\d{1,4})d\.qcow2$")
_STAMP = "%Y%m%d-%H%M%S"


@dataclasses.dataclass(frozen=True)
class Backup:
    name: str
    stem: str                  # the disk's name without its extension
    taken: dt.datetime
    keep_days: int

    @property
    def expires(self) -> dt.datetime:
        return self.taken + dt.timedelta(days=self.keep_days)


def stem(volume_name: str) -> str:
    return volume_name.rsplit(".", 1)[0]


def parse(name: str) -> Backup | None:
    found = _NAME.match(name)
    if not found:
        return None
    taken = dt.datetime.strptime(found["taken"], _STAMP).replace(tzinfo=dt.timezone.utc)
    return Backup(name, found["stem"], taken, int(found["days"]))


def name_for(volume_name: str, keep_days: int, now: dt.datetime) -> str:
    return f"{stem(volume_name)}-backup-{now.strftime(_STAMP)}-keep{keep_days}d.qcow2"


def take(pool, vol, keep_days: int, now: dt.datetime | None = None, *, owner: str = "", uri: str = "") -> str:
    """Copy `vol` into its pool as a standalone qcow2 backup, journaled as `owner`'s (the stack whose disk it
    is, on host `uri`); returns the backup's name."""
    now = now or dt.datetime.now(dt.timezone.utc)
    source = xmlmodel.Volume.from_xml(vol.XMLDesc(0))
    name = name_for(vol.name(), keep_days, now)
    # libvirt copies through qemu-img convert, which reads the whole backing chain: no backing store.
    pool.createXMLFrom(xmlmodel.Volume(name=name, format="qcow2", capacity=source.capacity).to_xml(), vol, 0)
    if owner:
        journal.note(owner, "volume", uri, f"{pool.name()}/{name}", journal.CREATED)
    log.info("kept %s as %s for %d day(s)", vol.name(), name, keep_days)
    return name


def _mine(pool, name: str, owner: str, uri: str) -> bool:
    return bool(owner) and journal.lookup(owner, "volume", uri, f"{pool.name()}/{name}") is not None


def _delete(pool, name: str, owner: str, uri: str) -> None:
    pool.storageVolLookupByName(name).delete(0)
    journal.forget(owner, "volume", uri, f"{pool.name()}/{name}")


def of(pool, volume_name: str) -> list[Backup]:
    """The backups of one disk, newest first."""
    found = [b for b in map(parse, pool.listVolumes()) if b and b.stem == stem(volume_name)]
    return sorted(found, key=lambda b: b.taken, reverse=True)


def prune(pool, now: dt.datetime | None = None, *, owner: str = "", uri: str = "") -> list[str]:
    """Delete `owner`'s backups in the pool whose time is up; returns their names."""
    now = now or dt.datetime.now(dt.timezone.utc)
    gone = []
    for name in pool.listVolumes():
        backup = parse(name)
        if backup and backup.expires <= now and _mine(pool, name, owner, uri):
            try:
                _delete(pool, name, owner, uri)
                gone.append(name)
            except libvirt.libvirtError as exc:
                log.warning("could not remove the expired backup %s: %s", name, exc.get_error_message())
    return gone


def remove_all(pool, *, owner: str, uri: str) -> list[str]:
    """Delete every backup of `owner` in a pool that it is removing (another stack's stay, and keep the pool)."""
    gone = []
    for name in pool.listVolumes():
        if parse(name) and _mine(pool, name, owner, uri):
            _delete(pool, name, owner, uri)
            gone.append(name)
    return gone
