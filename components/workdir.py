"""A per-user working copy of the project for the Pulumi CLI.

`pulumi stack init` writes a passphrase salt into the stack file and rewrites
it (dropping comments). The stack files in the repo are the team's
declaration, so the CLI runs in a mirror under the user's state dir: the
program and Pulumi.yaml are links to the clone, the stack file is the clone's
config plus this user's salt. The clone is never written to.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
_KEEP = ("encryptionsalt", "secretsprovider", "encryptedkey")  # per-user secrets settings


def sync(stack: str, state: Path) -> Path:
    work = state / "workdirs" / stack
    (work / "stacks").mkdir(parents=True, exist_ok=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        link = work / name
        if not (link.is_symlink() and os.readlink(link) == str(REPO / name)):
            link.unlink(missing_ok=True)
            link.symlink_to(REPO / name)
    declared = yaml.safe_load((REPO / "stacks" / f"Pulumi.{stack}.yaml").read_text()) or {}
    target = work / "stacks" / f"Pulumi.{stack}.yaml"
    previous = yaml.safe_load(target.read_text()) if target.exists() else {}
    merged = {k: v for k, v in (previous or {}).items() if k in _KEEP}
    merged.update({k: v for k, v in declared.items() if k not in _KEEP})
    header = f"# Generated from {REPO / 'stacks' / target.name} by vdesk; edit that file, not this one.\n"
    target.write_text(header + yaml.safe_dump(merged, sort_keys=False))
    return work


if __name__ == "__main__":
    state = Path(os.environ["VDESK_STATE"])
    sys.stdout.write(f"{sync(sys.argv[1], state)}\n")
