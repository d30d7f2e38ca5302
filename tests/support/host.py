"""What a libvirt host holds, for tests that count or compare it."""
from __future__ import annotations

import os
from pathlib import Path

import libvirt

# What a stack's `up` writes in an embedded host's state dir besides libvirt's objects: its desktops' portal
# records and its quotas. Resources all: a destroy leaves none.
RECORDS = ("portal/accounts", "lifecycle/quotas")


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


def records_left(state_dir: Path) -> list[Path]:
    """The stacks' records (RECORDS) still in an embedded host's state dir."""
    return sorted(p for sub in RECORDS for p in (Path(state_dir) / sub).rglob("*") if p.is_file())
