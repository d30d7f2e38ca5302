"""Put a kept copy of a desktop's system disk back: `make restore STACK=dev DESKTOP=alice [BACKUP=name]`.

When a change replaces a desktop's system disk (a new image, a new disk_clone),
the old disk is kept in its pool for the declared time (disk_backup_days). This
lists those copies, or restores one (the newest unless BACKUP names another):
the desktop is shut down, its current disk is itself kept as a copy (so a
restore can be undone the same way), the chosen copy takes the disk's place,
and the desktop starts again if it was running. Home volumes are separate and
never touched.

    python -m components.cli.restore STACK DESKTOP [--list | --backup NAME]
"""
from __future__ import annotations

import argparse
import sys

import libvirt

from ..host.connection import connect
from ..resources import backups
from ..resources.lifecycle import shut_down
from .access import stack_outputs

KEEP_RESTORED_FROM_DAYS = 7


def restore(uri: str, domain_name: str, disk_path: str, backup: str | None = None, *, stack: str = "") -> str:
    """Restore `backup` (default: the newest) into the desktop's disk; returns the name restored. The disk
    before the restore is kept as a backup of `stack`'s."""
    with connect(uri) as conn:
        disk = conn.storageVolLookupByPath(disk_path)
        pool = disk.storagePoolLookupByVolume()
        kept = backups.of(pool, disk.name())
        if not kept:
            raise SystemExit(f"restore: no kept copies of {disk.name()} in pool {pool.name()}")
        chosen = next((b for b in kept if b.name == backup), None) if backup else kept[0]
        if chosen is None:
            raise SystemExit(f"restore: {backup} is not a kept copy of {disk.name()} "
                             f"(kept: {', '.join(b.name for b in kept)})")
        dom = conn.lookupByName(domain_name)
        was_running = bool(dom.isActive())
        shut_down(dom, 60)
        fmt = _format(disk)
        backups.take(pool, disk, KEEP_RESTORED_FROM_DAYS, owner=stack, uri=uri)
        source = pool.storageVolLookupByName(chosen.name)
        capacity = source.info()[1]
        disk.delete(0)
        from .. import xmlmodel
        pool.createXMLFrom(xmlmodel.Volume(name=disk_path.rsplit("/", 1)[-1], format=fmt,
                                           capacity=capacity).to_xml(), source, 0)
        if was_running:
            dom.create()
        return chosen.name


def _format(vol) -> str:
    from .. import xmlmodel
    return xmlmodel.Volume.from_xml(vol.XMLDesc(0)).format or "qcow2"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.cli.restore", description=__doc__.splitlines()[0])
    parser.add_argument("stack")
    parser.add_argument("desktop")
    parser.add_argument("--backup", help="the copy to restore (default: the newest)")
    parser.add_argument("--list", action="store_true", help="list the kept copies, restore nothing")
    args = parser.parse_args(argv)
    desk = (stack_outputs(args.stack).get("desktops") or {}).get(args.desktop)
    if not desk or not desk.get("disk"):
        print(f"restore: stack {args.stack} has no desktop {args.desktop!r}", file=sys.stderr)
        return 2
    if args.list:
        with connect(desk["host_uri"]) as conn:
            disk = conn.storageVolLookupByPath(desk["disk"])
            for b in backups.of(disk.storagePoolLookupByVolume(), disk.name()):
                print(f"{b.name}  taken {b.taken:%Y-%m-%d %H:%M} UTC, kept until {b.expires:%Y-%m-%d %H:%M} UTC")
        return 0
    try:
        name = restore(desk["host_uri"], desk["name"], desk["disk"], args.backup, stack=args.stack)
    except libvirt.libvirtError as exc:
        print(f"restore: {exc.get_error_message()}", file=sys.stderr)
        return 1
    print(f"restored {args.desktop} from {name}; its disk before the restore is kept as a copy too")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
