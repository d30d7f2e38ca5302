"""Move a stack's state of before into the resources of now, keeping every value (no key is made again).

A desktop's login key, host key and display password were three resources; they
are one now (components.resources.credentials). Run by components/cli/run.py
before the engine opens the stack; does nothing (one read of the backend's
file) when there is nothing to move.

    python -m components.cli.migrate STACK
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

from ..resources.legacy import has_legacy_credentials

log = logging.getLogger(__name__)


def _export(stack: str) -> dict:
    """The deployment as `pulumi stack export` prints it: secrets as their ciphertext."""
    done = subprocess.run(["pulumi", "stack", "export", "--stack", stack, "--non-interactive"],
                          capture_output=True, text=True, check=True)
    return (json.loads(done.stdout or "{}").get("deployment")) or {}


def migrate(stack: str, project: str, *, write: bool = True) -> list[str]:
    """Move the stack's state over; returns the desktops moved (empty: nothing was to move, nothing written).
    With write=False (a preview, which writes nothing) only says which would move."""
    from .run import last_deployment
    deployment = last_deployment(stack, project)
    if deployment is None:                       # not a file backend: ask the engine
        deployment = _export(stack)
    if not deployment or deployment.get("pending_operations"):
        return []                                # nothing yet, or a killed run's: recovery's first
    if not has_legacy_credentials(deployment):
        return []                                # the usual case: no provider is imported to tell
    from ..resources.credentials import merge_legacy
    moved = merge_legacy(deployment)
    if moved and write:
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump({"version": 3, "deployment": deployment}, f)
            f.flush()
            subprocess.run(["pulumi", "stack", "import", "--stack", stack, "--file", f.name, "--non-interactive"],
                           check=True, stdout=subprocess.DEVNULL)
        log.info("moved the credentials of %s into one resource each", ", ".join(moved))
    return moved


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    from .run import _project
    moved = migrate(argv[0], _project(Path.cwd()))
    print(f"moved the credentials of {len(moved)} desktop(s) into one resource each" if moved else "nothing to move")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
