"""The host's portal administrators (the policy's portal_admins): every desktop, everyone signed in, and
ending a person's sessions with their console links. A stack cannot make anyone an administrator."""
from __future__ import annotations

import logging
import re
import urllib.parse

import pytest
import yaml
from starlette.testclient import TestClient

from components.cloudinit.passwords import MIN_ROUNDS, hash_password
from components.console.tokens import Refused, revocations, signing_key, verify
from components.host import policy
from components.host.policy import PolicyError
from components.portal import accounts, usage
from components.portal.admins import Admins, problems
from components.portal.app import create_app
from components.portal.settings import PortalSettings
from tests.support import portal_world as world

ADMIN, ADMIN_PASSWORD = "hostadmin", "the-admins-own-pw"
ADMIN_EMAIL = "ops@example.org"


@pytest.fixture
def admins():
    return Admins(emails=(ADMIN_EMAIL,), hashes=((ADMIN, hash_password(ADMIN_PASSWORD, rounds=MIN_ROUNDS)),))


@pytest.fixture
def config(conn, tmp_path, monkeypatch, admins):
    cfg = world.build(conn, tmp_path, PortalSettings(admins=admins))
    world.believe_the_gateway(monkeypatch, cfg)
    yield cfg
    world.tear_down(conn)


@pytest.fixture
def app(config):
    return create_app(config)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def signed_in(app, user: str, password: str) -> tuple[TestClient, str]:
    client = TestClient(app, base_url="http://testserver")
    token = csrf_of(client.get("/signin").text)
    reply = client.post("/signin", data={"user": user, "password": password, "csrf": token}, follow_redirects=False)
    assert reply.status_code == 303, reply.text
    return client, csrf_of(client.get("/").text)


def test_the_admin_sees_every_desktop_and_everyone_signed_in(app):
    ada, _ = signed_in(app, "ada", world.PASSWORDS["team", "ada"])
    admin, _ = signed_in(app, ADMIN, ADMIN_PASSWORD)
    page = admin.get("/admin")
    assert page.status_code == 200
    for name in world.DESKTOPS:
        assert f'id="all-{name}"' in page.text
    assert 'data-user="ada"' in page.text and f'data-user="{ADMIN}"' in page.text
    assert 'id="administration"' in admin.get("/").text


def test_nobody_else_sees_the_administration(app):
    ada, _ = signed_in(app, "ada", world.PASSWORDS["team", "ada"])
    assert ada.get("/admin").status_code == 403
    assert 'id="administration"' not in ada.get("/").text
    assert TestClient(app).get("/admin", follow_redirects=False).status_code == 303    # to sign-in


def test_a_stack_declaring_the_admins_name_makes_no_admin(app, config):
    """A stack's user named like the policy's administrator, with the stack's own password, is that stack's
    user only; the policy's password for it is not a stack's to set either."""
    accounts.publish(config.portal_dir, "rogue", "lab-ada", [ADMIN],
                     {ADMIN: hash_password("rogue-admin-pw", rounds=MIN_ROUNDS)})
    rogue, _ = signed_in(app, ADMIN, "rogue-admin-pw")
    assert rogue.get("/admin").status_code == 403


def test_ending_a_persons_sessions_signs_them_out_and_revokes_their_links(app, config, caplog):
    caplog.set_level(logging.INFO, logger="vdesk.portal")
    ada, ada_csrf = signed_in(app, "ada", world.PASSWORDS["team", "ada"])
    ada_again, _ = signed_in(app, "ada", world.PASSWORDS["lab", "ada"])       # a second browser
    grace, _ = signed_in(app, "grace", world.PASSWORDS["team", "grace"])
    opened = ada.post("/desktops/team-ada/open", data={"csrf": ada_csrf}, follow_redirects=False)
    path = urllib.parse.parse_qs(urllib.parse.urlsplit(opened.headers["location"]).fragment)["path"][0]
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)["token"][0]
    key = signing_key(config.console_dir)
    verify(key, token, "team-ada", revocations(config.console_dir))       # valid before

    admin, admin_csrf = signed_in(app, ADMIN, ADMIN_PASSWORD)
    ended = admin.post("/admin/end", data={"csrf": admin_csrf, "user": "ada"})
    assert ended.status_code == 200 and "Ended the sessions of ada." in ended.text
    assert 'data-user="ada"' not in ended.text and 'data-user="grace"' in ended.text
    for browser in (ada, ada_again):
        assert browser.get("/", follow_redirects=False).headers["location"] == "/signin"
    assert grace.get("/").status_code == 200
    with pytest.raises(Refused, match="revoked"):
        verify(key, token, "team-ada", revocations(config.console_dir))
    assert "admin user=hostadmin ended sessions of=ada sessions=2 links_revoked=1" in caplog.text
    assert token not in caplog.text and ADMIN_PASSWORD not in caplog.text


def test_ending_sessions_needs_an_admin_and_the_csrf_token(app):
    ada, ada_csrf = signed_in(app, "ada", world.PASSWORDS["team", "ada"])
    grace, grace_csrf = signed_in(app, "grace", world.PASSWORDS["team", "grace"])
    assert grace.post("/admin/end", data={"csrf": grace_csrf, "user": "ada"}).status_code == 403
    admin, _ = signed_in(app, ADMIN, ADMIN_PASSWORD)
    assert admin.post("/admin/end", data={"csrf": "forged", "user": "ada"}).status_code == 403
    assert ada.get("/").status_code == 200 and 'id="desktop-team-ada"' in ada.get("/").text


def test_an_oidc_identity_is_an_admin_by_its_address_only(admins):
    assert admins.by_email("OPS@example.org") and not admins.by_email("ada@example.org")
    assert not admins.by_email(None) and not admins.by_email("")
    assert admins.by_password(ADMIN, ADMIN_PASSWORD) and not admins.by_password(ADMIN, "wrong")
    assert not admins.by_password("ops@example.org", ADMIN_PASSWORD)


def test_settings_carry_the_admins_through_their_file(tmp_path, admins):
    import dataclasses, json
    file = tmp_path / "settings.json"
    file.write_text(json.dumps(dataclasses.asdict(PortalSettings(admins=admins))))
    assert PortalSettings.from_file(file).admins == admins


def test_the_policy_names_the_admins(tmp_path):
    file = tmp_path / "policy.yaml"
    crypt = hash_password(ADMIN_PASSWORD, rounds=MIN_ROUNDS)
    file.write_text(yaml.safe_dump({"portal_admins": [ADMIN_EMAIL, {"user": ADMIN, "password_hash": crypt}]}))
    assert policy.load(file).portal_admins == Admins(emails=(ADMIN_EMAIL,), hashes=((ADMIN, crypt),))
    assert policy.load(tmp_path / "absent.yaml").portal_admins == Admins()
    file.write_text(yaml.safe_dump({"portal_admins": [{"user": ADMIN, "password_hash": "plain-pw"}]}))
    with pytest.raises(PolicyError, match=r"portal_admins\[0\].password_hash: must be a \$6\$ crypt hash"):
        policy.load(file)


@pytest.mark.parametrize("entries, where", [
    ("ops@example.org", "portal_admins"),
    (["hostadmin"], "portal_admins[0]"),
    (["ops@example.org", {"user": "Bad Name", "password_hash": "$6$x$y"}], "portal_admins[1].user"),
    ([{"user": "hostadmin"}], "portal_admins[0]"),
])
def test_bad_admin_entries_name_their_place(entries, where):
    assert where in [w for w, _message in problems(entries, "portal_admins")]


def test_the_list_says_when_each_desktop_was_last_used(app, config):
    ada, csrf = signed_in(app, "ada", world.PASSWORDS["team", "ada"])
    assert re.search(r'id="desktop-team-ada".*?class="last-used">never<', ada.get("/").text, re.S)
    ada.post("/desktops/team-ada/open", data={"csrf": csrf}, follow_redirects=False)
    at = usage.last_used(config.portal_dir)["team", "team-ada"]
    assert re.search(rf'id="desktop-team-ada".*?class="last-used">{re.escape(usage.shown(at))}<',
                     ada.get("/").text, re.S)
    admin, _ = signed_in(app, ADMIN, ADMIN_PASSWORD)
    assert re.search(rf'id="all-team-ada".*?class="last-used">{re.escape(usage.shown(at))}<',
                     admin.get("/admin").text, re.S)


def test_the_ended_message_never_echoes_odd_text_from_the_url(app):
    admin, _ = signed_in(app, ADMIN, ADMIN_PASSWORD)
    page = admin.get("/admin", params={"ended": "<script>x</script>"})
    assert page.status_code == 200 and "Ended the sessions" not in page.text and "<script>x" not in page.text
