"""OpenID Connect sign-in to the portal in headless Chromium, against a real provider on loopback.

The provider is node's certified oidc-provider (tests/support/oidc.py), with its own sign-in pages; the
portal runs under uvicorn in this process over libvirt's test driver (tests/support/portal_world.py).
ada's address maps her in two stacks (and a rogue stack maps it to grace's desktop, which it does not
own); an address no stack declares signs in to nothing. A state or nonce changed on the way is refused,
and no secret of the flow (client secret, code, tokens, PKCE verifier) reaches a log line or a URL.
"""
from __future__ import annotations

import base64
import json
import logging
import secrets
import shutil
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import libvirt
import pytest

from components.portal.admins import Admins
from components.portal.app import SESSION_COOKIE
from components.portal.serve import listen, url_of
from components.portal.settings import OidcSettings, PortalSettings
from tests.support import oidc
from tests.support import portal_world as world

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver (tools/setup.sh)"),
              pytest.mark.skipif(oidc.installed() is None,
                                 reason="needs Node.js 20 and the test OpenID provider (tools/setup.sh)")]

WAIT_S = 30
CLIENT_ID = "vdesk-portal"
ADMIN_EMAIL = "ops@example.org"      # the host policy's portal administrator (no stack maps it)
ADMIN_GROUP = "vdesk-admins"         # the policy's admin_groups: a member administers the portal
LEAD_EMAIL = "lead@example.org"      # in ADMIN_GROUP at the provider; named nowhere in the policy
GROUPS = {LEAD_EMAIL: [ADMIN_GROUP, "staff"], "ada@example.org": ["staff"]}
SHOTS = Path("/tmp")


def until(condition, what: str):
    return world.until(condition, what, WAIT_S)


@pytest.fixture
def portal(tmp_path, caplog):
    """(portal URL, client secret) of a portal whose host's identity provider is a real one on loopback."""
    for driver_chatter in ("selenium", "urllib3"):      # the test's own browser driving (its URLs hold codes)
        caplog.set_level(logging.WARNING, logger=driver_chatter)
    caplog.set_level(logging.DEBUG)             # every line any other logger would write, searched for secrets
    conn = libvirt.open(world.URI)
    sock = listen(PortalSettings())
    url = url_of(PortalSettings(), sock)
    client_secret = secrets.token_urlsafe(32)
    with oidc.openid_provider(tmp_path / "idp", client_id=CLIENT_ID, client_secret=client_secret,
                              redirect_uris=[f"{url}/oidc/callback"], post_logout_redirect_uris=[f"{url}/signin"],
                              groups=GROUPS) as issuer:
        settings = PortalSettings(oidc=OidcSettings(issuer=issuer, client_id=CLIENT_ID,
                                                    client_secret_file=str(tmp_path / "idp" / "client.secret"),
                                                    admin_groups=(ADMIN_GROUP,), groups_scope="groups"),
                                  admins=Admins(emails=(ADMIN_EMAIL,)))
        assert settings.problems("portal") == []
        with world.serving(world.build(conn, tmp_path, settings), sock):
            yield url, client_secret
    world.tear_down(conn)
    conn.close()


def at_the_provider_sign_in(browser, login: str) -> None:
    """oidc-provider's own pages: its login form (any password), then its consent."""
    from selenium.webdriver.common.by import By
    until(lambda: browser.find_elements(By.NAME, "login"), "the provider's sign-in page")
    browser.find_element(By.NAME, "login").send_keys(login)
    browser.find_element(By.NAME, "password").send_keys("any password")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    until(lambda: browser.find_elements(By.CSS_SELECTOR, "input[name=prompt][value=consent]"),
          "the provider's consent page")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def signed_in_by_the_provider(browser, url: str, login: str) -> None:
    """From the portal's sign-in page, through the provider's, as `login`."""
    from selenium.webdriver.common.by import By
    browser.get(url + "/signin")
    browser.find_element(By.ID, "oidc-signin").click()
    at_the_provider_sign_in(browser, login)


def sign_out_at_the_provider_too(browser) -> None:
    """The portal's Sign out, then oidc-provider's own confirmation of its RP-initiated logout."""
    from selenium.webdriver.common.by import By
    browser.find_element(By.ID, "signout").click()
    until(lambda: browser.find_elements(By.CSS_SELECTOR, "button[name=logout][value=yes]"),
          "the provider's sign-out confirmation")
    browser.find_element(By.CSS_SELECTOR, "button[name=logout][value=yes]").click()
    until(lambda: browser.find_elements(By.ID, "signin"), "back at the portal's sign-in page")


def shown_desktops(browser) -> list[str]:
    from selenium.webdriver.common.by import By
    return [e.get_attribute("id") for e in browser.find_elements(By.CSS_SELECTOR, "li.desktop")]


def state_of(browser, desktop: str) -> str | None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    try:
        return browser.find_element(By.ID, f"desktop-{desktop}").get_attribute("data-state")
    except (NoSuchElementException, StaleElementReferenceException):
        return None                     # the page is being replaced


def signed_out(url: str, browser) -> bool:
    from selenium.webdriver.common.by import By
    browser.get(url + "/")
    return bool(browser.find_elements(By.ID, "signin")) and not shown_desktops(browser)


def no_secret_in(text: str, *secrets_: str) -> None:
    for value in secrets_:
        assert value not in text
    assert "eyJ" not in text, "a JWT (ID or access token)"
    assert "code_verifier" not in text and "code=" not in text


def test_a_mapped_identity_signs_in_and_sees_exactly_her_desktops(portal, browser, caplog):
    from selenium.webdriver.common.by import By
    url, client_secret = portal
    signed_in_by_the_provider(browser, url, world.EMAILS["ada"])
    until(lambda: browser.find_elements(By.ID, "desktop-team-ada"), "ada's desktops, signed in by her provider")
    browser.save_screenshot(str(SHOTS / "vdesk-portal-oidc-ada.png"))
    assert browser.find_element(By.ID, "who").text == world.EMAILS["ada"]
    assert not browser.find_elements(By.ID, "administration")      # ada's address is no administrator's
    # team's and lab's desktops of ada; not team-grace, which the rogue stack maps her address to
    assert shown_desktops(browser) == ["desktop-lab-ada", "desktop-team-ada"]
    assert urlsplit(browser.current_url).path == "/"
    browser.get(url + "/desktops/team-grace")
    until(lambda: browser.find_elements(By.ID, "refused"), "a refusal for grace's desktop")

    browser.get(url + "/")
    browser.find_element(By.CSS_SELECTOR, "#desktop-lab-ada button.start").click()
    until(lambda: browser.find_elements(By.ID, "message") and state_of(browser, "lab-ada") == "running",
          "the same session acts on her desktop")
    signins = [r.getMessage() for r in caplog.records if r.getMessage().startswith("signin ")]
    assert len(signins) == 1 and signins[0].startswith(f"signin user={world.EMAILS['ada']} from=127.0.0.1 result=ok")
    assert signins[0].endswith("via=oidc")
    sign_out_at_the_provider_too(browser)
    assert signed_out(url, browser)
    no_secret_in(caplog.text, client_secret)
    no_secret_in(url, client_secret)


def test_signing_out_ends_the_providers_session_too(portal, browser, caplog):
    from selenium.webdriver.common.by import By
    url, client_secret = portal
    signed_in_by_the_provider(browser, url, world.EMAILS["grace"])
    until(lambda: browser.find_elements(By.ID, "desktop-team-grace"), "grace's desktop")
    browser.get(url + "/oidc/signin")       # while the provider's session lives, it signs her in without asking
    until(lambda: browser.find_elements(By.ID, "desktop-team-grace") and urlsplit(browser.current_url).path == "/",
          "signed in again by the provider's session alone")
    assert not browser.find_elements(By.NAME, "login")
    browser.find_element(By.ID, "signout").click()
    until(lambda: browser.find_elements(By.CSS_SELECTOR, "button[name=logout][value=yes]"),
          "the provider's sign-out confirmation")
    sent = dict(parse_qsl(urlsplit(browser.current_url).query))      # the provider's end_session_endpoint
    assert sent == {"client_id": CLIENT_ID, "post_logout_redirect_uri": f"{url}/signin"}   # no token in it
    browser.save_screenshot(str(SHOTS / "vdesk-portal-oidc-signout.png"))
    browser.find_element(By.CSS_SELECTOR, "button[name=logout][value=yes]").click()
    until(lambda: browser.find_elements(By.ID, "signin"), "back at the portal's sign-in page")
    assert urlsplit(browser.current_url).path == "/signin"
    assert signed_out(url, browser)
    # The provider's session ended with the portal's: signing in again asks for the login, not only a click.
    browser.find_element(By.ID, "oidc-signin").click()
    until(lambda: browser.find_elements(By.NAME, "login"), "the provider's sign-in page, asking again")
    assert f"signout user={world.EMAILS['grace']} from=127.0.0.1 at_provider=yes" in caplog.text
    no_secret_in(caplog.text, client_secret)


def test_a_member_of_the_policys_admin_group_administers_the_portal(portal, browser, caplog):
    from selenium.webdriver.common.by import By
    url, client_secret = portal
    signed_in_by_the_provider(browser, url, LEAD_EMAIL)
    until(lambda: browser.find_elements(By.ID, "administration"), "the administration link")
    browser.get(url + "/admin")
    until(lambda: browser.find_elements(By.ID, "all-desktops"), "the administration page")
    assert [e.get_attribute("data-user") for e in browser.find_elements(By.CSS_SELECTOR, "tr.session")] == [
        LEAD_EMAIL]
    assert f"signin user={LEAD_EMAIL} from=127.0.0.1 result=ok desktops= via=oidc admin=yes" in caplog.text
    no_secret_in(caplog.text, client_secret)


def test_an_identity_outside_the_admin_group_is_refused_the_administration(portal, browser, caplog):
    from selenium.webdriver.common.by import By
    url, client_secret = portal
    signed_in_by_the_provider(browser, url, world.EMAILS["ada"])          # in the provider's group staff only
    until(lambda: browser.find_elements(By.ID, "desktop-team-ada"), "ada's desktops")
    assert not browser.find_elements(By.ID, "administration")
    browser.get(url + "/admin")
    until(lambda: browser.find_elements(By.ID, "refused"), "a refusal of the administration page")
    assert "for the host's administrators" in browser.find_element(By.TAG_NAME, "main").text
    assert not browser.find_elements(By.ID, "all-desktops")
    assert f"refused user={world.EMAILS['ada']} from=127.0.0.1 reason=not an administrator path=/admin" in caplog.text
    assert "admin=yes" not in caplog.text
    no_secret_in(caplog.text, client_secret)


def test_an_unmapped_identity_signs_in_to_no_desktop_and_is_told_why(portal, browser, caplog):
    from selenium.webdriver.common.by import By
    url, client_secret = portal
    signed_in_by_the_provider(browser, url, "nobody@example.org")
    until(lambda: browser.find_elements(By.ID, "none"), "the portal, with no desktop")
    browser.save_screenshot(str(SHOTS / "vdesk-portal-oidc-unmapped.png"))
    assert shown_desktops(browser) == []
    assert "no stack on this host gives that address a desktop" in browser.find_element(By.ID, "message").text
    for name in world.DESKTOPS:
        browser.get(f"{url}/desktops/{name}")
        until(lambda: browser.find_elements(By.ID, "refused"), f"a refusal for {name}")
    no_secret_in(caplog.text, client_secret)


def test_the_policys_admin_address_signs_in_as_the_hosts_administrator(portal, browser, caplog):
    from selenium.webdriver.common.by import By
    url, client_secret = portal
    signed_in_by_the_provider(browser, url, ADMIN_EMAIL)
    until(lambda: browser.find_elements(By.ID, "administration"), "the administration link")
    browser.find_element(By.ID, "administration").click()
    until(lambda: browser.find_elements(By.ID, "all-desktops"), "the administration page")
    assert [e.get_attribute("id") for e in browser.find_elements(By.CSS_SELECTOR, "#all-desktops tr[id]")] == [
        f"all-{name}" for name in sorted(world.DESKTOPS)]
    assert [e.get_attribute("data-user") for e in browser.find_elements(By.CSS_SELECTOR, "tr.session")] == [
        ADMIN_EMAIL]
    assert f"signin user={ADMIN_EMAIL} from=127.0.0.1 result=ok desktops= via=oidc admin=yes" in caplog.text
    no_secret_in(caplog.text, client_secret)


def _session_cookie_body(value: str) -> dict:
    """What Starlette's signed session cookie holds (signed, not encrypted: so nothing secret may be in it)."""
    payload = value.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.mark.parametrize("changed, reason", [("state", "the provider's answer was refused (mismatching_state)"),
                                             ("nonce", "the ID token was refused (invalid_claim)")])
def test_a_changed_state_or_nonce_is_refused(portal, browser, caplog, changed, reason):
    from selenium.webdriver.common.by import By
    url, client_secret = portal
    with httpx.Client(base_url=url) as http:          # the portal's redirect, read before the browser follows it
        to_provider = http.get("/oidc/signin")
        assert to_provider.status_code == 302
        cookie = http.cookies[SESSION_COOKIE]
    location = to_provider.headers["location"]
    query = dict(parse_qsl(urlsplit(location).query))
    assert query["code_challenge_method"] == "S256" and query["client_id"] == CLIENT_ID
    assert {"state", "nonce", "code_challenge"} <= set(query)
    no_secret_in(location, client_secret)
    held = _session_cookie_body(cookie)
    assert all(set(v) == {"exp"} for k, v in held.items() if k.startswith("_state_")), held
    no_secret_in(json.dumps(held), query["nonce"])

    query[changed] = secrets.token_urlsafe(20)
    browser.get(url + "/signin")
    browser.delete_all_cookies()
    browser.add_cookie({"name": SESSION_COOKIE, "value": cookie, "path": "/"})
    browser.get(urlsplit(location)._replace(query=urlencode(query)).geturl())
    at_the_provider_sign_in(browser, world.EMAILS["ada"])
    until(lambda: browser.find_elements(By.ID, "refused"), f"the portal refuses a changed {changed}")
    assert browser.find_element(By.ID, "refused").text == "Sign-in refused"
    assert "Your sign-in was refused" in browser.find_element(By.TAG_NAME, "main").text
    code = dict(parse_qsl(urlsplit(browser.current_url).query)).get("code")
    assert code, "the provider answered with a code, which the portal refused to trust"
    assert f"signin via=oidc from=127.0.0.1 result=refused reason={reason}" in caplog.text
    assert "result=ok" not in caplog.text
    no_secret_in(caplog.text, client_secret, code)
    assert signed_out(url, browser)
