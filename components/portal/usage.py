"""When each desktop was last used: the portal's own record of the consoles it opened (no daemon of its own).

`<portal dir>/used.json` maps "stack/desktop" to the UNIX time and the person of the last console link the
portal minted for it; written atomically (0600), by the one portal process of the host. A console opened
with `make console` is not counted: that is the administrator's, not a use of the desktop by its person.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

USED_FILE = "used.json"
_lock = threading.Lock()


def _read(portal_dir: Path) -> dict:
    try:
        data = json.loads((Path(portal_dir) / USED_FILE).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("portal: %s unreadable (%s); last-used times start again", USED_FILE, exc)
        return {}
    return data if isinstance(data, dict) else {}


def record(portal_dir: Path, stack: str, desktop: str, user: str, now: float | None = None) -> None:
    """A console of `stack`'s `desktop` was opened by `user` now."""
    with _lock:
        data = _read(portal_dir)
        data[f"{stack}/{desktop}"] = {"at": round(time.time() if now is None else now, 3), "by": user}
        path = Path(portal_dir) / USED_FILE
        tmp = path.with_name(f".{USED_FILE}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        tmp.replace(path)


def last_used(portal_dir: Path) -> dict[tuple[str, str], float]:
    """(stack, desktop) -> the UNIX time its console was last opened from the portal."""
    found = {}
    for key, entry in _read(portal_dir).items():
        stack, _, desktop = str(key).partition("/")
        try:
            found[stack, desktop] = float(entry["at"])
        except (TypeError, KeyError, ValueError):
            continue
    return found


def shown(at: float | None) -> str:
    """A last-used time as a page shows it (UTC, to the minute); "never" for a desktop not opened yet."""
    if at is None:
        return "never"
    return datetime.datetime.fromtimestamp(at, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
