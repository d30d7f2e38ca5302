"""The portal's "waking" page in headless Chromium: ada opens her sleeping desktop, the page shows it waking,
asks its state (waking.js, under the portal's CSP) and opens the console link once it runs.

As tests/integration/test_portal_browser.py: test-driver domains in this process, the portal under uvicorn on
loopback, no guest. The console gateway's address is the one its service would report; nothing listens there,
so the browser's arrival at that address (the console link) is what is checked.
"""
from __future__ import annotations

import pytest

from components.lifecycle import actions, quotas
from tests.integration.test_portal_browser import portal, state_of, until  # noqa: F401  (a fixture)
from tests.support import portal_world as world

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway_reported(portal, monkeypatch):  # noqa: F811
    monkeypatch.setattr("components.console.service.base_url", lambda _console_dir: world.GATEWAY_URL)


def test_opening_a_sleeping_desktop_shows_it_waking_then_opens_its_console(portal, browser,  # noqa: F811
                                                                            gateway_reported):
    from selenium.webdriver.common.by import By
    url, conn = portal
    actions.suspend(conn.lookupByName("team-ada"))
    world.sign_in(browser, url, "ada", world.PASSWORDS["team", "ada"])
    until(lambda: browser.find_elements(By.ID, "desktop-team-ada"), "ada's desktop listed")
    assert state_of(browser, "team-ada") == "asleep"
    listing = browser.current_window_handle
    browser.find_element(By.CSS_SELECTOR, "#desktop-team-ada button.open").click()   # (opens a new tab)
    until(lambda: len(browser.window_handles) == 2, "the console's tab")
    browser.switch_to.window(next(h for h in browser.window_handles if h != listing))
    until(lambda: browser.current_url.startswith(world.GATEWAY_URL + "/vnc.html#"),
          "the waking page moving on to the console link")
    assert conn.lookupByName("team-ada").isActive() and not conn.lookupByName("team-ada").hasManagedSaveImage(0)
    logs = [e for e in browser.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    assert logs == [], logs                         # waking.js ran under the portal's CSP


def test_a_wake_beyond_a_quota_shows_the_quota_and_what_runs(portal, browser, tmp_path,  # noqa: F811
                                                             gateway_reported):
    from selenium.webdriver.common.by import By
    url, conn = portal
    actions.suspend(conn.lookupByName("team-ada"))
    conn.lookupByName("lab-ada").create()                 # ada's desktop of another stack runs
    lifecycle_dir = quotas.lifecycle_dir_of(tmp_path / "portal")
    quotas.record(lifecycle_dir, "team", {"users": {"ada": {"desktops": 1}}})    # (whose: their portal records)
    world.sign_in(browser, url, "ada", world.PASSWORDS["team", "ada"])
    until(lambda: browser.find_elements(By.ID, "desktop-team-ada"), "ada's desktop listed")
    listing = browser.current_window_handle
    browser.find_element(By.CSS_SELECTOR, "#desktop-team-ada button.open").click()   # (opens a new tab)
    until(lambda: len(browser.window_handles) == 2, "the console's tab")
    browser.switch_to.window(next(h for h in browser.window_handles if h != listing))
    until(lambda: browser.find_elements(By.ID, "refused"), "the refusal")
    assert browser.find_element(By.ID, "refused").text == "Over a quota"
    assert ("team-ada is not started: ada's quota is 1 desktop(s) running at once (quotas.users.ada.desktops of "
            "stack team), and 1 run: lab-ada. Stop a running desktop first.") in browser.page_source.replace(
        "&#39;", "'").replace("&amp;", "&")
    assert actions.asleep(conn.lookupByName("team-ada"))
    conn.lookupByName("team-ada").managedSaveRemove(0)     # (so that the world's tear-down can undefine it)
