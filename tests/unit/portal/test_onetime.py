"""One-time sign-in links: used once, never twice, never late; the token is kept nowhere but the printed line."""
from __future__ import annotations

import hashlib
import logging
import re
import stat

import pytest
from starlette.testclient import TestClient

from components.cli import access
from components.portal import accounts, onetime
from components.portal.app import create_app
from tests.support import portal_world as world

STACK, DESKTOP, USER = world.PASSWORDLESS
GRANT = onetime.Grant(STACK, DESKTOP, USER)


@pytest.fixture
def config(conn, tmp_path, monkeypatch):
    cfg = world.build(conn, tmp_path)
    with world.passwordless_desktop(conn, cfg):
        yield cfg
    world.tear_down(conn)


def everything_under(folder) -> str:
    return "\n".join(p.read_text(errors="replace") + p.name for p in folder.rglob("*") if p.is_file())


def test_a_link_signs_in_once_and_only_its_hash_is_kept(config):
    token = onetime.mint(config.portal_dir, GRANT)
    folder = config.portal_dir / onetime.LINKS_DIR
    [kept] = folder.iterdir()
    assert kept.name == hashlib.sha256(token.encode()).hexdigest() + ".json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert token not in everything_under(config.portal_dir)
    assert onetime.redeem(config.portal_dir, token) == GRANT
    with pytest.raises(onetime.LinkRefused, match="unknown or used"):
        onetime.redeem(config.portal_dir, token)
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("late_by", [0, 1, 3600])
def test_a_link_past_its_time_is_refused(config, late_by):
    now = [1000.0]
    token = onetime.mint(config.portal_dir, GRANT, clock=lambda: now[0])
    now[0] += onetime.VALID_S + late_by
    with pytest.raises(onetime.LinkRefused, match="expired"):
        onetime.redeem(config.portal_dir, token, clock=lambda: now[0])
    with pytest.raises(onetime.LinkRefused, match="unknown or used"):    # and it is gone
        onetime.redeem(config.portal_dir, token, clock=lambda: now[0])


def test_a_newer_link_replaces_the_older_and_expired_ones_are_swept(config):
    now = [1000.0]
    other = onetime.Grant("team", "team-ada", "ada")
    stale = onetime.mint(config.portal_dir, other, clock=lambda: now[0])
    older = onetime.mint(config.portal_dir, GRANT, clock=lambda: now[0])
    now[0] += onetime.VALID_S
    newer = onetime.mint(config.portal_dir, GRANT, clock=lambda: now[0])
    assert len(list((config.portal_dir / onetime.LINKS_DIR).iterdir())) == 1
    for token in (stale, older):
        with pytest.raises(onetime.LinkRefused):
            onetime.redeem(config.portal_dir, token, clock=lambda: now[0])
    assert onetime.redeem(config.portal_dir, newer, clock=lambda: now[0]) == GRANT


@pytest.mark.parametrize("token", ["", "x", "a" * 43 + "/", "../" * 15, None])
def test_what_is_no_token_is_refused(config, token):
    with pytest.raises(onetime.LinkRefused, match="not a sign-in link|unknown or used"):
        onetime.redeem(config.portal_dir, token)


def test_a_link_for_a_user_the_stack_dropped_signs_no_one_in(config):
    token = onetime.mint(config.portal_dir, GRANT)
    accounts.publish(config.portal_dir, STACK, DESKTOP, ["someone-else"], {})
    with pytest.raises(onetime.LinkRefused, match="no longer lists"):
        onetime.redeem(config.portal_dir, token)


def test_only_a_user_without_a_password_gets_a_link(config):
    assert onetime.link_for(config.portal_dir, "http://p", STACK, DESKTOP, USER).startswith("http://p/signin/link#")
    assert onetime.link_for(config.portal_dir, "http://p", "team", "team-ada", "ada") is None
    assert onetime.link_for(config.portal_dir, "http://p", STACK, DESKTOP, "ada") is None


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def use(client, token: str):
    page = client.get(onetime.PATH)
    assert 'id="link-signin"' in page.text and "link.js" in page.text
    return client.post(onetime.PATH, data={"token": token, "csrf": csrf_of(page.text)}, follow_redirects=False)


def test_the_portal_signs_in_by_link_once(config, caplog):
    caplog.set_level(logging.DEBUG)
    token = onetime.mint(config.portal_dir, GRANT)
    with TestClient(create_app(config)) as client:
        reply = use(client, token)
        assert reply.status_code == 303 and reply.headers["location"] == "/"
        home = client.get("/").text
        assert 'id="desktop-dev-dev"' in home and "team-ada" not in home
        assert client.post("/desktops/dev-dev/stop", data={"csrf": csrf_of(home)}).status_code == 200
    with TestClient(create_app(config)) as stranger:
        again = use(stranger, token)
        assert again.status_code == 401 and "used already, has expired" in again.text
        assert stranger.get("/", follow_redirects=False).headers["location"] == "/signin"
        assert stranger.post(onetime.PATH, data={"token": token}).status_code == 403    # no CSRF token
    assert f"signin user=dev from=testclient result=ok desktops=dev-dev via=link" in caplog.text
    assert "signin via=link from=testclient result=refused reason=an unknown or used link" in caplog.text
    assert token not in caplog.text and token not in everything_under(config.portal_dir)


def test_up_prints_the_link_and_nothing_else_holds_the_token(config, monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    portal = "http://127.0.0.1:7001"
    monkeypatch.setattr(access, "_portal_url", lambda console_dir: portal if console_dir else None)
    monkeypatch.setattr(access, "_on_a_terminal", lambda: True)
    console = {"dir": str(config.console_dir), "desktop": DESKTOP, "stack": STACK, "link_validity_s": 3600}
    outputs = {"host_uri": world.URI, "desktops": {
        USER: {"name": DESKTOP, "state": "running", "ip": None, "user": USER, "console": console},
        "ada": {"name": "team-ada", "state": "running", "ip": None, "user": "ada",
                "console": {**console, "desktop": "team-ada", "stack": "team"}}}}
    assert access.main([STACK], outputs) == 0
    printed = capsys.readouterr().out
    [token] = re.findall(rf"  sign in: {re.escape(portal)}/signin/link#([A-Za-z0-9_-]+)   \(", printed)
    assert printed.count("sign in:") == 1                       # ada has a password: no link for her
    assert f"signs {USER} in once, within 15 minutes" in printed
    assert f"sign in as ada with the password" in printed
    for where in (caplog.text, repr(outputs), everything_under(config.portal_dir)):
        assert token not in where
    assert onetime.redeem(config.portal_dir, token) == GRANT


def test_into_a_pipelines_log_no_link_is_printed(config, monkeypatch, capsys):
    monkeypatch.setattr(access, "_portal_url", lambda console_dir: "http://127.0.0.1:7001")
    console = {"dir": str(config.console_dir), "desktop": DESKTOP, "stack": STACK}
    outputs = {"desktops": {USER: {"name": DESKTOP, "state": "running", "user": USER, "console": console}}}
    assert access.main([STACK], outputs) == 0            # (stdout is no terminal here)
    printed = capsys.readouterr().out
    assert "/signin/link" not in printed and "`make access STACK=dev` in a terminal prints" in printed
    assert not (config.portal_dir / onetime.LINKS_DIR).exists() or \
        not list((config.portal_dir / onetime.LINKS_DIR).iterdir())
