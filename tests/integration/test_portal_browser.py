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

from components.portal.serve import listen, url_of
from tests.support import portal_world as world
from tests.support.browser import chromium

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver (tools/setup.sh)")]

KEEP_SCREENSHOTS = Path(os.environ.get("VDESK_E2E_SCREENSHOT_DIR", "/tmp"))
WAIT_S = 20


def until(condition, what: str, timeout_s: float = WAIT_S):
    return world.until(condition, what, timeout_s)


@pytest.fixture
def portal(tmp_path):
    conn = libvirt.open(world.URI)           # the test driver's state lives while a connection is open
    config = world.build(conn, tmp_path)
    sock = listen(config.settings)
    with world.serving(config, sock, WAIT_S):
        yield url_of(config.settings, sock), conn
    world.tear_down(conn)
    conn.close()


@pytest.fixture
def browser():
    with chromium(1280, 800) as driver:
        yield driver


def state_of(driver, desktop: str) -> str:
    from selenium.webdriver.common.by import By
    return driver.find_element(By.ID, f"desktop-{desktop}").get_attribute("data-state")


def test_ada_signs_in_sees_only_hers_stops_and_starts_it_and_signs_out(portal, browser):
    from selenium.webdriver.common.by import By
    url, conn = portal
    browser.get(url + "/")
    until(lambda: browser.find_elements(By.ID, "user"), "the sign-in page")
    browser.find_element(By.ID, "user").send_keys("ada")
    browser.find_element(By.ID, "password").send_keys(world.PASSWORDS["team", "ada"])
    browser.find_element(By.ID, "signin").click()
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
