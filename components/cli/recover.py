"""Recovery after an interrupted run: drop its stale lock, clear the operations it left pending, refresh.

A `pulumi up` that is killed (SIGKILL, power loss, a runner that times out)
leaves the operations it had in flight recorded as pending in the stack's
checkpoint, and (file backends) its lock file, which refuses every later run. The next run must not need a person to read Pulumi's docs: this
clears them (the creation journal decides at the next create whether a
leftover object is taken over or made again), then refreshes, so the state
says what the hosts really hold. Run by tools/vdesk before up, refresh and
destroy; does nothing when the last run ended cleanly.

    python -m components.cli.recover STACK
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from ..processes import alive


class RecoveryError(Exception):
    """A step of the recovery failed; the message carries what Pulumi said."""


def _pulumi(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["pulumi", *args, "--non-interactive"], capture_output=True, text=True, input=stdin)
    if done.returncode:
        raise RecoveryError(f"`pulumi {' '.join(args[:2])}` failed while recovering: "
                            f"{(done.stderr or done.stdout).strip()}")
    return done.stdout


def pending_operations(stack: str) -> tuple[dict, list[dict]]:
    """The stack's exported deployment and the operations a killed run left pending in it."""
    exported = json.loads(_pulumi("stack", "export", "--stack", stack) or "{}")
    return exported, list((exported.get("deployment") or {}).get("pending_operations") or [])


def describe(operation: dict) -> str:
    urn = operation.get("resource", {}).get("urn", "?")
    return f"{operation.get('type', '?')} {urn.rsplit('::', 1)[-1]}"


def stale_locks(stack: str, project: str) -> list[dict]:
    """Pulumi's locks on the stack left by runs of this machine that are dead (file backends only: a lock
    another machine holds is never touched)."""
    url = os.environ.get("PULUMI_BACKEND_URL", "")
    if not url.startswith("file://"):
        return []
    folder = Path(url[len("file://"):]) / ".pulumi" / "locks" / "organization" / project / stack
    stale = []
    for lock in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            holder = json.loads(lock.read_text())
        except (OSError, ValueError):
            continue
        if holder.get("hostname") == socket.gethostname() and not alive(int(holder.get("pid", 0))):
            stale.append(holder)
    return stale


def _clean_checkpoint(stack: str, project: str) -> bool:
    """True when a file backend's checkpoint shows nothing in flight: no need to start the engine to ask."""
    url = os.environ.get("PULUMI_BACKEND_URL", "")
    if not url.startswith("file://"):
        return False
    stacks = Path(url[len("file://"):]) / ".pulumi" / "stacks"
    for file in (stacks / project / f"{stack}.json", stacks / f"{stack}.json"):
        if file.exists():
            try:
                latest = (json.loads(file.read_text()).get("checkpoint") or {}).get("latest") or {}
            except (OSError, ValueError):
                return False
            return not latest.get("pending_operations")
    return not (stacks / project / f"{stack}.json.gz").exists() and not (stacks / f"{stack}.json.gz").exists()


def recover(stack: str, project: str = "vdesk") -> list[str]:
    """Drop stale locks, clear pending operations and refresh; returns what was found (empty: nothing)."""
    found = []
    if locks := stale_locks(stack, project):
        _pulumi("cancel", "--yes", "--stack", stack)
        found += [f"a lock of dead pid {h.get('pid')} from {h.get('timestamp', '?')}" for h in locks]
    elif _clean_checkpoint(stack, project):
        return []                      # the usual case, read from the backend's file in a few ms
    exported, pending = pending_operations(stack)
    if not pending and not found:
        return found
    if pending:
        exported["deployment"]["pending_operations"] = []
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(exported, f)
            f.flush()
            _pulumi("stack", "import", "--stack", stack, "--file", f.name, "--force")
    # A killed run's lock, even with nothing pending: with PULUMI_SKIP_CHECKPOINTS the state is the one
    # from before that run, so it may list objects the run deleted. Refresh says what the hosts hold.
    subprocess.run(["pulumi", "refresh", "--yes", "--skip-preview", "--non-interactive", "--stack", stack],
                   check=True, stdout=sys.stderr)
    return found + [describe(op) for op in pending]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    project = (yaml.safe_load(Path("Pulumi.yaml").read_text()) or {}).get("name", "vdesk") \
        if Path("Pulumi.yaml").exists() else "vdesk"
    try:
        cleared = recover(argv[0], project)
    except RecoveryError as exc:
        print(f"vdesk: {exc}", file=sys.stderr)
        return 1
    if cleared:
        print(f"vdesk: stack {argv[0]} was interrupted: cleared {'; '.join(cleared)}, and refreshed the state "
              "from the hosts", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
