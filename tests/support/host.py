"""What a libvirt host holds, for tests that count or compare it."""
from __future__ import annotations

import os

import libvirt


def inventory(uri: str) -> dict[str, dict[str, str]]:
    """Every domain, network, pool and volume (of the active pools) on the host: name -> UUID (volumes: key)."""
    conn = libvirt.open(uri)
    try:
        pools = conn.listAllStoragePools(0)
        return {"domains": {d.name(): d.UUIDString() for d in conn.listAllDomains(0)},
                "networks": {n.name(): n.UUIDString() for n in conn.listAllNetworks(0)},
                "pools": {p.name(): p.UUIDString() for p in pools},
                "volumes": {v.name(): v.key() for p in pools if p.isActive() for v in p.listAllVolumes(0)}}
    finally:
        conn.close()


def counts(uri: str) -> dict[str, int]:
    return {kind: len(objects) for kind, objects in inventory(uri).items()}


def qemu_pid(host, name: str) -> int:
    """The pid of the running QEMU of domain `name` on an embedded host, from libvirt's pid file."""
    pid = int((host.state_dir / "run" / "libvirt" / "qemu" / f"{name}.pid").read_text().strip())
    assert os.path.exists(f"/proc/{pid}")
    return pid
