"""Opening a sleeping desktop from the portal, through Starlette's TestClient against libvirt's test driver:
it is woken behind a "waking" page that opens the console once the desktop runs."""
from __future__ import annotations

import logging
import re

import pytest

from components.lifecycle import actions, quotas
from tests.support import portal_world as world
from tests.unit.portal.test_portal_app import client, config, signed_in  # noqa: F401  (fixtures)

BASE = "http://testserver"


@pytest.fixture
def asleep(conn, config):  # noqa: F811
    dom = conn.lookupByName("team-ada")
    actions.suspend(dom)
    yield dom
    if dom.hasManagedSaveImage(0):
        dom.managedSaveRemove(0)


def test_a_sleeping_desktop_is_shown_asleep_and_can_be_opened(client, asleep):  # noqa: F811
    signed_in(client)
    page = client.get("/").text
    card = re.search(r'<li class="desktop" id="desktop-team-ada".*?</li>', page, re.S).group(0)
    assert 'data-state="asleep"' in card
    assert re.search(r'<button type="submit" class="open"\s*>Open</button>', card), card   # not disabled


def test_opening_it_wakes_it_behind_a_waking_page_which_then_opens_the_console(client, asleep, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="vdesk.portal")
    csrf = signed_in(client)
    waking = client.post("/desktops/team-ada/open", data={"csrf": csrf}, follow_redirects=False)
    assert waking.status_code == 202 and 'id="waking"' in waking.text
    form = re.search(r'<form method="post" action="([^"]+)" id="open-when-awake"\s+data-state-url="([^"]+)"',
                     waking.text)
    assert form.groups() == (f"{BASE}/desktops/team-ada/open", f"{BASE}/desktops/team-ada/state")
    assert f'<script src="{BASE}/static/waking.js">' in waking.text         # the CSP allows no inline script
    assert "default-src 'self'" in waking.headers["content-security-policy"]
    assert client.get("/static/waking.js").status_code == 200
    # the wake ran once the page was sent: its managed save restored
    assert asleep.isActive() and not asleep.hasManagedSaveImage(0)
    assert "wake user=ada desktop=team-ada how=restored" in caplog.text
    assert client.get("/desktops/team-ada/state").json() == {"state": "running"}
    opened = client.post("/desktops/team-ada/open", data={"csrf": csrf}, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"].startswith(world.GATEWAY_URL + "/vnc.html#")


def test_the_state_is_the_persons_only(client, asleep):  # noqa: F811
    assert client.get("/desktops/team-ada/state").status_code == 401
    signed_in(client)
    assert client.get("/desktops/team-ada/state").json() == {"state": "asleep"}
    assert client.get("/desktops/team-grace/state").status_code == 403


def test_a_stale_form_wakes_nothing(client, asleep):  # noqa: F811
    signed_in(client)
    assert client.post("/desktops/team-ada/open", data={"csrf": "stale"}).status_code == 403
    assert actions.asleep(asleep)


def test_a_desktop_stopped_on_purpose_is_not_woken(client, conn):  # noqa: F811
    csrf = signed_in(client, "ada", world.PASSWORDS["lab", "ada"])
    assert re.search(r'class="open"\s*disabled', client.get("/").text)
    reply = client.post("/desktops/lab-ada/open", data={"csrf": csrf}, follow_redirects=False)
    assert reply.status_code == 303 and not conn.lookupByName("lab-ada").isActive()   # (the gateway refuses it)


def test_a_wake_beyond_a_quota_is_refused_with_the_quota_and_what_runs(client, conn, config, asleep,  # noqa: F811
                                                                        caplog):
    caplog.set_level(logging.INFO, logger="vdesk.portal")
    conn.lookupByName("lab-ada").create()           # ada's desktop of another stack runs
    lifecycle_dir = quotas.lifecycle_dir_of(config.portal_dir)
    quotas.record(lifecycle_dir, "team", {"users": {"ada": {"desktops": 1}}})    # (whose: their portal records)
    csrf = signed_in(client)
    reply = client.post("/desktops/team-ada/open", data={"csrf": csrf}, follow_redirects=False)
    assert reply.status_code == 409 and "Over a quota" in reply.text
    assert ("team-ada is not started: ada&#39;s quota is 1 desktop(s) running at once (quotas.users.ada.desktops "
            "of stack team), and 1 run: lab-ada.") in reply.text
    assert actions.asleep(asleep)
    assert "wake user=ada desktop=team-ada from=testclient result=refused" in caplog.text
    conn.lookupByName("lab-ada").destroy()
    assert client.post("/desktops/team-ada/open", data={"csrf": csrf}, follow_redirects=False).status_code == 202
    assert asleep.isActive()


def test_a_start_beyond_a_quota_is_refused(client, conn, config):  # noqa: F811
    lifecycle_dir = quotas.lifecycle_dir_of(config.portal_dir)
    quotas.record(lifecycle_dir, "lab", {"users": {"ada": {"desktops": 1}}})   # team-ada runs; team has no quota
    csrf = signed_in(client, "ada", world.PASSWORDS["lab", "ada"])
    reply = client.post("/desktops/lab-ada/start", data={"csrf": csrf}, follow_redirects=False)
    assert reply.status_code == 409 and "and 1 run: team-ada." in reply.text
    assert not conn.lookupByName("lab-ada").isActive()


def test_a_viewer_file_of_a_sleeping_desktop_wakes_it_within_its_quotas(client, conn, config):  # noqa: F811
    dom = conn.lookupByName("team-ada")
    dom.destroy()
    dom.undefine()
    world.define(conn, "team-ada", "team", True, graphics_socket="/run/vdesk/team-ada.vnc", spice=True,
                 display_password="Display-Pw-1")
    actions.suspend(conn.lookupByName("team-ada"))
    conn.lookupByName("lab-ada").create()
    lifecycle_dir = quotas.lifecycle_dir_of(config.portal_dir)
    quotas.record(lifecycle_dir, "team", {"users": {"ada": {"desktops": 1}}})    # (whose: their portal records)
    csrf = signed_in(client)
    assert not re.search(r'class="viewer"\s*disabled', client.get("/").text)       # asleep: a viewer opens it
    refused = client.post("/desktops/team-ada/viewer.vv", data={"csrf": csrf})
    assert refused.status_code == 409 and "and 1 run: lab-ada." in refused.text
    assert actions.asleep(conn.lookupByName("team-ada"))
    conn.lookupByName("lab-ada").destroy()
    reply = client.post("/desktops/team-ada/viewer.vv", data={"csrf": csrf})
    assert reply.status_code == 200 and "password=Display-Pw-1" in reply.text
    assert conn.lookupByName("team-ada").isActive()
