"""End to end: a graphical desktop's browser console in real headless Chromium, on the project's own host.

One desktop is brought up (one guest, shared by every test here): Xfce from
the developer recipe of the `dev` stack and examples/desktop (the same recipe,
so the cached image is reused), without autologin, its user with a password
secret. Its console link is made as `make console` makes it; Chromium opens
it, noVNC connects through the host's gateway and draws the guest's screen:
LightDM's greeter (a graphical screen, not a text console). The password
typed through the page (keyboard events into noVNC) logs the user in at the
greeter: over SSH (pinned host key) logind shows a new active x11 session of
the user, and the page then shows the Xfce desktop. That display, put to sleep
in the guest (`xset dpms force off`), is black to libvirt's screenshot; a fresh
console shows the desktop again (the gateway's wake key), and opening it is not
recorded as input. A tampered link never connects, and a session whose link
expires is ended by the gateway.

First, before anyone types at it, the same guest shows that passwords come from Pulumi secrets and exist
outside the config only as hashes, and that the display password and the console's signing key are nowhere
they should not be (they had a guest of their own in tests/e2e/test_secrets.py: one TCG boot less). After
`up`, the plaintext is searched for everywhere it could have leaked: the seed ISO, every domain's XML, the
exported state, every file of the test's state dir (the Pulumi backend, the embedded libvirtd's config and
logs, the pool with the guest's disks) and everything the engine printed. It must be nowhere, while the hash
is in the seed and in the guest's /etc/shadow, and logging in with the password works. A second `up`
changes nothing: the hash is stable. The display password is in libvirt's own domain definitions and the
remote-viewer file only, each 0600; the key is in its 0600 file only.
"""
from __future__ import annotations

import copy
import io
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import libvirt
import paramiko
import pytest
from pulumi import automation as auto

from components.cli.access import viewer_path, write_access_files
from components.cli.console import console_link
from components.cloudinit import verify_password
from components.console import service, tokens
from components.lifecycle import console_input
from components.guest.checks import SESSIONS_COMMAND, parse_sessions
from components.guest.screenshot import dominant_share, measure_png, png_of
from components.guest.ssh import SshTarget, connect
from components.host import embedded
from tests.support.browser import chromium, fit_viewport
from tests.support.leaks import HASH, files_containing, mode, password_login, scanned_file_count
from tests.support.novnc import novnc_state, settled_graphical_screen, type_keys, wait_until, xfce_panel_drawn
from tests.support.project import isolated_env, make_project, open_stack, stack_config
from tests.support.rfb import WebSocketTransport, handshake

pytestmark = [pytest.mark.e2e, pytest.mark.guests]
STACK = "console"
USER = "web"
KEY = "web-password"
PASSWORD = f"Pw-{secrets.token_hex(6)}"     # random: it cannot be anywhere by chance
# The developer recipe of stacks/Pulumi.dev.yaml and examples/desktop: one image (cached) serves them all.
DEVELOPER_RECIPE = {"base": "debian12", "desktop": "xfce", "packages": ["build-essential", "git", "python3-venv", "vim"],
                    "locale": "en_US.UTF-8", "keyboard": "us", "timezone": "Etc/UTC"}
IMAGE_RECIPES = [DEVELOPER_RECIPE]         # built in the background while earlier tests run (tests/support/prebuild.py)
WIDTH, HEIGHT = 1280, 800      # the desktop's resolution, and the browser's window: noVNC draws it unscaled
# Where the browser's screenshots are kept after the run, to be looked at.
KEEP_SCREENSHOTS = Path(os.environ.get("VDESK_E2E_SCREENSHOT_DIR", "/tmp"))


def console_config() -> dict:
    """The `dev` stack (Xfce, developer recipe) with one password user and no autologin: the greeter is shown."""
    cfg = copy.deepcopy(stack_config("dev"))
    cfg["vdesk:networks"]["lan"]["cidr"] = "10.86.0.0/24"
    [image] = cfg["vdesk:images"].values()
    assert image["recipe"] == DEVELOPER_RECIPE, "the dev stack's recipe changed: this test would build a new image"
    profile = cfg["vdesk:profiles"]["desktop"]
    profile.pop("home", None)           # not what this test is about: one volume less
    profile.update(autologin=False, resolution=f"{WIDTH}x{HEIGHT}",
                   checks=[{"service": "ssh"}, {"service": "lightdm"}])
    cfg["vdesk:users"] = [{"name": USER, "profile": "desktop", "password": KEY}]
    return cfg


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    state = tmp_path_factory.mktemp("vdesk-state")
    project = make_project(tmp_path_factory.mktemp("project"), STACK, console_config())
    stack = open_stack(project, STACK, isolated_env(state))
    stack.set_config(f"vdesk:{KEY}", auto.ConfigValue(PASSWORD, secret=True))
    try:
        said: list[str] = []
        started = time.monotonic()
        up = stack.up(on_output=lambda line: (said.append(line), print(line)))
        print(f"up: {time.monotonic() - started:.0f} s; "
              + (m.group(0).strip() if (m := re.search(r"image \S+: recipe [0-9a-f]{12} [a-z ,]+", "".join(said)))
                 else "no image line"))
        desk = up.outputs["desktops"].value[USER]
        netns = up.outputs["hosts"].value["local"]["netns"]
        yield {"stack": stack, "state": state, "project": project, "up": up, "said": said, "desk": desk,
               "ssh": SshTarget(host=desk["ip"], user=USER, private_key=desk["login_private_key"],
                                host_public_key=desk["host_key"], netns=netns)}
    finally:
        try:
            stack.destroy(on_output=print)
        finally:
            embedded.stop(embedded.embedded_host("local", state_root=state), purge=True)


@pytest.fixture(scope="module")
def browser():
    with chromium(WIDTH, HEIGHT) as driver:
        fit_viewport(driver, WIDTH, HEIGHT)       # the desktop's resolution: noVNC draws it 1:1
        yield driver


def keep_screenshot(driver, world, name: str) -> Path:
    """The browser's page (noVNC and its control bar handle) as PNG, in the test's state and KEEP_SCREENSHOTS."""
    shot = world["state"] / "screenshots" / name
    shot.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(shot))
    shutil.copy(shot, KEEP_SCREENSHOTS / f"vdesk-{name}")
    return shot


def gateway_log(world) -> str:
    return (world["state"] / "hosts" / "local" / "console" / service.LOG_FILE).read_text()


def run(world, command: str) -> str:
    with connect(world["ssh"], timeout_s=60) as session:
        return session.run(command).stdout


# The X clients the window manager has mapped, by WM_CLASS instance (libX11 through ctypes: the image has no
# xprop), on the user's display. Run over SSH as the user.
X_CLIENTS = r"""
import ctypes, sys
x = ctypes.CDLL("libX11.so.6")
x.XOpenDisplay.restype, x.XOpenDisplay.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
x.XDefaultRootWindow.restype, x.XDefaultRootWindow.argtypes = ctypes.c_ulong, [ctypes.c_void_p]
x.XInternAtom.restype, x.XInternAtom.argtypes = ctypes.c_ulong, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
ul = ctypes.c_ulong
x.XGetWindowProperty.argtypes = [ctypes.c_void_p, ul, ul, ctypes.c_long, ctypes.c_long, ctypes.c_int, ul,
    ctypes.POINTER(ul), ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ul), ctypes.POINTER(ul),
    ctypes.POINTER(ctypes.c_void_p)]
d = x.XOpenDisplay(b":0") or sys.exit("cannot open display :0")
def prop(window, name, kind):
    t, f, n, rest, data = ul(), ctypes.c_int(), ul(), ul(), ctypes.c_void_p()
    x.XGetWindowProperty(d, window, x.XInternAtom(d, name, 0), 0, 65536, 0, kind, ctypes.byref(t),
                         ctypes.byref(f), ctypes.byref(n), ctypes.byref(rest), ctypes.byref(data))
    return n.value, data
n, data = prop(x.XDefaultRootWindow(d), b"_NET_CLIENT_LIST", 33)
for window in (ctypes.cast(data, ctypes.POINTER(ul))[:n] if n else []):
    size, name = prop(window, b"WM_CLASS", 31)
    print(ctypes.string_at(name, size).split(b"\0")[0].decode() if size else "?")
"""


def x_clients(world) -> list[str]:
    return run(world, f"python3 -c {shlex.quote(X_CLIENTS)}").split()


def sessions(world):
    """logind's sessions on the guest, read over SSH."""
    return parse_sessions(run(world, SESSIONS_COMMAND))


# --- passwords and display secrets: on the guest as `up` left it, before anyone types at it -------------------


def test_a_password_exists_only_as_a_hash(world):
    stack: auto.Stack = world["stack"]
    state, project, up = world["state"], world["project"], world["up"]
    printed: list[str] = world["said"]         # everything the engine printed, from the world's `up` on
    needle = PASSWORD.encode()

    # The stack file holds the secret encrypted.
    assert "secure:" in (project / "stacks" / f"Pulumi.{STACK}.yaml").read_text()
    assert up.summary.result == "succeeded"
    desk = up.outputs["desktops"].value[USER]
    netns = up.outputs["hosts"].value["local"]["netns"]
    host_uri = up.outputs["host_uri"].value
    assert desk["state"] == "running" and desk["user"] == USER

    # Up again: the same hash, so the seed (and everything else) is unchanged.
    stack.preview(on_output=printed.append)
    again = stack.up(on_output=printed.append)
    assert {k: v for k, v in again.summary.resource_changes.items() if k != "same"} == {}

    # The seed volume holds the hash, never the password.
    conn = libvirt.open(host_uri)
    try:
        seed_path = conn.storagePoolLookupByName(f"{STACK}-main").storageVolLookupByName(
            f"{STACK}-{USER}-seed.iso").path()
        domain_xml = [d.XMLDesc(flags) for d in conn.listAllDomains(0)
                      for flags in (0, libvirt.VIR_DOMAIN_XML_SECURE, libvirt.VIR_DOMAIN_XML_INACTIVE)]
    finally:
        conn.close()
    seed = Path(seed_path).read_bytes()
    hashes = set(HASH.findall(seed))
    assert len(hashes) == 1, hashes
    crypt_hash = hashes.pop().decode()
    assert verify_password(PASSWORD, crypt_hash)
    assert needle not in seed

    # Nor is the password in any domain XML, the exported state, any file, or anything printed.
    assert domain_xml and not [x for x in domain_xml if PASSWORD in x]
    exported = json.dumps(stack.export_stack().deployment)
    assert f"{STACK}-{USER}-seed.iso" in exported and PASSWORD not in exported
    assert scanned_file_count(state / "backend") > 0 and scanned_file_count(state / "hosts") > 5
    console_logs = list((state / "hosts").rglob(f"log/qemu/{STACK}-{USER}-console.log"))   # its boot, as printed
    assert console_logs and b"Cloud-init v." in console_logs[0].read_bytes(), console_logs
    assert files_containing(state, needle) == []
    assert seed_path in files_containing(state, crypt_hash.encode())   # the scan does find what is there
    assert files_containing(project, needle) == []
    output = "".join(printed)
    assert "Resources:" in output and PASSWORD not in output

    # In the guest: /etc/shadow holds that very hash, and the password logs in (over SSH, host key pinned).
    target = SshTarget(host=desk["ip"], user=USER, private_key=desk["login_private_key"],
                       host_public_key=desk["host_key"], netns=netns)
    with connect(target, timeout_s=60) as session:
        shadow = session.run(["sudo", "-n", "getent", "shadow", USER]).check().stdout.strip()
    assert shadow.split(":")[1] == crypt_hash
    assert password_login(desk["ip"], netns, desk["host_key"], USER, PASSWORD) == USER
    with pytest.raises(paramiko.AuthenticationException):
        password_login(desk["ip"], netns, desk["host_key"], USER, PASSWORD + "x")


def test_the_display_password_and_the_signing_key_are_nowhere_they_should_not_be(world, monkeypatch):
    import websocket
    stack: auto.Stack = world["stack"]
    state, up = world["state"], world["up"]
    desk = up.outputs["desktops"].value[USER]
    host_uri = up.outputs["host_uri"].value
    display_password = desk["display_password"]
    console_dir = state / "hosts" / "local" / "console"
    key = tokens.signing_key(console_dir)
    assert display_password and len(display_password) == 8 and mode(console_dir / tokens.KEY_FILE) == 0o600

    # Use everything once, so the logs have something to say: make access's viewer file, a console
    # session through the gateway (which authenticates with the display password), and a refused link.
    monkeypatch.setenv("VDESK_STATE", str(state))
    write_access_files(STACK, up.outputs["desktops"].value)
    viewer = viewer_path(STACK, USER)
    assert mode(viewer) == 0o600 and f"password={display_password}" in viewer.read_text()
    url, _ = console_link(desk)
    fragment = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).fragment))
    ws_base = url.split("/vnc.html")[0].replace("http", "ws", 1)
    ws = websocket.create_connection(f"{ws_base}/{fragment['path']}", subprotocols=["binary"], timeout=30)
    try:
        assert "password" not in fragment                     # the gateway logs in to the display itself
        assert handshake(WebSocketTransport(ws), None)[2] == f"QEMU ({desk['name']})"
    finally:
        ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(f"{ws_base}/{fragment['path']}x", timeout=30)
    token = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(fragment["path"]).query))["token"]

    needles = {"display password": display_password.encode(), "signing key": key,
               "signing key (hex)": key.hex().encode(), "console token": token.encode()}
    # The state export and the outputs (as `pulumi` prints them without --show-secrets: the Automation
    # API's export_stack asks for them decrypted), `virsh dumpxml` (without --security-info).
    cli_env = {**{k: v for k, v in os.environ.items() if k != "PULUMI_CONFIG_PASSPHRASE_FILE"}, **isolated_env(state)}

    def pulumi(*args: str) -> str:
        return subprocess.run(["pulumi", *args, "--stack", STACK], cwd=world["project"], env=cli_env, check=True,
                              capture_output=True, text=True).stdout

    exported = pulumi("stack", "export")
    assert '"display_password"' in exported and f"{STACK}-{USER}" in exported
    outputs = pulumi("stack", "output", "--json")
    virsh = ["virsh", "-c", host_uri, "dumpxml", desk["name"]]
    dumped = subprocess.run(virsh, check=True, capture_output=True, text=True).stdout + subprocess.run(
        virsh + ["--inactive"], check=True, capture_output=True, text=True).stdout
    assert "<graphics type='vnc'" in dumped and "<graphics type='spice'" in dumped
    logs = sorted(p for p in (state / "hosts" / "local" / "log").rglob("*") if p.is_file())
    logs.append(console_dir / service.LOG_FILE)
    assert f"connect desktop={STACK}-{USER}" in (console_dir / service.LOG_FILE).read_text()
    for what, needle in needles.items():
        text = needle.decode(errors="replace")
        assert text not in exported and text not in dumped and text not in outputs, what
        assert text not in "".join(world["said"]), what
        assert [str(p) for p in logs if needle in p.read_bytes()] == [], what

    # Files: the password only where libvirt keeps its domain (its config and its runtime status) and in
    # the viewer file; the key only in its own file. Each of them readable by root alone.
    holding = {Path(p) for p in files_containing(state, display_password.encode())}
    assert holding == {viewer, state / "hosts" / "local" / "etc" / "qemu" / f"{desk['name']}.xml",
                       state / "hosts" / "local" / "run" / "libvirt" / "qemu" / f"{desk['name']}.xml"}, holding
    assert {p: mode(p) for p in holding} == dict.fromkeys(holding, 0o600)
    assert files_containing(state, key) == [str(console_dir / tokens.KEY_FILE)]
    assert files_containing(state, token.encode()) == []


# --- the browser console -----------------------------------------------------------------------------------


def test_the_console_shows_the_greeter_and_a_password_typed_in_it_logs_in(world, browser, record_property):
    from selenium.webdriver.common.keys import Keys
    said_before = len(gateway_log(world))       # (the search above connected once)
    url, expires = console_link(world["desk"])
    parts = urllib.parse.urlsplit(url)
    assert parts.scheme == "http" and parts.hostname == "127.0.0.1" and expires > time.time() + 3000
    assert world["desk"]["display_password"] not in urllib.parse.unquote(url)   # the gateway logs in itself
    assert "password" not in dict(urllib.parse.parse_qsl(parts.fragment))

    # LightDM's greeter is in the foreground, and nobody is logged in to a graphical session.
    now = sessions(world)
    assert any(s.session_class == "greeter" and s.active for s in now), [s.describe() for s in now]
    assert not [s for s in now if s.user == USER and s.graphical], [s.describe() for s in now]

    browser.get(url)
    wait_until(lambda: novnc_state(browser) == "connected", 60, "noVNC to connect")
    greeter = settled_graphical_screen(browser, 120, "the greeter drawn on the canvas")
    width, height, colours = measure_png(greeter)
    share = dominant_share(greeter)
    shot = keep_screenshot(browser, world, "console.png")
    record_property("console_screenshot", str(shot))
    print(f"greeter through the browser: canvas {width}x{height}, {colours} colours, {share:.0%} one colour; {shot}")
    assert width >= 1024 and height >= 640

    # The password typed through the page at the greeter. The greeter may take its first keys before its
    # password field does: type (replacing what the field holds) until a session starts, at most 3 times.
    def user_sessions():
        return [s for s in sessions(world) if s.user == USER and s.graphical and s.active]
    for attempt in range(1, 4):
        type_keys(browser, PASSWORD + Keys.ENTER, select_all=True)
        if found := wait_until(user_sessions, 60, "", poll_s=3, fail=False):
            break
    else:
        pytest.fail(f"no graphical session of {USER} after typing the password 3 times at the greeter")
    [session] = found
    record_property("greeter_attempts", attempt)
    assert session.type == "x11" and session.seat == "seat0", session.describe()
    print(f"logged in through the page (typed {attempt} time(s)): {session.describe()}")

    # Xfce's window manager has mapped its panel, and the page shows the desktop once it stops changing.
    clients = wait_until(lambda: "xfce4-panel" in (found := x_clients(world)) and found, 300,
                         "Xfce's panel window", poll_s=3)
    print(f"X clients of the session: {' '.join(clients)}")
    desktop = settled_graphical_screen(browser, 300, "the Xfce desktop, its panel painted, on the canvas",
                                       unlike=greeter, alike=3, shows=xfce_panel_drawn)
    shot = keep_screenshot(browser, world, "console-desktop.png")
    record_property("console_desktop_screenshot", str(shot))
    width, height, colours = measure_png(desktop)
    print(f"Xfce through the browser: canvas {width}x{height}, {colours} colours, {dominant_share(desktop):.0%} one "
          f"colour; {shot}")

    log = gateway_log(world)
    assert f"connect desktop={STACK}-{USER} from=127.0.0.1" in log[said_before:]
    assert parts.fragment not in log and PASSWORD not in log


def _black_share(png: bytes) -> float:
    """The share of the picture that is black or nearly (QEMU's "Display output is not active" is black)."""
    from PIL import Image
    image = Image.open(io.BytesIO(png)).convert("L")
    return sum(image.histogram()[:16]) / (image.width * image.height)


def test_a_console_opened_on_a_blanked_display_shows_the_desktop(world, browser):
    """The user's Xfce session (logged in by the greeter test above) with its display put to sleep in the guest,
    as a person can: libvirt's screenshot turns black; a console opened then shows the desktop, and is not
    recorded as input."""
    name = world["desk"]["name"]
    assert [s for s in sessions(world) if s.user == USER and s.graphical and s.active], \
        "no graphical session of the user: this test runs after the greeter test, which logs in"
    # The kernel console has no blank timer (the default since Linux 3.x is 0): only a person blanks a display.
    assert run(world, "cat /sys/module/kernel/parameters/consoleblank").strip() == "0"
    browser.get("about:blank")                      # no console open: nothing wakes the display meanwhile
    activity = console_input.activity_file(world["state"] / "hosts" / "local" / "lifecycle", name)
    recorded = activity.stat().st_mtime if activity.exists() else None    # (the greeter test typed)

    x_env = "DISPLAY=:0 XAUTHORITY=$HOME/.Xauthority"
    run(world, f"{x_env} xset dpms force off")
    conn = libvirt.open(embedded.embedded_host("local", state_root=world["state"]).uri)
    try:
        dark = wait_until(lambda: png if _black_share(png := png_of(conn, name)) >= 0.95 else None, 60,
                          "the guest's display to go black after `xset dpms force off`", poll_s=1)
        shot = world["state"] / "screenshots" / "blanked.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        shot.write_bytes(dark)
        shutil.copy(shot, KEEP_SCREENSHOTS / "vdesk-blanked.png")
        idle_before = run(world, f"{x_env} xprintidle 2>/dev/null || echo none").strip()
        print(f"blanked: {_black_share(dark):.1%} of libvirt's screenshot black; X idle {idle_before} ms; {shot}")

        url, _ = console_link(world["desk"])
        opened = time.monotonic()
        browser.get(url)
        wait_until(lambda: novnc_state(browser) == "connected", 60, "noVNC to connect")
        desktop = settled_graphical_screen(browser, 60, "the Xfce desktop on a console opened on a blanked display",
                                           shows=xfce_panel_drawn)
        shown_after = time.monotonic() - opened
        shot = keep_screenshot(browser, world, "console-unblanked.png")
        awake = png_of(conn, name)
    finally:
        conn.close()
    idle_after = run(world, f"{x_env} xprintidle 2>/dev/null || echo none").strip()
    print(f"a console on the blanked display showed the desktop {shown_after:.1f} s after it was opened: canvas "
          f"{dominant_share(desktop):.0%} one colour, libvirt's screenshot {_black_share(awake):.1%} black; "
          f"X idle {idle_after} ms (X counts the wake key); {shot}")
    assert _black_share(awake) < 0.5
    assert (activity.stat().st_mtime if activity.exists() else None) == recorded   # the wake key is not input


def test_a_tampered_link_never_connects(world, browser):
    said_before = len(gateway_log(world))       # (the search above was refused once)
    url, _ = console_link(world["desk"])
    tampered = url.replace("token%3D", "token%3Dx", 1)
    browser.get("about:blank")
    browser.get(tampered)
    status = wait_until(lambda: novnc_state(browser) == "disconnected" and browser.execute_script(
        "return document.getElementById('noVNC_status').textContent"), 30, "noVNC to give up")
    assert "Failed to connect" in status or "closed" in status, status
    assert f"refused desktop={STACK}-{USER} from=127.0.0.1 reason=invalid token" in gateway_log(world)[said_before:]


def test_the_session_ends_when_its_link_expires(world, browser):
    url, expires = console_link(world["desk"], valid_for_s=12)
    browser.get("about:blank")
    browser.get(url)
    wait_until(lambda: novnc_state(browser) == "connected", 60, "noVNC to connect")
    assert time.time() < expires
    wait_until(lambda: novnc_state(browser) == "disconnected", expires - time.time() + 10, "the session to end")
    assert time.time() <= expires + 5
    assert "reason=link expired" in gateway_log(world)
