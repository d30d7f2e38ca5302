"""Print how to reach each desktop of a stack, and write the files that needs.

The desktop's login key and pinned host key live in Pulumi state (encrypted);
this writes them where the printed SSH command expects them (mode 0600), so a
person can connect without ever trusting a host key on first use. It also
writes each desktop's remote-viewer file (0600), which holds its display password.

During `up` the program itself writes those files once the desktops' outputs are known
(write_when_applied), where the values are in hand already; the front door then prints from the
backend's checkpoint file (plain_outputs), so an `up` starts the engine, and derives the state's
passphrase key, once. `make access` asks the engine (`pulumi stack output --show-secrets`).
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from ..console.viewer import viewer_file, write_private
from ..paths import state_dir


def viewer_path(stack: str, desktop: str):
    """Where `make access` writes a desktop's remote-viewer file (0600: it holds the display password)."""
    return state_dir() / "viewers" / stack / f"{desktop}.vv"


def stack_outputs(stack: str) -> dict:
    out = subprocess.run(["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout or "{}")


# How Pulumi's state marks a secret value: {SECRET_SIG: SECRET_VALUE_SIG, "ciphertext": ...}.
SECRET_SIG, SECRET_VALUE_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


def plain_outputs(deployment: dict) -> dict | None:
    """The stack's outputs as a checkpoint holds them, each secret left out (None); None when there are none."""
    stack = next((r for r in deployment.get("resources") or () if r.get("type") == "pulumi:pulumi:Stack"), None)
    if stack is None or not isinstance(stack.get("outputs"), dict):
        return None

    def plain(value):
        if isinstance(value, dict):
            if value.get(SECRET_SIG) == SECRET_VALUE_SIG:
                return None
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value
    return plain(stack["outputs"])


def write_when_applied(stack: str, desktops) -> None:
    """In the program during `up`: write the access files once every desktop's outputs are known."""
    import pulumi
    if pulumi.runtime.is_dry_run():
        return
    pulumi.Output.from_input(desktops).apply(lambda known: write_access_files(stack, known or {}))


def _write_changed(path, text: str) -> None:
    """write_private, skipped when the file is already the owner's alone and holds this text (every `up`
    writes every desktop's files: a no-op then writes nothing)."""
    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid() \
                and path.read_text() == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    write_private(path, text)


def write_access_files(stack: str, desktops: dict) -> None:
    from ..desktop.seeding import key_file      # the desktop package costs most of a second to import: not to print
    for name, d in desktops.items():
        keyfile = key_file(stack, name)
        _write_changed(keyfile, d["login_private_key"])
        if d.get("ip"):
            _write_changed(keyfile.with_suffix(".known_hosts"), f"{d['ip']} {d['host_key']}\n")
        text = viewer_file(f"{name} ({d['name']})", display_uri=d.get("display_uri"), spice_uri=d.get("spice_uri"),
                           password=d.get("display_password"))
        if text:
            _write_changed(viewer_path(stack, name), text)


def _nsenter(outputs: dict, desktop: dict) -> str:
    """An address on the embedded host is inside its network namespace."""
    netns = ((outputs.get("hosts") or {}).get(desktop.get("host")) or {}).get("netns")
    return f"nsenter --net={netns} " if netns else ""


def _portal_url(console_dir: str | None) -> str | None:
    """The address of the host's portal, when it runs (beside the console gateway whose dir is given)."""
    from ..portal import service
    from ..portal.accounts import portal_dir_of
    return service.base_url(portal_dir_of(console_dir)) if console_dir else None


def _on_a_terminal() -> bool:
    return sys.stdout.isatty()


def _signin_link(portal: str, console: dict, user: str | None) -> str | None:
    """A one-time sign-in link to the portal, and what it does, for a user whose stack declares no password.
    Only to a terminal: a pipeline's log (GitOps) is read by more people than the desktop's."""
    from ..portal import onetime
    from ..portal.accounts import portal_dir_of
    portal_dir, stack, desktop = portal_dir_of(console["dir"]), console.get("stack"), console["desktop"]
    if not onetime.without_password(portal_dir, stack, desktop, user):
        return None
    if not _on_a_terminal():
        return (f"{user} has no password: `make access STACK={stack}` in a terminal prints a one-time sign-in "
                "link (never into a log)")
    link = onetime.link_for(portal_dir, portal, stack, desktop, user)
    return link and (f"{link}   (no password declared: it signs {user} in once, within "
                     f"{onetime.VALID_S // 60} minutes; make access prints a new one)")


def main(argv: list[str], outputs: dict | None = None) -> int:
    """Write the access files and print how to reach each desktop; with `outputs` (plain_outputs, after an
    `up` that wrote the files) only print."""
    stack = argv[0] if argv else "dev"
    written = outputs is not None
    outputs = outputs if written else stack_outputs(stack)
    desktops = outputs.get("desktops") or {}
    if not written:
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
                note = _signin_link(portal, d["console"], d.get("user"))
                print(f"  portal:  {portal}" + ("" if note else
                                                 f"   (sign in as {d.get('user')} with the password the stack declares)"))
                if note:
                    print(f"  sign in: {note}")
        if d.get("screenshot"):
            print(f"  screen:  {d['screenshot']}   (what it showed when it was ready)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
