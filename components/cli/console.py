"""Print a browser console link for one desktop: noVNC through the host's gateway, valid for a bounded time.

    python -m components.cli.console STACK [DESKTOP] [--valid-for 30m]
    python -m components.cli.console STACK [DESKTOP] --revoke LINK|all

The link carries a token signed with the host's key that names this desktop
and its expiry, and no display password (the gateway logs in to the display
itself). The gateway is started if it is not running.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..console import service, tokens
from ..console.resize import resize_of
from ..console.settings import DEFAULT_LINK_VALIDITY_S, MAX_LINK_VALIDITY_S, SETTINGS_FILE, ConsoleSettings
from ..errors import VdeskError
from ..names import parse_duration
from .checks import OutputsError, fetch_outputs


def _console_dir(desktop: dict) -> Path:
    console = desktop.get("console")
    if not console or not console.get("dir"):
        raise VdeskError(f"desktop {desktop.get('name')!r} has no browser console (its host is not the embedded one)")
    return Path(console["dir"])


def revoke(desktop: dict, link: str) -> str:
    """Revoke one link by its id, or (`all`) every link of this desktop made so far; says what it did."""
    tokens.revoke(_console_dir(desktop), desktop["console"]["desktop"], None if link == "all" else link)
    return "every link made so far" if link == "all" else f"link {link}"


def console_link(desktop: dict, *, valid_for_s: int | None = None) -> tuple[str, float]:
    """(URL, expiry as UNIX time) for one desktop's entry in the stack outputs."""
    console_dir = _console_dir(desktop)
    console = desktop["console"]
    try:
        spec = json.loads((console_dir / SETTINGS_FILE).read_text())
    except (OSError, ValueError):
        raise VdeskError(f"no console gateway settings in {console_dir}: bring the stack up first") from None
    settings = ConsoleSettings(**spec["settings"])
    base = service.ensure_running(console_dir, settings, libvirt_uri=spec["libvirt_uri"], netns=spec.get("netns"))
    valid_for_s = valid_for_s or console.get("link_validity_s") or DEFAULT_LINK_VALIDITY_S
    if not 0 < valid_for_s <= MAX_LINK_VALIDITY_S:
        raise VdeskError(f"a console link may be valid for 1 s to {MAX_LINK_VALIDITY_S // 86400} days")
    token, expires = tokens.mint(tokens.signing_key(console_dir), console["desktop"], valid_for_s,
                                 stack=console.get("stack") or "")
    resize = resize_of(spec["libvirt_uri"], console["desktop"])
    return tokens.console_url(base, console["desktop"], token, resize), expires


def pick(desktops: dict, name: str | None) -> tuple[str, dict]:
    if name:
        if name not in desktops:
            raise VdeskError(f"no desktop {name!r} (desktops: {', '.join(sorted(desktops)) or 'none'})")
        return name, desktops[name]
    if len(desktops) != 1:
        raise VdeskError(f"name a desktop: {', '.join(sorted(desktops)) or 'none'} (e.g. make console USER=<name>)")
    return next(iter(desktops.items()))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vdesk console", description=__doc__.splitlines()[0])
    parser.add_argument("stack")
    parser.add_argument("desktop", nargs="?", help="the desktop (user) name; optional when the stack has one")
    parser.add_argument("--valid-for", help="how long the link works, e.g. 15m or 2h (default: the host's setting)")
    parser.add_argument("--revoke", metavar="LINK|all",
                        help="revoke a link (its id: link=... in the gateway's log) or all of this desktop's links "
                             "so far")
    args = parser.parse_args(argv)
    try:
        valid_for = parse_duration(args.valid_for) if args.valid_for else None
        name, desktop = pick(fetch_outputs(args.stack).get("desktops") or {}, args.desktop)
        if args.revoke:
            print(f"desktop {name} ({desktop['name']}): revoked {revoke(desktop, args.revoke)}; open sessions end")
            return 0
        url, expires = console_link(desktop, valid_for_s=valid_for)
    except (VdeskError, OutputsError, ValueError) as exc:
        print(f"vdesk console: {exc}", file=sys.stderr)
        return 1
    print(f"desktop {name} ({desktop['name']}): browser console, valid until "
          f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(expires))}")
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
