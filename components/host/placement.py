"""Where each desktop lives when it may be on several hosts: deterministic, by capacity, and stable.

The rule, applied at every preview and up:

1. A desktop that may be on one host only (`host:`, or `hosts:` with one name) lives there.
2. A desktop whose domain already exists on one of its hosts stays there. vdesk finds it on the
   hosts themselves: a domain with the desktop's libvirt name whose vdesk owner metadata names
   this stack. (Pulumi's state is not consulted: the hosts are the truth.)
3. Every other desktop, in name order, goes to the first of its hosts that has room for it, the
   hosts ranked by rendezvous hashing: highest sha256("<desktop>\\0<host>") first. Room means its
   memory and vCPUs fit the host beside the running desktops already placed there (with the
   host's overcommit), and its CPU and GPU settings are ones the host can satisfy.
   A host that cannot be reached counts as having room: its desktops fail on their own at `up`.

So adding a desktop moves nobody, removing a host from a list moves only the desktops that were
on it (and the preview says where they go), and the choice does not depend on the order of the
stack file. Rendezvous hashing spreads desktops evenly without a table to keep.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from typing import Iterable, Mapping

import libvirt
from lxml import etree

from .. import xmlmodel
from .capacity import DEFAULT_OVERCOMMIT, MiB, Capacity
from .connection import connect
from .hardware import Claims, HardwareDemand, HostHardware, alone

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Want:
    """A desktop to place: its name, where it may go, and what it needs there."""

    name: str
    vm_name: str
    hosts: tuple[str, ...]
    memory: int                    # bytes
    vcpus: int                     # its vCPU maximum
    running: bool
    hardware: HardwareDemand | None = None   # its `host` is filled in per candidate
    field: str = ""                # where its hosts are written (for messages)


@dataclasses.dataclass
class Placement:
    hosts: dict[str, str] = dataclasses.field(default_factory=dict)            # desktop -> host
    kept: dict[str, str] = dataclasses.field(default_factory=dict)             # desktop -> host it was found on
    moves: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)   # (desktop, from, to)
    problems: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def score(desktop: str, host: str) -> int:
    """The rendezvous weight of a host for a desktop: the first 8 bytes of sha256("<desktop>\\0<host>")."""
    return int.from_bytes(hashlib.sha256(f"{desktop}\0{host}".encode()).digest()[:8], "big")


def ranked(desktop: str, hosts: Iterable[str]) -> list[str]:
    """A desktop's hosts, best first."""
    return sorted(hosts, key=lambda h: (score(desktop, h), h), reverse=True)


def find_existing(uris: Mapping[str, str], stack: str, vm_names: Iterable[str]) -> dict[str, list[str]]:
    """vm name -> the hosts where a domain of that name belongs to this stack (its owner metadata says so)."""
    wanted = set(vm_names)
    found: dict[str, list[str]] = {}
    for host, uri in uris.items():
        with connect(uri) as conn:
            for dom in conn.listAllDomains(0):
                try:
                    name = dom.name()
                    if name not in wanted:
                        continue
                    # libvirt hands the element back without its namespace: <desktop><stack>...
                    owner = etree.fromstring(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                                                          xmlmodel.VDESK_NS, 0).encode())
                except libvirt.libvirtError:
                    continue        # gone meanwhile, or no vdesk metadata: not ours
                if owner.findtext("stack") == stack and owner.findtext("resource") == name:
                    found.setdefault(name, []).append(host)
    return found


def place(wants: Iterable[Want], *, capacities: Mapping[str, Capacity], hardware: Mapping[str, HostHardware],
          overcommit: Mapping[str, Mapping[str, float]], existing: Mapping[str, list[str]],
          unreachable: Iterable[str] = ()) -> Placement:
    """Apply the rule above; problems name a desktop that fits none of its hosts, with each host's reason."""
    wants = list(wants)
    unreachable = set(unreachable)
    result = Placement()
    room = _Room(capacities, hardware, overcommit, unreachable)

    def settle(w: Want, host: str) -> None:
        result.hosts[w.name] = host
        room.take(w, host)
        was = [h for h in existing.get(w.vm_name, []) if h != host]
        if was and host not in existing.get(w.vm_name, []):
            result.moves.append((w.name, was[0], host))

    pinned = [w for w in wants if len(w.hosts) == 1]
    for w in pinned:
        settle(w, w.hosts[0])
    flexible = sorted((w for w in wants if len(w.hosts) > 1), key=lambda w: w.name)
    rest = []
    for w in flexible:
        here = [h for h in ranked(w.name, w.hosts) if h in existing.get(w.vm_name, [])]
        if here:
            result.kept[w.name] = here[0]
            settle(w, here[0])
        else:
            rest.append(w)
    for w in rest:
        reasons = []
        for host in ranked(w.name, w.hosts):
            why = room.refuses(w, host)
            if why is None:
                settle(w, host)
                break
            reasons.append(f"{host}: {why}")
        else:
            result.problems.append((w.field, f"no host has room for desktop {w.name!r} ({'; '.join(reasons)})"))
    return result


class _Room:
    """What each host has left for running desktops and devices, as desktops are placed on it."""

    def __init__(self, capacities, hardware, overcommit, unreachable):
        self.capacities, self.hardware, self.unreachable = capacities, hardware, unreachable
        self.overcommit = overcommit
        self.memory: dict[str, int] = {}
        self.vcpus: dict[str, int] = {}
        self.claims = Claims()

    def refuses(self, w: Want, host: str) -> str | None:
        """Why `host` cannot take `w` now, or None."""
        if host in self.unreachable:
            return None
        cap = self.capacities.get(host)
        if cap is not None:
            ratio = {**DEFAULT_OVERCOMMIT, **self.overcommit.get(host, {})}
            if w.memory > cap.memory:
                return f"{w.memory // MiB} MiB of memory is more than it has ({cap.memory // MiB} MiB)"
            if w.vcpus > cap.max_vcpus:
                return f"{w.vcpus} vCPUs is more than a guest there may have ({cap.max_vcpus})"
            if w.running:
                memory = self.memory.get(host, 0) + w.memory
                if memory > cap.memory * ratio["memory"]:
                    return (f"its running desktops would need {memory // MiB} MiB of memory, more than "
                            f"{cap.memory // MiB} MiB x overcommit {ratio['memory']:g}")
                vcpus = self.vcpus.get(host, 0) + w.vcpus
                if vcpus > cap.cpus * ratio["cpu"]:
                    return (f"its running desktops would need {vcpus} vCPUs, more than {cap.cpus} CPUs x "
                            f"overcommit {ratio['cpu']:g}")
        hw = self.hardware.get(host)
        if w.hardware is not None and w.hardware.asks and hw is not None:
            demand = dataclasses.replace(w.hardware, host=host)
            problems = alone(demand, hw) or self.claims.take(demand, hw, dry_run=True)
            if problems:
                return problems[0][1]
        return None

    def take(self, w: Want, host: str) -> None:
        if w.running:
            self.memory[host] = self.memory.get(host, 0) + w.memory
            self.vcpus[host] = self.vcpus.get(host, 0) + w.vcpus
        hw = self.hardware.get(host)
        if w.hardware is not None and w.hardware.asks and hw is not None:
            self.claims.take(dataclasses.replace(w.hardware, host=host), hw)
