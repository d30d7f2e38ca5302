"""End to end: a graphical desktop's browser console in real headless Chromium, on the project's own host.

One desktop is brought up (one guest, shared by every test here): Xfce from
the developer recipe of the `dev` stack and examples/desktop (the same recipe,
so the cached image is reused), without autologin, its user with a password
secret. Its console link is made as `make console` makes it; Chromium opens
it, noVNC connects through the host's gateway and draws the guest's screen:
LightDM's greeter (a graphical screen, not a text console). The password
typed through the page (keyboard events into noVNC) logs the user in at the
greeter: over SSH (pinned host key) logind shows a new active x11 session of
the user, and the page then shows the Xfce desktop. A tampered link never
connects, and a session whose link expires is ended by the gateway.
"""
from __future__ import annotations

import copy
import os
import re
import secrets
import shlex
import shutil
import time
import urllib.parse
from pathlib import Path

import pytest
from pulumi import automation as auto

from components.cli.console import console_link
from components.console import service
from components.guest.checks import SESSIONS_COMMAND, parse_sessions
from components.guest.screenshot import dominant_share, measure_png
from components.guest.ssh import SshTarget, connect
from components.host import embedded
from tests.support.browser import chromium, fit_viewport
from tests.support.novnc import novnc_state, settled_graphical_screen, type_keys, wait_until, xfce_panel_drawn
from tests.support.project import isolated_env, make_project, open_stack, stack_config

pytestmark = [pytest.mark.e2e, pytest.mark.guests]
STACK = "console"
USER = "web"
KEY = "web-password"
PASSWORD = f"Pw-{secrets.token_hex(6)}"
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
        yield {"stack": stack, "state": state, "desk": desk,
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


def test_the_console_shows_the_greeter_and_a_password_typed_in_it_logs_in(world, browser, record_property):
    from selenium.webdriver.common.keys import Keys
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
    assert f"connect desktop={STACK}-{USER} from=127.0.0.1" in log
    assert parts.fragment not in log and PASSWORD not in log


def test_a_tampered_link_never_connects(world, browser):
    url, _ = console_link(world["desk"])
    tampered = url.replace("token%3D", "token%3Dx", 1)
    browser.get("about:blank")
    browser.get(tampered)
    status = wait_until(lambda: novnc_state(browser) == "disconnected" and browser.execute_script(
        "return document.getElementById('noVNC_status').textContent"), 30, "noVNC to give up")
    assert "Failed to connect" in status or "closed" in status, status
    assert f"refused desktop={STACK}-{USER} from=127.0.0.1 reason=invalid token" in gateway_log(world)


def test_the_session_ends_when_its_link_expires(world, browser):
    url, expires = console_link(world["desk"], valid_for_s=12)
    browser.get("about:blank")
    browser.get(url)
    wait_until(lambda: novnc_state(browser) == "connected", 60, "noVNC to connect")
    assert time.time() < expires
    wait_until(lambda: novnc_state(browser) == "disconnected", expires - time.time() + 10, "the session to end")
    assert time.time() <= expires + 5
    assert "reason=link expired" in gateway_log(world)
