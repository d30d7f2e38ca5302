"""Print how to reach each desktop of a stack, and write the files that needs.

The desktop's login key and pinned host key live in Pulumi state (encrypted);
this writes them where the printed SSH command expects them (mode 0600), so a
person can connect without ever trusting a host key on first use. It also
writes each desktop's remote-viewer file (0600), which holds its display password.
"""
from __future__ import annotations

import json
import subprocess
import sys

from ..console.viewer import viewer_file, write_private
from ..desktop.component import key_file, state_dir


def viewer_path(stack: str, desktop: str):
    """Where `make access` writes a desktop's remote-viewer file (0600: it holds the display password)."""
    return state_dir() / "viewers" / stack / f"{desktop}.vv"


def stack_outputs(stack: str) -> dict:
    out = subprocess.run(["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout or "{}")


def write_access_files(stack: str, desktops: dict) -> None:
    for name, d in desktops.items():
        keyfile = key_file(stack, name)
        write_private(keyfile, d["login_private_key"])
        if d.get("ip"):
            write_private(keyfile.with_suffix(".known_hosts"), f"{d['ip']} {d['host_key']}\n")
        text = viewer_file(f"{name} ({d['name']})", display_uri=d.get("display_uri"), spice_uri=d.get("spice_uri"),
                           password=d.get("display_password"))
        if text:
            write_private(viewer_path(stack, name), text)


def _nsenter(outputs: dict, desktop: dict) -> str:
    """An address on the embedded host is inside its network namespace."""
    netns = ((outputs.get("hosts") or {}).get(desktop.get("host")) or {}).get("netns")
    return f"nsenter --net={netns} " if netns else ""


def _portal_url(console_dir: str | None) -> str | None:
    """The address of the host's portal, when it runs (beside the console gateway whose dir is given)."""
    from ..portal import service
    from ..portal.accounts import portal_dir_of
    return service.base_url(portal_dir_of(console_dir)) if console_dir else None


def main(argv: list[str]) -> int:
    stack = argv[0] if argv else "dev"
    outputs = stack_outputs(stack)
    desktops = outputs.get("desktops") or {}
    write_access_files(stack, desktops)
    print(f"stack {stack}: host {outputs.get('host_uri')}")
    print(f"  virsh -c '{outputs.get('host_uri')}' list --all")
    for name, d in desktops.items():
        print(f"desktop {name} ({d['name']}): {d.get('state')}, ip {d.get('ip')}")
        print(f"  ssh:     {d.get('ssh_command')}")
        print(f"  display: {d.get('display_uri')}")
        if viewer_path(stack, name).exists():
            via = "" if (d.get("display_uri") or "").startswith("vnc+unix") else _nsenter(outputs, d)
            print(f"  viewer:  {via}remote-viewer {viewer_path(stack, name)}")
        if d.get("console"):
            print(f"  browser: make console STACK={stack} USER={name}   (prints a link that expires)")
            if portal := _portal_url(d["console"]["dir"]):
                print(f"  portal:  {portal}   (sign in as {d.get('user')} with the password the stack declares)")
        if d.get("screenshot"):
            print(f"  screen:  {d['screenshot']}   (what it showed when it was ready)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
