"""A person with no declared password signs in with the one-time link `up` prints, in headless Chromium.

The `dev` stack's desktop (a libvirt test-driver domain) and its record are published as `up` publishes
them; the access step prints the link as `make up` does, to a terminal. The link opens the portal signed
in, once: the same link again, and a late one, are refused. The token is in no file of the portal's, no
log line, no output, and no longer in the browser's address bar or history.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import time
from pathlib import Path

import libvirt
import pytest

from components.cli import access
from components.portal import onetime
from components.portal.serve import listen, url_of
from components.portal.settings import PortalSettings
from tests.support import portal_world as world

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver (tools/setup.sh)")]

WAIT_S = 20
SHOTS = Path("/tmp")
STACK, DESKTOP, USER = world.PASSWORDLESS


def until(condition, what: str):
    return world.until(condition, what, WAIT_S)


@pytest.fixture
def portal(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="selenium")      # the test's own driving (its URLs hold the link)
    caplog.set_level(logging.WARNING, logger="urllib3")
    caplog.set_level(logging.DEBUG)
    conn = libvirt.open(world.URI)
    config = world.build(conn, tmp_path)
    sock = listen(PortalSettings())
    with world.passwordless_desktop(conn, config), world.serving(config, sock, WAIT_S):
        yield url_of(PortalSettings(), sock), config
    world.tear_down(conn)
    conn.close()


def printed_link(config, url: str, monkeypatch, capsys) -> tuple[str, str]:
    """(link, token) as the access step after `make up` prints them for the dev stack's person."""
    monkeypatch.setattr(access, "_portal_url", lambda console_dir: url)
    monkeypatch.setattr(access, "_on_a_terminal", lambda: True)
    outputs = {"host_uri": world.URI, "desktops": {USER: {
        "name": DESKTOP, "state": "running", "ip": None, "user": USER,
        "console": {"dir": str(config.console_dir), "desktop": DESKTOP, "stack": STACK, "link_validity_s": 300}}}}
    assert access.main([STACK], outputs) == 0
    printed = capsys.readouterr().out
    link = re.search(r"  sign in: (\S+)   \(", printed).group(1)
    assert link.startswith(f"{url}/signin/link#")
    return link, link.split("#", 1)[1]


def nowhere_but_the_printed_line(token: str, config, caplog, browser) -> None:
    files = "\n".join(p.name + p.read_text(errors="replace") for p in config.portal_dir.rglob("*") if p.is_file())
    assert token not in files and token not in caplog.text
    assert token not in browser.current_url
    assert token not in str(browser.execute_script("return [location.href, history.length, document.body.innerHTML]"))


def test_the_printed_link_signs_the_person_in_once(portal, browser, monkeypatch, capsys, caplog):
    from selenium.webdriver.common.by import By
    url, config = portal
    link, token = printed_link(config, url, monkeypatch, capsys)
    browser.get(link)
    until(lambda: browser.find_elements(By.ID, f"desktop-{DESKTOP}"), "dev's desktop, signed in by the link")
    browser.save_screenshot(str(SHOTS / "vdesk-portal-link.png"))
    assert browser.find_element(By.ID, "who").text == USER
    assert [e.get_attribute("id") for e in browser.find_elements(By.CSS_SELECTOR, "li.desktop")] == [
        f"desktop-{DESKTOP}"]
    nowhere_but_the_printed_line(token, config, caplog, browser)
    browser.find_element(By.ID, "signout").click()
    until(lambda: browser.find_elements(By.ID, "signin"), "signed out")

    browser.get(link)                                                   # the same link, a second time
    until(lambda: browser.find_elements(By.ID, "refused"), "the used link refused")
    assert "used already, has expired" in browser.find_element(By.TAG_NAME, "main").text
    browser.get(url + "/")
    until(lambda: browser.find_elements(By.ID, "signin"), "still signed out")
    assert f"signin user={USER} from=127.0.0.1 result=ok desktops={DESKTOP} via=link" in caplog.text
    assert "signin via=link from=127.0.0.1 result=refused reason=an unknown or used link" in caplog.text
    nowhere_but_the_printed_line(token, config, caplog, browser)


def test_a_link_opened_too_late_is_refused(portal, browser, monkeypatch, capsys, caplog):
    from selenium.webdriver.common.by import By
    url, config = portal
    link, token = printed_link(config, url, monkeypatch, capsys)
    [kept] = (config.portal_dir / onetime.LINKS_DIR).iterdir()      # its time passes: it ended a second ago
    kept.write_text(json.dumps({**json.loads(kept.read_text()), "expires": time.time() - 1}))
    browser.get(link)
    until(lambda: browser.find_elements(By.ID, "refused"), "the late link refused")
    assert not browser.find_elements(By.ID, f"desktop-{DESKTOP}")
    assert "signin via=link from=127.0.0.1 result=refused reason=an expired link" in caplog.text
    nowhere_but_the_printed_line(token, config, caplog, browser)
