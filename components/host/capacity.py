"""What a host can give, read from libvirt itself, and what a stack asks of it: checked at preview.

libvirt would accept a 64 TiB desktop and fail only when it starts, after other
parts were made. So the host's memory, CPUs and per-guest vCPU limit are read
while the stack is previewed, and each desktop (alone: what the host can ever
give) and all running desktops of a host together (with the host's declared
overcommit) are compared with it, naming the fields that ask too much.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Iterable

import libvirt

from .. import xmlmodel
from .connection import connect

log = logging.getLogger(__name__)

DEFAULT_OVERCOMMIT = {"memory": 1.0, "cpu": 4.0}
MiB = 1024**2


@dataclasses.dataclass(frozen=True)
class Capacity:
    """One host's size, as libvirt reports it."""

    host: str
    memory: int              # physical memory, bytes
    cpus: int                # logical CPUs
    max_vcpus: int           # the most vCPUs one guest of this domain type may have


@dataclasses.dataclass(frozen=True)
class Demand:
    """What one desktop asks of its host; `fields` says where each number is written in the stack."""

    name: str
    host: str
    memory: int              # bytes
    vcpus: int               # its vCPU maximum (max_vcpus, else vcpus)
    running: bool
    memory_field: str
    vcpus_field: str


def read(host: str, uri: str, domain_type: str) -> Capacity:
    with connect(uri) as conn:
        _model, memory_mib, cpus, *_ = conn.getInfo()      # (libvirt counts the host's memory in MiB)
        return Capacity(host, int(memory_mib) * MiB, int(cpus), _max_vcpus(conn, domain_type))


def _max_vcpus(conn, domain_type: str) -> int:
    """The domain capabilities' <vcpu max='N'/>, else what the driver says for the type."""
    try:
        found = xmlmodel.DomainCapabilities.of(conn, domain_type).vcpu_max
        if found:
            return found
    except libvirt.libvirtError as exc:
        log.info("no domain capabilities (%s); asking for the driver's limit", exc.get_error_message())
    for kind in (domain_type, None):
        try:
            return int(conn.getMaxVcpus(kind))
        except libvirt.libvirtError:
            continue
    return 1 << 16


def problems(demands: Iterable[Demand], capacities: dict[str, Capacity],
             overcommit: dict[str, dict[str, float]]) -> list[tuple[str, str]]:
    """(field, message) for each desktop that can never fit, and for hosts whose running desktops do not."""
    found: list[tuple[str, str]] = []
    fitting = []
    for d in demands:
        cap = capacities[d.host]
        alone = len(found)
        if d.memory > cap.memory:
            found.append((d.memory_field, f"{_mib(d.memory)} is more than host {d.host!r} has "
                                          f"({_mib(cap.memory)}): desktop {d.name!r} could never start"))
        if d.vcpus > cap.max_vcpus:
            found.append((d.vcpus_field, f"{d.vcpus} vCPUs is more than a guest on host {d.host!r} may have "
                                         f"({cap.max_vcpus})"))
        if len(found) == alone:
            fitting.append(d)
    for host, cap in capacities.items():
        ratio = {**DEFAULT_OVERCOMMIT, **overcommit.get(host, {})}
        running = [d for d in fitting if d.host == host and d.running]   # (one that can never fit is said above)
        memory, vcpus = sum(d.memory for d in running), sum(d.vcpus for d in running)
        names = ", ".join(d.name for d in running)
        if memory > cap.memory * ratio["memory"]:
            found.append((f"hosts.{host}", f"its running desktops ({names}) need {_mib(memory)} of memory; it has "
                                           f"{_mib(cap.memory)} x overcommit {ratio['memory']:g}: move some to "
                                           "another host, stop some (running: false) or raise overcommit.memory"))
        if vcpus > cap.cpus * ratio["cpu"]:
            found.append((f"hosts.{host}", f"its running desktops ({names}) need {vcpus} vCPUs; it has {cap.cpus} "
                                           f"CPUs x overcommit {ratio['cpu']:g}: move some to another host, stop "
                                           "some or raise overcommit.cpu"))
    return found


def _mib(size: int) -> str:
    """Bytes as MiB or GiB, the way the stack file writes them."""
    mib = size // MiB
    return f"{mib / 1024:g} GiB" if mib >= 1024 else f"{mib} MiB"
