"""remote-viewer connection files (.vv): a desktop's display, ready to open, password included.

remote-viewer reaches a unix socket only over SPICE (`unix-path`), so a desktop
whose displays are sockets gets a SPICE file; an address gets SPICE when the
host has it, else VNC.
"""
from __future__ import annotations

import configparser
import io
import os
import stat
import urllib.parse
from pathlib import Path


def viewer_file(title: str, *, display_uri: str | None, spice_uri: str | None, password: str | None) -> str | None:
    """The file's text, or None when remote-viewer cannot reach the display (a VNC socket without SPICE)."""
    entry: dict[str, str] = {}
    for uri in (spice_uri, display_uri):
        parsed = urllib.parse.urlsplit(uri or "")
        if parsed.scheme == "spice+unix":
            entry = {"type": "spice", "unix-path": parsed.path}
        elif parsed.scheme in ("spice", "vnc") and parsed.port:
            entry = {"type": parsed.scheme, "host": parsed.hostname, "port": str(parsed.port)}
        if entry:
            break
    if not entry:
        return None
    if password:
        entry["password"] = password
    entry.update({"title": title, "delete-this-file": "0"})
    ini = configparser.ConfigParser(interpolation=None)
    ini["virt-viewer"] = entry
    out = io.StringIO()
    ini.write(out, space_around_delimiters=False)
    return out.getvalue()


def write_private(path: Path, text: str) -> None:
    """Write text readable by its owner only (0600), also when the file existed with a wider mode. A symlink
    in its place is refused, not followed (someone who can write the folder could point it anywhere)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        os.fchmod(fd, 0o600)
        f.truncate()
        f.write(text)
