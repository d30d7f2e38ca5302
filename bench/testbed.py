"""A private libvirtd in a temp state root with one dir pool and a base volume, gone again afterwards."""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import libvirt

from components.host import embedded
from components import xmlmodel
from components.host.connection import connect

from .reaper import start_under_reaper

log = logging.getLogger(__name__)

POOL = "bench"
BASE = "base.qcow2"
BASE_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class Testbed:
    uri: str
    pool: str
    pool_path: str
    base_path: str
    base_bytes: int


def _make_pool(conn: libvirt.virConnect, path: Path) -> str:
    """Dir pool and an empty qcow2 base, made with raw calls: setup is not what is measured."""
    pool = conn.storagePoolDefineXML(xmlmodel.Pool(type="dir", name=POOL, target_path=str(path)).to_xml(), 0)
    pool.build(0)
    pool.create(0)
    base = pool.createXML(xmlmodel.Volume(name=BASE, format="qcow2", capacity=BASE_BYTES).to_xml(), 0)
    return base.path()


def sweep(bed: Testbed) -> list[str]:
    """Remove every domain and every volume but the base; return what was found (leaks)."""
    found = []
    with connect(bed.uri) as conn:
        for dom in conn.listAllDomains(0):
            found.append(f"domain {dom.name()}")
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefine()
        pool = conn.storagePoolLookupByName(bed.pool)
        pool.refresh(0)
        for vol in pool.listAllVolumes(0):
            if vol.path() != bed.base_path:
                found.append(f"volume {vol.name()}")
                with contextlib.suppress(libvirt.libvirtError):
                    vol.delete(0)
    return found


@contextlib.contextmanager
def testbed(reap: bool = True) -> Iterator[Testbed]:
    """Start the host (under a prompt reaper unless told not to), yield the testbed; stop and purge always."""
    root = Path(tempfile.mkdtemp(prefix="vdesk-bench-"))
    host = embedded.embedded_host("bench", state_root=root)
    reaper = None
    try:
        if reap:
            reaper = start_under_reaper(host)
        else:
            embedded.ensure_running(host)
        with connect(host.uri) as conn:
            base_path = _make_pool(conn, root / "pool")
        yield Testbed(uri=host.uri, pool=POOL, pool_path=str(root / "pool"),
                      base_path=base_path, base_bytes=BASE_BYTES)
    finally:
        try:
            embedded.stop(host, purge=True)
        finally:
            if reaper is not None:
                reaper.close()
            shutil.rmtree(root, ignore_errors=True)
        leftovers = [p for p in (host.netns, str(root)) if os.path.exists(p)]
        if leftovers:
            log.warning("left behind: %s", ", ".join(leftovers))
