"""End to end: a desktop's browser console in real headless Chromium, on the project's own host.

One desktop with a password user is brought up (one guest, shared by every
test here). Its console link is made as `make console` makes it; Chromium
opens it, noVNC connects through the host's gateway and draws the guest's
screen (its tty1 login prompt). Typing through the page logs the user in at
tty1 and runs a command, which is verified over SSH. A tampered link never
connects, and a session whose link expires is ended by the gateway.
"""
from __future__ import annotations

import copy
import io
import secrets
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest
from PIL import Image
from pulumi import automation as auto

from components.cli.console import console_link
from components.console import service
from components.guest.ssh import SshTarget, connect
from components.host import embedded
from tests.support.project import isolated_env, make_project, open_stack, stack_config

pytestmark = pytest.mark.e2e
STACK = "console"
USER = "web"
KEY = "web-password"
PASSWORD = f"Pw-{secrets.token_hex(6)}"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1024,768")


def console_config() -> dict:
    cfg = copy.deepcopy(stack_config("ci"))
    cfg["vdesk:networks"]["lan"]["cidr"] = "10.86.0.0/24"
    desk = cfg["vdesk:desktops"].pop("ci")
    desk.update(users=[{"name": USER, "password": KEY}], checks=[{"service": "ssh"}])
    cfg["vdesk:desktops"][USER] = desk
    return cfg


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    state = tmp_path_factory.mktemp("vdesk-state")
    project = make_project(tmp_path_factory.mktemp("project"), STACK, console_config())
    stack = open_stack(project, STACK, isolated_env(state))
    stack.set_config(f"vdesk:{KEY}", auto.ConfigValue(PASSWORD, secret=True))
    try:
        up = stack.up(on_output=print)
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
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.TemporaryDirectory(prefix="vdesk-chromium-")
    options.add_argument(f"--user-data-dir={profile.name}")
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    yield driver
    driver.quit()
    profile.cleanup()


def wait_until(condition, timeout_s: float, what: str, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g}s waiting for {what}"
        time.sleep(poll_s)
    return result


def novnc_state(driver) -> str:
    classes = driver.execute_script("return document.documentElement.className")
    return next((c.removeprefix("noVNC_") for c in classes.split() if c in (
        "noVNC_connecting", "noVNC_connected", "noVNC_disconnecting", "noVNC_reconnecting")), "disconnected")


def canvas_image(driver) -> Image.Image:
    from selenium.webdriver.common.by import By
    canvas = driver.find_element(By.CSS_SELECTOR, "#noVNC_container canvas")
    return Image.open(io.BytesIO(canvas.screenshot_as_png)).convert("RGB")


def gateway_log(world) -> str:
    return (world["state"] / "hosts" / "local" / "console" / service.LOG_FILE).read_text()


def run(world, command: str) -> str:
    with connect(world["ssh"], timeout_s=60) as session:
        return session.run(command).stdout


_SHIFTED = dict(zip('~!@#$%^&*()_+{}|:"<>?', "`1234567890-=[]\\;',./"))


def type_keys(driver, text: str) -> None:
    """Type as a person on a US keyboard does: Shift held for capitals and shifted symbols.

    ChromeDriver's plain send_keys makes '>' without pressing Shift; qemu turns the keysym into a
    scancode and the guest (US layout) sees '<'. A real keyboard presses Shift, and so does this.
    """
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    canvas = driver.find_element(By.CSS_SELECTOR, "#noVNC_container canvas")
    actions = ActionChains(driver).click(canvas)
    for char in text:
        base = _SHIFTED.get(char) or (char.lower() if char.isupper() else None)
        if base:
            actions.key_down(Keys.SHIFT).send_keys(base).key_up(Keys.SHIFT)
        else:
            actions.send_keys(char)
    actions.perform()


def test_the_console_shows_the_desktop_and_what_is_typed_reaches_it(world, browser, record_property):
    from selenium.webdriver.common.keys import Keys
    url, expires = console_link(world["desk"])
    parts = urllib.parse.urlsplit(url)
    assert parts.scheme == "http" and parts.hostname == "127.0.0.1" and expires > time.time() + 3000
    assert world["desk"]["display_password"] in urllib.parse.unquote(parts.fragment)   # in the fragment only
    assert world["desk"]["display_password"] not in parts.path + parts.query

    browser.get(url)
    wait_until(lambda: novnc_state(browser) == "connected", 60, "noVNC to connect")
    # The guest's screen (tty1's login prompt) is drawn: many colours, not one blank fill.
    shot = wait_until(lambda: (img := canvas_image(browser)) and len(img.getcolors(1 << 16) or [1] * 99) > 1
                      and img, 60, "the guest's screen on the canvas")
    assert shot.width >= 640 and shot.height >= 400
    screenshot = world["state"] / "screenshots" / "console.png"
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(screenshot))
    record_property("console_screenshot", str(screenshot))

    # Log in at tty1 through the page; login turns echo off for the password prompt.
    type_keys(browser, USER + Keys.ENTER)
    wait_until(lambda: " -echo " in run(world, "sudo -n stty -F /dev/tty1 -a"), 60, "tty1's password prompt")
    type_keys(browser, PASSWORD + Keys.ENTER)
    wait_until(lambda: "tty1" in run(world, f"who | grep '^{USER} '"), 60, f"{USER} to be logged in on tty1")
    # Then its shell: what is typed before it reads the terminal may be flushed by the login session.
    wait_until(lambda: run(world, "ps -o comm= -t tty1").split()[-1:] in (["bash"], ["sh"], ["dash"]), 60,
               "the login shell on tty1")
    typed = f"Typed_Through-noVNC.{secrets.token_hex(4)}"
    type_keys(browser, f"echo {typed} > /tmp/console-typed" + Keys.ENTER)
    try:
        wait_until(lambda: run(world, "cat /tmp/console-typed 2>/dev/null").strip() == typed, 60,
                   "the typed command's file")
    finally:
        browser.save_screenshot(str(screenshot.with_name("console-typed.png")))
    assert run(world, "stat -c %U /tmp/console-typed").strip() == USER

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
