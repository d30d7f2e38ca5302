"""The portal in headless Chromium: ada signs in, sees only hers, is refused grace's, stops and starts hers.

Tier 2 for the browser it starts (seconds), not for libvirtd: the desktops are libvirt test-driver
domains in this process, served by the portal under uvicorn on loopback. No guest boots.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import libvirt
import pytest

from components.cloudinit.passwords import MIN_ROUNDS, hash_password
from components.portal.admins import Admins
from components.portal.serve import listen, url_of
from components.portal.settings import PortalSettings
from tests.support import portal_world as world

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver (tools/setup.sh)")]

KEEP_SCREENSHOTS = Path(os.environ.get("VDESK_E2E_SCREENSHOT_DIR", "/tmp"))
WAIT_S = 20


def until(condition, what: str, timeout_s: float = WAIT_S):
    return world.until(condition, what, timeout_s)


ADMIN, ADMIN_PASSWORD = "hostadmin", "the-admins-own-pw"


@pytest.fixture
def portal(tmp_path, monkeypatch):
    conn = libvirt.open(world.URI)           # the test driver's state lives while a connection is open
    admins = Admins(hashes=((ADMIN, hash_password(ADMIN_PASSWORD, rounds=MIN_ROUNDS)),))
    config = world.build(conn, tmp_path, PortalSettings(admins=admins))
    world.believe_the_gateway(monkeypatch, config)        # a console link is minted, never opened, here
    sock = listen(config.settings)
    with world.serving(config, sock, WAIT_S):
        yield url_of(config.settings, sock), conn
    world.tear_down(conn)
    conn.close()


def state_of(driver, desktop: str) -> str:
    """Its shown state; "" while the page is being drawn again (the element found a moment ago is gone), so a
    poll asks once more instead of failing on the redraw."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    try:
        return driver.find_element(By.ID, f"desktop-{desktop}").get_attribute("data-state")
    except (StaleElementReferenceException, NoSuchElementException):
        return ""


def test_ada_signs_in_sees_only_hers_stops_and_starts_it_and_signs_out(portal, browser):
    from selenium.webdriver.common.by import By
    url, conn = portal
    world.sign_in(browser, url, "ada", world.PASSWORDS["team", "ada"])
    until(lambda: browser.find_elements(By.ID, "desktop-team-ada"), "ada's desktop listed")
    assert browser.find_element(By.ID, "who").text == "ada"
    assert [e.get_attribute("id") for e in browser.find_elements(By.CSS_SELECTOR, "li.desktop")] == [
        "desktop-team-ada"]
    until(lambda: browser.execute_script(
        "const i = document.querySelector('#desktop-team-ada img'); return i && i.complete && i.naturalWidth"),
        "the thumbnail of ada's screen loaded")
    shot = KEEP_SCREENSHOTS / "vdesk-portal-ada.png"
    browser.save_screenshot(str(shot))

    browser.get(url + "/desktops/team-grace")
    until(lambda: browser.find_elements(By.ID, "refused"), "a refusal for grace's desktop")
    assert "team-grace" not in browser.find_element(By.TAG_NAME, "main").text
    browser.save_screenshot(str(KEEP_SCREENSHOTS / "vdesk-portal-refused.png"))

    browser.get(url + "/")
    browser.find_element(By.CSS_SELECTOR, "#desktop-team-ada button.stop").click()
    until(lambda: browser.find_elements(By.ID, "message") and state_of(browser, "team-ada") == "stopped",
          "ada's desktop shown stopped")
    assert not conn.lookupByName("team-ada").isActive()
    browser.find_element(By.CSS_SELECTOR, "#desktop-team-ada button.start").click()
    until(lambda: state_of(browser, "team-ada") == "running", "ada's desktop shown running")
    assert conn.lookupByName("team-ada").isActive()
    assert conn.lookupByName("team-grace").isActive()

    browser.find_element(By.ID, "signout").click()
    until(lambda: browser.find_elements(By.ID, "signin"), "the sign-in page after signing out")
    browser.get(url + "/")
    assert browser.find_elements(By.ID, "signin") and not browser.find_elements(By.ID, "desktop-team-ada")


def test_the_administrator_sees_every_desktop_and_ends_adas_sessions(portal, browser):
    """ada signs in (an HTTP client of her own) and is given a console link; the host's administrator, in
    Chromium, sees every desktop (when each was last used) and ada among those signed in, ends her sessions,
    and ada's next request is sent to sign in."""
    import re
    import httpx
    from selenium.webdriver.common.by import By
    url, _conn = portal
    with httpx.Client(base_url=url) as ada:
        csrf = re.search(r'name="csrf" value="([^"]+)"', ada.get("/signin").text).group(1)
        signed = ada.post("/signin", data={"user": "ada", "password": world.PASSWORDS["team", "ada"], "csrf": csrf})
        assert signed.status_code == 303 and ada.get("/").status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', ada.get("/").text).group(1)
        assert ada.post("/desktops/team-ada/open", data={"csrf": csrf}).status_code == 303   # her console link

        world.sign_in(browser, url, ADMIN, ADMIN_PASSWORD, path="/signin")
        until(lambda: browser.find_elements(By.ID, "administration"), "the administration link")
        assert browser.find_elements(By.ID, "none")          # no desktop is the administrator's own
        browser.find_element(By.ID, "administration").click()
        until(lambda: browser.find_elements(By.ID, "sessions"), "the administration page")
        assert [e.get_attribute("id") for e in browser.find_elements(By.CSS_SELECTOR, "#all-desktops tr[id]")] == [
            f"all-{name}" for name in sorted(world.DESKTOPS)]
        used = {name: browser.find_element(By.CSS_SELECTOR, f"#all-{name} .last-used").text
                for name in world.DESKTOPS}
        assert used["team-grace"] == used["lab-ada"] == "never" and used["team-ada"].endswith(" UTC"), used
        assert browser.find_element(By.CSS_SELECTOR, 'tr.session[data-user="ada"] .consoles').text.startswith(
            "team-ada at ")
        rows = browser.find_elements(By.CSS_SELECTOR, "tr.session")
        assert sorted(r.get_attribute("data-user") for r in rows) == sorted(["ada", ADMIN])
        browser.save_screenshot(str(KEEP_SCREENSHOTS / "vdesk-portal-admin.png"))
        browser.find_element(By.CSS_SELECTOR, 'tr.session[data-user="ada"] button.end').click()
        until(lambda: browser.find_elements(By.ID, "message"), "the page saying ada's sessions ended")
        assert browser.find_element(By.ID, "message").text == "Ended the sessions of ada."
        assert not browser.find_elements(By.CSS_SELECTOR, 'tr.session[data-user="ada"]')
        gone = ada.get("/")
        assert gone.status_code == 303 and gone.headers["location"] == "/signin"
