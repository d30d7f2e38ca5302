"""The engine's plugin question, answered from this Python's own package metadata.

Before every preview and up, Pulumi's Python language host runs `python -m pip list -v --format json`
to find the installed Pulumi packages whose provider plugins it should load. pip's command line and its
scan of the virtualenv cost 0.8 s of each run (more than the engine's own start), for an answer that
importlib.metadata gives in a few milliseconds: the same distributions, as pip lists them (the first of
a name on sys.path; name, version, location, installer). tools/python runs this for that one command
line and the virtualenv's Python for everything else.

    python -m components.cli.installed
"""
from __future__ import annotations

import json
import re
import sys
from importlib import metadata


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed() -> list[dict]:
    """Every distribution on sys.path, the first of each name, in the order of their canonical names (as pip lists them)."""
    seen: dict[str, dict] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or _canonical(name) in seen:
            continue
        seen[_canonical(name)] = {"name": name, "version": dist.version,
                                  "location": str(dist.locate_file("")).rstrip("/"),
                                  "installer": (dist.read_text("INSTALLER") or "").strip()}
    return [seen[key] for key in sorted(seen)]


def main() -> int:
    json.dump(installed(), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
