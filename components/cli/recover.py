"""Recovery after an interrupted run: clear the operations Pulumi left pending, then refresh.

A `pulumi up` that is killed (SIGKILL, power loss, a runner that times out)
leaves the operations it had in flight recorded as pending in the stack's
checkpoint. The next run must not need a person to read Pulumi's docs: this
clears them (the creation journal decides at the next create whether a
leftover object is taken over or made again), then refreshes, so the state
says what the hosts really hold. Run by tools/vdesk before up, refresh and
destroy; does nothing when the last run ended cleanly.

    python -m components.cli.recover STACK
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile


def _pulumi(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(["pulumi", *args, "--non-interactive"], check=True, capture_output=True, text=True,
                          input=stdin).stdout


def pending_operations(stack: str) -> tuple[dict, list[dict]]:
    """The stack's exported deployment and the operations a killed run left pending in it."""
    exported = json.loads(_pulumi("stack", "export", "--stack", stack) or "{}")
    return exported, list((exported.get("deployment") or {}).get("pending_operations") or [])


def describe(operation: dict) -> str:
    urn = operation.get("resource", {}).get("urn", "?")
    return f"{operation.get('type', '?')} {urn.rsplit('::', 1)[-1]}"


def recover(stack: str) -> list[str]:
    """Clear pending operations and refresh; returns what was pending (empty: nothing to do)."""
    exported, pending = pending_operations(stack)
    if not pending:
        return []
    exported["deployment"]["pending_operations"] = []
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(exported, f)
        f.flush()
        _pulumi("stack", "import", "--stack", stack, "--file", f.name, "--force")
    subprocess.run(["pulumi", "refresh", "--yes", "--skip-preview", "--non-interactive", "--stack", stack],
                   check=True, stdout=sys.stderr)
    return [describe(op) for op in pending]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    cleared = recover(argv[0])
    if cleared:
        print(f"vdesk: stack {argv[0]} was interrupted with {len(cleared)} operation(s) in flight "
              f"({'; '.join(cleared)}): cleared them and refreshed the state from the hosts", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
