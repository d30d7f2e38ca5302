"""The raw floor of a whole stack: the libvirt work of `vdesk up` of N stopped desktops, and nothing else.

Set up: a dir pool (define, build, start, autostart), a NAT network with DHCP
(define, start, autostart), the image uploaded as volumes (disk, kernel,
initrd), then for each desktop on 8 threads: a linked clone, a seed ISO
volume with its upload, and a domain definition.  Tear down: the domains
undefined and their volumes deleted (8 threads), then the image volumes, the
network and the pool.

Every XML document and the seed's bytes are made before the clock starts
(with vdesk's own model, so libvirt sees the same documents as vdesk sends):
the floor is libvirt's share of the work, no engine, no state.  Each worker
thread has a connection of its own: the whole-stack bench of 3b8bd22 hung in
the N=60 floor's second round with 8 threads streaming uploads over one
connection.  A round runs in a child process with a deadline (`run_bounded`),
so a hang is reported as a failure and swept, not waited on for ever.
"""
from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import libvirt

from components.cloudinit import SeedDocuments
from components.cloudinit.seed import nocloud_iso
from components.resources import domain as domain_res
from components.resources import network as network_res
from components.resources import pool as pool_res
from components.resources.volume import file_virtual_size

CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class FloorPlan:
    """Everything the floor sends, prepared before it is timed."""

    uri: str
    pool_name: str
    pool_xml: str
    network_name: str
    network_xml: str
    images: tuple[tuple[str, str, str, int], ...]   # (volume name, local file, format, capacity)
    disk_bytes: int
    seed: bytes
    desktops: tuple[str, ...]                       # domain names
    domain_xml: dict                                # name -> XML (paths filled in at run time)


def plan(uri: str, *, pool_root: str, image, n: int, disk_bytes: int, memory_mib: int, vcpus: int,
         domain_type: str, cidr: str, display_dir: str | None, qemu_log_dir: str | None,
         prefix: str = "floor") -> FloorPlan:
    """The floor's documents for `n` desktops from image files `image` (components.images.golden.ImageFiles)."""
    pool_name, net_name = f"{prefix}-main", f"{prefix}-lan"
    pool_path = os.path.join(pool_root, pool_name)
    pool_xml = pool_res.pool_model({"type": "dir", "name": pool_name, "path": pool_path}).to_xml()
    net_xml = network_res.desired_model({"name": net_name, "cidr": cidr, "mode": "nat", "dhcp": True}).to_xml()
    images = []
    for kind, path, fmt in (("disk", image.disk, "qcow2"), ("kernel", image.kernel, "raw"),
                            ("initrd", image.initrd, "raw")):
        if path:
            images.append((f"{prefix}-image-{kind}.{fmt}", path, fmt, file_virtual_size(path)[1]))
    # One seed's worth of bytes: the same size and kind of document vdesk uploads per desktop.
    seed = nocloud_iso(SeedDocuments("#cloud-config\n" + "# floor\n" * 200, "instance-id: floor\n",
                                     "version: 2\nethernets: {}\n"))
    names = tuple(f"{prefix}-d{i:02d}" for i in range(n))
    xml = {}
    for i, name in enumerate(names):
        props = {
            "name": name, "owner": prefix, "domain_type": domain_type, "boot": "kernel" if image.kernel else "bios",
            "memory_mib": memory_mib, "vcpus": vcpus,
            "kernel": os.path.join(pool_path, images[1][0]) if image.kernel else None,
            "initrd": os.path.join(pool_path, images[2][0]) if image.initrd else None,
            "cmdline": image.cmdline,
            "disks": [{"path": os.path.join(pool_path, f"{name}.qcow2"), "format": "qcow2"},
                      {"path": os.path.join(pool_path, f"{name}-seed.iso"), "format": "raw", "readonly": True}],
            "nics": [{"network": net_name, "mac": f"52:54:00:fe:{i // 256:02x}:{i % 256:02x}"}],
            "graphics_socket": f"{display_dir}/{name}.vnc" if display_dir else None,
        }
        xml[name] = domain_res.desired_model(props).to_xml()
    return FloorPlan(uri, pool_name, pool_xml, net_name, net_xml, tuple(images), disk_bytes, seed, names, xml)


def _upload_file(conn, vol, path: str) -> None:
    stream = conn.newStream(0)
    vol.upload(stream, 0, os.path.getsize(path), 0)
    with open(path, "rb") as fh:
        stream.sendAll(lambda _s, n, f: f.read(min(n, CHUNK)), fh)
    stream.finish()


def _upload_bytes(conn, vol, data: bytes) -> None:
    stream = conn.newStream(0)
    vol.upload(stream, 0, len(data), 0)
    view = memoryview(data)
    while view:
        view = view[stream.send(bytes(view[:CHUNK])):]
    stream.finish()


def _volume_xml(name: str, fmt: str, capacity: int, backing: str | None = None) -> str:
    backing_xml = (f"<backingStore><path>{backing}</path><format type='qcow2'/></backingStore>"
                   if backing else "")
    return (f"<volume><name>{name}</name><capacity unit='bytes'>{capacity}</capacity>"
            f"<target><format type='{fmt}'/></target>{backing_xml}</volume>")


@dataclass
class FloorRun:
    up_s: float
    destroy_s: float
    alloc_disk_kib: list[float]
    alloc_seed_kib: list[float]


def up(fp: FloorPlan, workers: int = 8) -> float:
    """Create it all; returns the seconds it took."""
    started = time.perf_counter()
    conn = libvirt.open(fp.uri)
    try:
        pool = conn.storagePoolDefineXML(fp.pool_xml, 0)
        pool.build(0)
        pool.create(0)
        pool.setAutostart(1)
        net = conn.networkDefineXML(fp.network_xml)
        net.create()
        net.setAutostart(1)
        base_path = None
        for name, path, fmt, capacity in fp.images:
            vol = pool.createXML(_volume_xml(name, fmt, capacity), 0)
            _upload_file(conn, vol, path)
            base_path = base_path or vol.path()

        with _Workers(fp.uri) as own:
            def one(name: str) -> None:
                c = own.conn()
                p = c.storagePoolLookupByName(fp.pool_name)
                p.createXML(_volume_xml(f"{name}.qcow2", "qcow2", fp.disk_bytes, backing=base_path), 0)
                seed = p.createXML(_volume_xml(f"{name}-seed.iso", "raw", len(fp.seed)), 0)
                _upload_bytes(c, seed, fp.seed)
                c.defineXML(fp.domain_xml[name])

            with ThreadPoolExecutor(max_workers=workers) as ex:
                list(ex.map(one, fp.desktops))
    finally:
        conn.close()
    return time.perf_counter() - started


class _Workers:
    """One libvirt connection per worker thread, opened on its first use and closed at the end."""

    def __init__(self, uri: str):
        self.uri, self._local, self._all, self._lock = uri, threading.local(), [], threading.Lock()

    def conn(self):
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = libvirt.open(self.uri)
            with self._lock:
                self._all.append(c)
        return c

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for c in self._all:
            with contextlib.suppress(libvirt.libvirtError):
                c.close()


def allocations(fp: FloorPlan) -> tuple[list[float], list[float]]:
    """Allocation (KiB) of each desktop's disk and seed, as libvirt reports it."""
    with contextlib.closing(libvirt.open(fp.uri)) as conn:
        return volume_allocations(conn, fp.pool_name, [f"{n}.qcow2" for n in fp.desktops],
                                  [f"{n}-seed.iso" for n in fp.desktops])


def volume_allocations(conn, pool_name: str, disks: list[str], seeds: list[str]) -> tuple[list[float], list[float]]:
    pool = conn.storagePoolLookupByName(pool_name)
    pool.refresh(0)
    disk = [pool.storageVolLookupByName(v).info()[2] / 1024 for v in disks]
    seed = [pool.storageVolLookupByName(v).info()[2] / 1024 for v in seeds]
    return disk, seed


def destroy(fp: FloorPlan, workers: int = 8) -> float:
    """Tear it all down; returns the seconds it took."""
    started = time.perf_counter()
    conn = libvirt.open(fp.uri)
    try:
        pool = conn.storagePoolLookupByName(fp.pool_name)
        with _Workers(fp.uri) as own:
            def one(name: str) -> None:
                c = own.conn()
                p = c.storagePoolLookupByName(fp.pool_name)
                c.lookupByName(name).undefine()
                p.storageVolLookupByName(f"{name}.qcow2").delete(0)
                p.storageVolLookupByName(f"{name}-seed.iso").delete(0)

            with ThreadPoolExecutor(max_workers=workers) as ex:
                list(ex.map(one, fp.desktops))
        for name, *_ in reversed(fp.images):
            pool.storageVolLookupByName(name).delete(0)
        net = conn.networkLookupByName(fp.network_name)
        net.destroy()
        net.undefine()
        pool.destroy()
        pool.delete(0)
        pool.undefine()
    finally:
        conn.close()
    return time.perf_counter() - started


def sweep(fp: FloorPlan) -> list[str]:
    """Remove whatever a failed floor run left; returns what it found."""
    found = []
    with contextlib.closing(libvirt.open(fp.uri)) as conn:
        for name in fp.desktops:
            with contextlib.suppress(libvirt.libvirtError):
                conn.lookupByName(name).undefine()
                found.append(name)
        with contextlib.suppress(libvirt.libvirtError):
            net = conn.networkLookupByName(fp.network_name)
            found.append(fp.network_name)
            with contextlib.suppress(libvirt.libvirtError):
                net.destroy()
            net.undefine()
        with contextlib.suppress(libvirt.libvirtError):
            pool = conn.storagePoolLookupByName(fp.pool_name)
            found.append(fp.pool_name)
            with contextlib.suppress(libvirt.libvirtError):
                pool.refresh(0)
                for vol in pool.listAllVolumes(0):
                    vol.delete(0)
            with contextlib.suppress(libvirt.libvirtError):
                pool.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                pool.delete(0)
            pool.undefine()
    return found


def run(fp: FloorPlan, workers: int = 8) -> FloorRun:
    """One timed round: up, allocations (untimed), destroy."""
    try:
        up_s = up(fp, workers)
        disk, seed = allocations(fp)
        destroy_s = destroy(fp, workers)
    except Exception:
        sweep(fp)
        raise
    return FloorRun(up_s, destroy_s, disk, seed)


class FloorError(RuntimeError):
    """A floor round failed (libvirt's message, carried out of the child process as text)."""


class FloorHung(FloorError):
    """A floor round did not finish within its deadline (its child's thread stacks are on stderr)."""


def _child_round(fp: FloorPlan, workers: int, deadline_s: float) -> FloorRun:
    # Stacks of every thread on stderr shortly before the parent gives up: where a hang waits.
    faulthandler.dump_traceback_later(max(deadline_s - 5, 1), exit=False, file=sys.stderr)
    try:
        return run(fp, workers)
    except libvirt.libvirtError as exc:
        raise FloorError(str(exc)) from None


def run_bounded(fp: FloorPlan, workers: int = 8, deadline_s: float = 300) -> FloorRun:
    """`run` in a child process: past `deadline_s` the child is killed, what it made is swept, FloorHung raised."""
    ex = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    try:
        future = ex.submit(_child_round, fp, workers, deadline_s)
        try:
            return future.result(timeout=deadline_s)
        except FutureTimeout:
            for proc in list(getattr(ex, "_processes", {}).values()):
                proc.kill()
            found = sweep(fp)
            raise FloorHung(f"the floor round took more than {deadline_s:.0f} s (8 threads; swept: "
                            f"{len(found)} objects); its threads' stacks are on stderr") from None
    finally:
        ex.shutdown(wait=False, cancel_futures=True)
