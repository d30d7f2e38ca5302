"""The creation journal: which libvirt objects vdesk made for which stack, written before they exist.

Pulumi records a create in its state only after the provider returns, and
only at its next checkpoint. A run killed in between leaves an object that
the state does not know, and the next run would refuse it as "already
exists" (or, worse, another tool would just leave it). So every create first
writes an entry here, "creating", and marks it "created" once the object is
complete; delete removes it. The next run trusts an entry as proof that the
object is this stack's own: a complete one is taken over, a half-made one is
removed and made again. Nothing else is ever adopted without `adopt: true`.

Entries live in $VDESK_STATE/journal/<stack>/, one small JSON file each. Objects on a libvirtd that
other runners reach too (qemu:///system, a remote host: any URI but an embedded host's private socket and
the test driver) are also recorded in the machine's owner records (/var/lib/vdesk/owners, root's, or
$VDESK_HOST_RECORDS), so a runner with another $VDESK_STATE sees them as a stack's (ownership.py). Those
records say who owns what, nothing more: taking over and reporting leftovers read this runner's own journal.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path

from ..names import name_problem
from ..paths import state_dir

log = logging.getLogger(__name__)
CREATING, CREATED = "creating", "created"


@dataclasses.dataclass(frozen=True)
class Entry:
    kind: str          # domain, network, pool, volume, seed, container
    uri: str
    name: str          # pool/volume for volumes
    state: str         # creating | created
    at: float


HOST_RECORDS = Path("/var/lib/vdesk/owners")


def root() -> Path:
    return state_dir() / "journal"


def host_root() -> Path:
    """The machine's owner records, shared by every runner on it (made root's alone)."""
    return Path(os.environ.get("VDESK_HOST_RECORDS") or HOST_RECORDS)


def _shared(uri: str) -> bool:
    """Whether other runners may reach the libvirtd: not an embedded host's own socket, not the test driver."""
    return not uri.startswith("test:") and "socket=" not in uri


def _digest(kind: str, uri: str, name: str) -> str:
    return hashlib.sha256("\0".join((kind, uri, name)).encode()).hexdigest()[:32]


def _file(owner: str, kind: str, uri: str, name: str, base: Path | None = None) -> Path:
    if name_problem(owner.replace("_", "-").lower()):
        raise ValueError(f"not a stack name: {owner!r}")
    return (base or root()) / owner / f"{kind}-{_digest(kind, uri, name)}.json"


def _host_record(owner: str, kind: str, uri: str, name: str) -> Path | None:
    if not _shared(uri) or host_root().resolve() == root().resolve():
        return None
    return _file(owner, kind, uri, name, host_root())


def note(owner: str, kind: str, uri: str, name: str, state: str) -> None:
    """Record that `owner` is making (CREATING) or has made (CREATED) this object."""
    record = json.dumps({"kind": kind, "uri": uri, "name": name, "state": state, "at": time.time()})
    _write(_file(owner, kind, uri, name), record)
    if (shared := _host_record(owner, kind, uri, name)) is not None:
        try:
            host_root().mkdir(parents=True, exist_ok=True, mode=0o700)
            _write(shared, record)
        except OSError as exc:       # (this runner's journal still says it; other runners then do not see it)
            log.warning("cannot write the machine's owner record %s: %s", shared, exc)


def _write(path: Path, record: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    tmp.write_text(record)
    os.replace(tmp, path)


def forget(owner: str, kind: str, uri: str, name: str) -> None:
    for path in (_file(owner, kind, uri, name), _host_record(owner, kind, uri, name)):
        try:
            if path is not None:
                path.unlink()
        except FileNotFoundError:
            pass


def lookup(owner: str, kind: str, uri: str, name: str) -> Entry | None:
    try:
        return Entry(**json.loads(_file(owner, kind, uri, name).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def owners(kind: str, uri: str, name: str) -> list[str]:
    """Every stack whose journal holds this object: the owner record of objects libvirt keeps no metadata on.

    Only vdesk's own create writes an entry, under the name of the stack that runs it, so no stack file can
    write one for another stack."""
    file = f"{kind}-{_digest(kind, uri, name)}.json"
    bases = [root(), *([host_root()] if _shared(uri) else [])]
    return sorted({folder.name for base in bases for folder in (base.iterdir() if base.is_dir() else ())
                   if (folder / file).is_file()})


def entries(owner: str) -> list[Entry]:
    """Everything the journal holds for a stack (what a report of leftovers starts from)."""
    folder = root() / owner
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            found.append(Entry(**json.loads(path.read_text())))
        except (ValueError, TypeError):
            continue
    return found
