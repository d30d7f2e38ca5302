"""Quotas enforced on the host: a start or a wake beyond a user's or a group's quota is refused, saying why.

At preview a stack's quotas count the desktops it declares (components/config/quotas.py). Here they count what
runs. A stack that declares quotas records them on each embedded host (`<host>/lifecycle/quotas/<stack>.json`,
root's, 0600) through its QuotaRecord resource (components/resources/quota_record.py); whom each desktop is for
(its users and their groups) is in that desktop's portal record (components/portal/accounts.py). Both are
resources, so `destroy` removes them and a refresh sees one removed or altered. A desktop about to start is held
to its own stack's quotas; what counts against them is every running desktop on the host, of any stack, that
lists the same user (or a user of the same group), with its live memory. A record counts only for the domains
whose owner metadata names its stack, so no stack speaks for another's desktops, and another stack's quotas never
stop this stack's desktops.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Mapping

import libvirt

from .. import xmlmodel
from ..errors import VdeskError
from ..portal import accounts

log = logging.getLogger(__name__)

QUOTAS_DIR = "quotas"
KINDS = ("users", "groups")
_KIB = 1024
_GiB, _MiB = 1024 ** 3, 1024 ** 2


class QuotaExceeded(VdeskError):
    """Starting the desktop would take its person (or their group) beyond a quota; the message says which."""


@dataclasses.dataclass(frozen=True)
class Running:
    """A desktop that runs on the host, as the quotas count it."""
    name: str
    memory: int                        # bytes: the domain's memory (its maximum, as declared)
    people: Mapping[str, tuple[str, ...]]     # users -> (...), groups -> (...)


def lifecycle_dir_of(sibling: str | Path) -> Path:
    """The host's lifecycle dir, beside its portal's or its console gateway's (all in the host's state dir)."""
    return Path(sibling).parent / "lifecycle"


def declared(quotas: Mapping | None) -> dict:
    """A stack's quotas as its record holds them: {users|groups: {who: {desktops, memory}}}, unset limits left
    out; empty (no kind names anyone) when the stack declares none."""
    return {kind: {who: {k: v for k, v in dict(limit or {}).items() if v is not None}
                   for who, limit in sorted(((quotas or {}).get(kind) or {}).items())}
            for kind in KINDS}


def record_path(lifecycle_dir: str | Path, stack: str) -> Path:
    """Where a stack's record is on the host (one file per stack: no stack's write touches another's)."""
    if not isinstance(stack, str) or not stack or "/" in stack or stack.startswith("."):
        raise ValueError(f"not a stack name: {stack!r}")
    return Path(lifecycle_dir) / QUOTAS_DIR / f"{stack}.json"


def record(lifecycle_dir: str | Path, stack: str, quotas: Mapping | None) -> Path:
    """Write (atomically, 0600) a stack's quotas on the host, over the record it had."""
    path = record_path(lifecycle_dir, stack)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps({"quotas": declared(quotas)}, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def withdraw(lifecycle_dir: str | Path, stack: str) -> None:
    """Remove the stack's record (and only its own); one already gone is fine."""
    path = record_path(lifecycle_dir, stack)
    path.unlink(missing_ok=True)
    path.with_name(f".{path.name}.tmp").unlink(missing_ok=True)


def recorded(lifecycle_dir: str | Path, stack: str) -> dict | None:
    """The stack's quotas as the host holds them: None when it has no record; a record that does not read holds
    no quota (none is enforced from it), so it differs from any declaration that makes one."""
    path = record_path(lifecycle_dir, stack)
    if not path.exists():
        return None
    return declared(_read(path))


def records(lifecycle_dir: str | Path) -> dict[str, dict]:
    """Every stack's quotas on the host; a file that does not read is left out (and logged)."""
    found = {}
    for path in sorted((Path(lifecycle_dir) / QUOTAS_DIR).glob("*.json")):
        if (quotas := _read(path)) is not None:
            found[path.stem] = quotas
    return found


def _read(path: Path) -> dict | None:
    """A record's quotas (as `declared` puts them); None (logged) when it does not read. A record the program
    wrote before the quotas were a resource also lists desktops: it is left out, as its stack's next `up` writes
    its own."""
    try:
        body = json.loads(path.read_text())
        if not isinstance(body, dict) or not isinstance(body.get("quotas"), dict):
            raise ValueError("not a quota record")
        if "desktops" in body:
            raise ValueError("an older up's record; its stack's next up writes its own")
        return declared(body["quotas"])
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("quota record %s ignored: %s", path, exc)
        return None


def _owner_stack(dom) -> str:
    owner = xmlmodel.Domain.from_xml(dom.XMLDesc(0)).owner
    return (owner.stack or "") if owner is not None else ""


def _people(portal_dir: Path, dom) -> tuple[str, Mapping[str, tuple[str, ...]]] | None:
    """(stack, its people) of a domain whose owner metadata names a stack that published it to the host's portal;
    None otherwise."""
    stack = _owner_stack(dom)
    try:
        found = accounts.recorded(portal_dir, stack, dom.name())
    except accounts.AccountError:               # (not a name a stack's record has)
        return None
    if found is None:
        return None
    return stack, {"users": found.users, "groups": tuple(sorted({g for gs in found.groups.values() for g in gs}))}


def _size(n: int) -> str:
    for unit, factor in (("GiB", _GiB), ("MiB", _MiB)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n / _GiB:.1f} GiB" if n >= _GiB else f"{n / _MiB:.1f} MiB"


def _listed(desks: list[Running], memory: bool = False) -> str:
    return ", ".join(f"{d.name} ({_size(d.memory)})" if memory else d.name for d in desks) or "none"


def refusal(conn, lifecycle_dir: Path, name: str) -> str | None:
    """Why starting (or waking) domain `name` now goes beyond a quota of its stack; None when it may start."""
    found = records(lifecycle_dir)
    if not found:
        return None
    dom = conn.lookupByName(name)
    portal_dir = accounts.portal_dir_of(lifecycle_dir)
    mine = _people(portal_dir, dom)
    if mine is None or mine[0] not in found:
        return None
    stack, people = mine
    quotas = found[stack]
    running = []
    for other in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        if other.name() != name and (theirs := _people(portal_dir, other)) is not None:
            running.append(Running(other.name(), other.info()[1] * _KIB, theirs[1]))
    memory = dom.info()[1] * _KIB
    reasons = []
    for kind in KINDS:
        for who in people[kind]:
            limit = quotas[kind].get(who)
            if limit is None:
                continue
            owner = f"{who}'s" if kind == "users" else f"group {who}'s"
            theirs = sorted((d for d in running if who in d.people[kind]), key=lambda d: d.name)
            where = f"(quotas.{kind}.{who}"
            if limit.get("desktops") is not None and len(theirs) + 1 > limit["desktops"]:
                reasons.append(f"{owner} quota is {limit['desktops']} desktop(s) running at once "
                               f"{where}.desktops of stack {stack}), and {len(theirs)} run: {_listed(theirs)}")
            used = sum(d.memory for d in theirs)
            if limit.get("memory") is not None and used + memory > limit["memory"]:
                reasons.append(f"{owner} quota is {_size(limit['memory'])} of memory {where}.memory of stack "
                               f"{stack}); {_size(used)} runs ({_listed(theirs, memory=True)}) and {name} needs "
                               f"{_size(memory)}")
    if not reasons:
        return None
    return f"{name} is not started: " + "; ".join(reasons) + ". Stop a running desktop first."


def check(conn, lifecycle_dir: Path | None, name: str) -> None:
    """Raise QuotaExceeded when starting `name` goes beyond a quota (no lifecycle dir: a host without quotas)."""
    if lifecycle_dir is None:
        return
    why = refusal(conn, lifecycle_dir, name)
    if why is not None:
        raise QuotaExceeded(why)
