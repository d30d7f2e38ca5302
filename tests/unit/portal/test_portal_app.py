"""The portal app through Starlette's TestClient, against libvirt's test driver."""
from __future__ import annotations

import logging
import re
import urllib.parse

import jwt
import pytest
from starlette.testclient import TestClient

from components.console.tokens import AUDIENCE, Refused, revocations, signing_key, verify
from components.portal import accounts
from components.portal.app import CONSOLE_COOKIE, SESSION_COOKIE, create_app
from components.portal.limiter import AttemptLimiter
from components.portal.links import refuse_unbound
from tests.support import portal_world as world


@pytest.fixture
def config(conn, tmp_path, monkeypatch):
    cfg = world.build(conn, tmp_path)
    world.believe_the_gateway(monkeypatch, cfg)
    yield cfg
    world.tear_down(conn)


@pytest.fixture
def client(config):
    with TestClient(create_app(config), base_url="http://testserver") as c:
        yield c


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def sign_in(client, user: str, password: str):
    token = csrf_of(client.get("/signin").text)
    return client.post("/signin", data={"user": user, "password": password, "csrf": token}, follow_redirects=False)


def signed_in(client, user="ada", password=world.PASSWORDS["team", "ada"]) -> str:
    assert sign_in(client, user, password).status_code == 303
    return csrf_of(client.get("/").text)


def test_a_stranger_is_sent_to_sign_in(client):
    assert client.get("/", follow_redirects=False).headers["location"] == "/signin"
    assert client.get("/desktops/team-ada/thumbnail.png").status_code == 401


def test_ada_sees_her_desktop_and_not_graces(client, caplog):
    caplog.set_level(logging.INFO, logger="vdesk.portal")
    signed_in(client)
    page = client.get("/").text
    assert 'id="desktop-team-ada"' in page and 'data-state="running"' in page
    assert "team-grace" not in page and "lab-ada" not in page     # lab vouches for another password
    assert client.get("/desktops/team-grace").status_code == 403
    assert client.get("/desktops/no-such-desktop").status_code == 403    # not told apart from another's
    assert client.get("/desktops/team-grace/thumbnail.png").status_code == 403
    assert "signin user=ada from=testclient result=ok desktops=team-ada" in caplog.text
    assert world.PASSWORDS["team", "ada"] not in caplog.text


def test_the_password_of_each_stack_shows_that_stacks_desktops(client):
    signed_in(client, "ada", world.PASSWORDS["lab", "ada"])
    page = client.get("/").text
    assert 'id="desktop-lab-ada"' in page and 'data-state="stopped"' in page and "team-ada" not in page


def test_a_stack_cannot_publish_another_stacks_desktop(client, caplog):
    signed_in(client, "ada", world.PASSWORDS["rogue", "ada"])
    assert "team-grace" not in client.get("/").text
    assert client.get("/desktops/team-grace").status_code == 403
    assert "stack rogue lists desktop team-grace, which it does not own" in caplog.text


def test_a_wrong_password_is_refused_and_logged_without_it(client, caplog):
    caplog.set_level(logging.INFO, logger="vdesk.portal")
    reply = sign_in(client, "ada", "not-her-password")
    assert reply.status_code == 401 and "Wrong user or password" in reply.text
    assert client.get("/", follow_redirects=False).status_code == 303
    assert "signin user=ada from=testclient result=refused" in caplog.text
    assert "not-her-password" not in caplog.text
    sign_in(client, "ada\nforged line", "x")
    assert "forged line" not in caplog.text


def test_the_thumbnail_is_a_small_png_of_the_screen(client):
    signed_in(client)
    reply = client.get("/desktops/team-ada/thumbnail.png")
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/png"
    from PIL import Image
    import io
    width, height = Image.open(io.BytesIO(reply.content)).size
    assert 0 < width <= 320 and 0 < height <= 200


def test_stop_start_and_restart_change_the_domain(client, conn, caplog):
    caplog.set_level(logging.INFO, logger="vdesk.portal")
    csrf = signed_in(client)
    dom = conn.lookupByName("team-ada")
    assert client.post("/desktops/team-ada/stop", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert not dom.isActive()
    assert 'data-state="stopped"' in client.get("/desktops/team-ada").text
    assert client.post("/desktops/team-ada/start", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert dom.isActive()
    assert client.post("/desktops/team-ada/restart", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert dom.isActive()
    assert "action user=ada desktop=team-ada action=stop from=testclient" in caplog.text


def test_the_page_says_what_was_done_never_what_the_url_says(client):
    signed_in(client)
    assert "Stop: team-ada" in client.get("/?done=stop+team-ada").text
    assert "Sign in again" not in client.get("/?done=stop+Sign+in+again").text
    assert 'id="message"' not in client.get("/?done=Your+password+expired").text


def test_no_action_on_another_persons_desktop(client, conn):
    csrf = signed_in(client)
    assert client.post("/desktops/team-grace/stop", data={"csrf": csrf}).status_code == 403
    assert conn.lookupByName("team-grace").isActive()


def test_every_action_needs_the_sessions_csrf_token(client, conn):
    signed_in(client)
    assert client.post("/desktops/team-ada/stop", data={}).status_code == 403
    assert client.post("/desktops/team-ada/stop", data={"csrf": "guessed"}).status_code == 403
    assert conn.lookupByName("team-ada").isActive()
    # the right token from another site's page is refused too
    csrf = csrf_of(client.get("/").text)
    reply = client.post("/desktops/team-ada/stop", data={"csrf": csrf}, headers={"Origin": "http://evil.example"})
    assert reply.status_code == 403 and conn.lookupByName("team-ada").isActive()
    # and signing in needs the sign-in page's token
    assert client.post("/signin", data={"user": "ada", "password": world.PASSWORDS["team", "ada"]}).status_code == 403


def test_cookies_are_httponly_and_samesite(client):
    reply = sign_in(client, "ada", world.PASSWORDS["team", "ada"])
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith(SESSION_COOKIE + "=") and "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()       # plain HTTP on loopback: a Secure cookie would never come back


def test_sign_in_attempts_are_limited_per_user(config):
    with TestClient(create_app(config, limiter=AttemptLimiter(per_client=100, per_user=3))) as client:
        for _ in range(3):
            assert sign_in(client, "grace", "wrong").status_code == 401
        assert sign_in(client, "grace", world.PASSWORDS["team", "grace"]).status_code == 429
        assert sign_in(client, "ada", world.PASSWORDS["team", "ada"]).status_code == 303


def test_sign_in_attempts_are_limited_per_client(config):
    with TestClient(create_app(config, limiter=AttemptLimiter(per_client=2, per_user=100))) as client:
        assert sign_in(client, "grace", "wrong").status_code == 401
        assert sign_in(client, "ada", "wrong").status_code == 401
        assert sign_in(client, "ada", world.PASSWORDS["team", "ada"]).status_code == 429


def test_open_mints_a_console_link_bound_to_the_person(client, config, caplog):
    caplog.set_level(logging.INFO, logger="vdesk.portal")
    csrf = signed_in(client)
    reply = client.post("/desktops/team-ada/open", data={"csrf": csrf}, follow_redirects=False)
    assert reply.status_code == 303
    link = reply.headers["location"]
    assert link.startswith(world.GATEWAY_URL + "/vnc.html#") and "password" not in link
    path = urllib.parse.parse_qs(urllib.parse.urlsplit(link).fragment)["path"][0]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    token = query["token"][0]
    key = signing_key(config.console_dir)
    assert verify(key, token, "team-ada").desktop == "team-ada"
    claims = jwt.decode(token, key, algorithms=["HS256"], audience=AUDIENCE)
    bind = client.cookies[CONSOLE_COOKIE]
    import hashlib
    assert claims["per"] == "ada" and claims["stk"] == "team"
    assert claims["bnd"] == hashlib.sha256(bind.encode()).hexdigest()
    assert claims["exp"] - int(claims["iat"]) == config.settings.link_validity_s     # (iat to the ms)
    grant = verify(key, token, "team-ada")
    assert grant.bound == claims["bnd"]                                # what the gateway holds the cookie to
    # opened within its 5 minutes, the console stays open until ada's sign-in ends, not for 5 minutes
    assert grant.session_ends - grant.issued == pytest.approx(config.settings.session_s, abs=2)
    assert "console user=ada desktop=team-ada" in caplog.text and token not in caplog.text
    # what the gateway is to check: this browser's console cookie opens it, a forwarded link alone does not
    refuse_unbound(claims, f"{CONSOLE_COOKIE}={bind}")
    with pytest.raises(Refused, match="another person's session"):
        refuse_unbound(claims, None)
    assert client.post("/desktops/team-grace/open", data={"csrf": csrf}).status_code == 403


def test_a_virtio_desktops_console_asks_noVNC_for_a_remote_resize(client, conn):
    """virtio-gpu takes the browser window's size as its preferred mode (tests/unit/console/
    test_console_resize.py); team-ada's default adapter cannot, and her link keeps the scaled picture."""
    csrf = signed_in(client)

    def resize_asked() -> str:
        link = client.post("/desktops/team-ada/open", data={"csrf": csrf}, follow_redirects=False).headers["location"]
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).fragment))["resize"]
    assert resize_asked() == "scale"
    old = conn.lookupByName("team-ada")
    old.destroy()
    old.undefine()
    world.define(conn, "team-ada", "team", True, video={"model": "virtio", "width": 1280, "height": 800})
    assert resize_asked() == "remote"


def test_signing_out_ends_the_session_even_for_a_kept_cookie(client, config):
    csrf = signed_in(client)
    kept = client.cookies[SESSION_COOKIE]
    link = client.post("/desktops/team-ada/open", data={"csrf": csrf}, follow_redirects=False).headers["location"]
    path = urllib.parse.parse_qs(urllib.parse.urlsplit(link).fragment)["path"][0]
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)["token"][0]
    assert client.post("/signout", data={"csrf": csrf}, follow_redirects=False).headers["location"] == "/signin"
    # the console opened from that sign-in ends with it: its link is revoked (the gateway ends an open
    # session of a revoked link within a second, tests/integration/test_console_live.py)
    with pytest.raises(Refused, match="revoked"):
        verify(signing_key(config.console_dir), token, "team-ada", revocations(config.console_dir))
    client.cookies.set(SESSION_COOKIE, kept)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_desktop_taken_from_the_person_is_gone_from_their_session(client, config):
    signed_in(client)
    accounts.publish(config.portal_dir, "team", "team-ada", ["grace"], {})
    assert client.get("/desktops/team-ada").status_code == 403 and "team-ada" not in client.get("/").text


def test_pages_forbid_framing_and_referrers(client):
    headers = client.get("/signin").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "same-origin"   # (no-referrer would make every Origin "null")


def test_under_tls_both_cookies_are_secure(config, tmp_path):
    import dataclasses
    from components.portal.settings import PortalSettings
    cert = tmp_path / "portal.pem"
    cert.write_text("(the server's certificate: uvicorn reads it, the app only knows TLS is on)\n")
    tls = dataclasses.replace(config, settings=PortalSettings(tls_cert=str(cert)))
    with TestClient(create_app(tls), base_url="https://testserver") as client:
        reply = sign_in(client, "ada", world.PASSWORDS["team", "ada"])
        assert reply.status_code == 303 and "secure" in reply.headers["set-cookie"].lower()
        csrf = csrf_of(client.get("/").text)
        opened = client.post("/desktops/team-ada/open", data={"csrf": csrf}, follow_redirects=False)
        console = [c for c in opened.headers.get_list("set-cookie") if c.startswith(CONSOLE_COOKIE + "=")]
        assert len(console) == 1 and "secure" in console[0].lower() and "samesite=strict" in console[0].lower()
        assert "httponly" in console[0].lower()


def test_a_viewer_file_is_its_persons_only_and_never_cached(client, conn, caplog):
    caplog.set_level(logging.INFO, logger="vdesk.portal")
    dom = conn.lookupByName("team-ada")
    dom.destroy()
    dom.undefine()
    world.define(conn, "team-ada", "team", True, graphics_socket="/run/vdesk/team-ada.vnc", spice=True,
                 display_password="Display-Pw-1")
    csrf = signed_in(client)
    assert '/desktops/team-ada/viewer.vv"' in client.get("/").text
    reply = client.post("/desktops/team-ada/viewer.vv", data={"csrf": csrf})
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/x-virt-viewer")
    assert reply.headers["content-disposition"] == 'attachment; filename="team-ada.vv"'
    assert reply.headers["cache-control"] == "no-store"
    # remote-viewer reaches a socket over SPICE only; the file is the credential it has
    assert "type=spice\nunix-path=/run/vdesk/team-ada.spice\npassword=Display-Pw-1\n" in reply.text
    assert "title=team-ada (ada)" in reply.text
    assert "viewer user=ada desktop=team-ada from=testclient" in caplog.text and "Display-Pw-1" not in caplog.text
    # another's desktop, a missing token, and a desktop that is off are refused
    assert client.post("/desktops/team-grace/viewer.vv", data={"csrf": csrf}).status_code == 403
    assert client.post("/desktops/team-ada/viewer.vv", data={}).status_code == 403
    conn.lookupByName("team-ada").destroy()
    assert client.post("/desktops/team-ada/viewer.vv", data={"csrf": csrf}).status_code == 404


@pytest.mark.parametrize("graphics, uri", [
    ({"type": "vnc", "listen_socket": "/run/d/x.vnc"}, "vnc+unix:///run/d/x.vnc"),
    ({"type": "spice", "listen_socket": "/run/d/x.spice"}, "spice+unix:///run/d/x.spice"),
    ({"type": "vnc", "listen_address": "0.0.0.0", "port": 5901}, "vnc://127.0.0.1:5901"),
    ({"type": "spice", "listen_address": "fd00::5", "port": 5902}, "spice://[fd00::5]:5902"),
    ({"type": "vnc", "listen_address": "127.0.0.1", "port": -1}, None),     # not listening (yet)
])
def test_a_viewer_file_names_the_display_as_the_live_domain_has_it(graphics, uri):
    from components import xmlmodel
    from components.portal.inventory import _display_uri
    assert _display_uri(xmlmodel.Graphics(**graphics)) == uri


def test_a_desktop_that_does_not_exist_is_refused_as_anothers_is_in_words_true_of_both(client):
    signed_in(client)
    graces, nobodys = client.get("/desktops/team-grace"), client.get("/desktops/no-such-desktop")
    assert graces.status_code == nobodys.status_code == 403
    for reply, name in ((graces, "team-grace"), (nobodys, "no-such-desktop")):
        assert '<h2 id="refused">No desktop of yours</h2>' in reply.text and "Not yours" not in reply.text
        assert "You have no desktop of that name on this host." in reply.text and name not in reply.text
    assert graces.text == nobodys.text


def test_a_session_outlives_a_portal_restart_until_it_signs_out(config):
    with TestClient(create_app(config), base_url="http://testserver") as before:
        signed_in(before)
        cookies = dict(before.cookies)
    with TestClient(create_app(config), base_url="http://testserver", cookies=cookies) as after:    # restarted
        page = after.get("/", follow_redirects=False)
        assert page.status_code == 200 and 'id="desktop-team-ada"' in page.text
        assert after.post("/signout", data={"csrf": csrf_of(page.text)}, follow_redirects=False).status_code == 303
    with TestClient(create_app(config), base_url="http://testserver", cookies=cookies) as copied:
        assert copied.get("/", follow_redirects=False).headers["location"] == "/signin"    # the old cookie: no more
