"""OpenID Connect in the portal, without a provider: how an address maps to desktops, and how its settings are checked.

The mapping grants only the desktops of the stack that declared the address (a rogue stack's record for
another stack's desktop is dropped by the owner check); the provider is the host administrator's, from
the policy file, and a bad one is refused with the field that is wrong. The sign-in itself, against a
real provider, is tests/integration/test_portal_oidc.py.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import textwrap
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.testclient import TestClient

from components.host import policy
from components.portal import accounts, inventory
from components.portal.app import create_app
from components.portal.oidc import Identity, OidcSignIn, SignInRefused, _PendingSignIns
from components.portal.serve import config_from
from components.portal.settings import OidcSettings, PortalSettings
from tests.support import portal_world as world

GOOD = {"issuer": "https://login.example.org/realms/staff", "client_id": "vdesk-portal",
        "client_secret_file": "/etc/vdesk/portal-oidc.secret"}


@pytest.fixture
def records(conn, tmp_path):
    world.build(conn, tmp_path)
    yield accounts.load(tmp_path / "portal")
    world.tear_down(conn)


def test_an_address_proves_the_desktops_its_stacks_map_it_to(records):
    assert accounts.by_email(records, "ada@example.org") == [("lab", "lab-ada"), ("rogue", "team-grace"),
                                                             ("team", "team-ada")]
    assert accounts.by_email(records, "ADA@Example.org") == accounts.by_email(records, "ada@example.org")
    assert accounts.by_email(records, "grace@example.org") == [("team", "team-grace")]
    for nobody in ("nobody@example.org", "", "ada", "ada@example.org@x", None):
        assert accounts.by_email(records, nobody) == []


def test_a_stack_mapping_an_address_to_another_stacks_desktop_grants_nothing(records):
    proven = accounts.by_email(records, "ada@example.org")
    shown = inventory.desktops_of(world.URI, "local", proven)
    assert [(d.stack, d.name) for d in shown] == [("lab", "lab-ada"), ("team", "team-ada")]
    with pytest.raises(inventory.NotYours):
        inventory.one_of(world.URI, "local", proven, "team-grace")


def test_a_record_keeps_only_its_users_addresses_and_refuses_an_odd_one(tmp_path):
    path = accounts.publish(tmp_path, "team", "team-ada", ["ada"], {}, {"ada": "ada@example.org",
                                                                        "eve": "eve@example.org"})
    assert json.loads(path.read_text())["emails"] == {"ada": "ada@example.org"}
    assert accounts.load(tmp_path)[0].emails == {"ada": "ada@example.org"}
    with pytest.raises(accounts.AccountError, match="not an email address"):
        accounts.publish(tmp_path, "team", "team-ada", ["ada"], {}, {"ada": "ada example.org"})


def test_an_old_record_without_addresses_still_loads(tmp_path):
    path = accounts.publish(tmp_path, "team", "team-ada", ["ada"], {})
    body = json.loads(path.read_text())
    del body["emails"]
    path.write_text(json.dumps(body))
    assert accounts.load(tmp_path)[0].emails == {} and accounts.by_email(accounts.load(tmp_path), "a@b.org") == []


@pytest.mark.parametrize("field, value, message", [
    ("issuer", "http://login.example.org", "must be https (plain http only on a loopback address)"),
    ("issuer", "login.example.org", "must be the provider's issuer URL"),
    ("issuer", "https://login.example.org/?x=1", "must be the provider's issuer URL"),
    ("client_id", "", "must be the client id"),
    ("client_id", "two words", "must be the client id"),
    ("client_secret_file", "portal.secret", "must be the absolute path of a file holding the secret"),
])
def test_bad_provider_settings_name_their_field(field, value, message):
    problems = OidcSettings(**{**GOOD, field: value}).problems("portal_oidc")
    assert [where for where, _ in problems] == [f"portal_oidc.{field}"]
    assert message in problems[0][1]
    assert OidcSettings(**GOOD).problems("portal_oidc") == []
    assert OidcSettings(**{**GOOD, "issuer": "http://127.0.0.1:4000"}).problems("portal_oidc") == []


def test_the_provider_is_the_administrators_policy(tmp_path):
    file = tmp_path / "policy.yaml"
    file.write_text(yaml.safe_dump({"portal_oidc": GOOD}))
    assert policy.load(file).portal_oidc == OidcSettings(**GOOD)
    assert policy.load(tmp_path / "absent.yaml").portal_oidc is None
    for bad, message in (({**GOOD, "issuer": "http://idp.example.org"}, "portal_oidc.issuer: must be https"),
                         ({**GOOD, "client_secret": "s3cret"}, "must be a mapping of exactly"),
                         ("https://idp.example.org", "must be a mapping of exactly")):
        file.write_text(yaml.safe_dump({"portal_oidc": bad}))
        with pytest.raises(policy.PolicyError, match=message):
            policy.load(file)


def test_the_portal_reads_its_provider_back_from_its_dir_without_the_secret(tmp_path):
    settings = PortalSettings(oidc=OidcSettings(**GOOD))
    (tmp_path / "settings.json").write_text(json.dumps({"libvirt_uri": world.URI, "host": "local",
                                                        "settings": dataclasses.asdict(settings)}))
    assert config_from(tmp_path).settings.oidc == OidcSettings(**GOOD)
    assert "portal-oidc.secret" in (tmp_path / "settings.json").read_text()     # its path; never its value
    assert PortalSettings(oidc={**GOOD, "issuer": "ftp://x"}).problems("p")[0][0] == "p.oidc.issuer"


def _run(coroutine):
    """On a loop of its own: asyncio.run would leave the thread without one, which Pulumi's tests want."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def test_a_flow_begun_here_is_forgotten_once_it_expires():
    now = [0.0]
    pending = _PendingSignIns(clock=lambda: now[0])
    _run(pending.set("_state_idp_a", "{}", 60))
    assert _run(pending.get("_state_idp_a")) == "{}"
    now[0] = 61
    assert _run(pending.get("_state_idp_a")) is None
    _run(pending.set("_state_idp_b", "{}", 10 ** 6))         # never longer than a sign-in may take
    now[0] += 601
    assert _run(pending.get("_state_idp_b")) is None


def test_a_callback_without_a_flow_begun_here_is_refused(conn, tmp_path, caplog):
    secret = tmp_path / "client.secret"
    secret.write_text("the-client-secret\n")
    settings = PortalSettings(oidc=OidcSettings(**{**GOOD, "client_secret_file": str(secret)}))
    assert OidcSignIn(settings.oidc).client.client_secret == "the-client-secret"
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(world.build(conn, tmp_path, settings))) as client:
        page = client.get("/oidc/callback?code=a-code-from-elsewhere&state=a-state-from-elsewhere")
        assert page.status_code == 403 and "Your sign-in was refused" in page.text
        assert client.get("/", follow_redirects=False).headers["location"] == "/signin"
        assert 'id="oidc-signin"' in client.get("/signin").text
        page = client.get("/oidc/callback?error=access_denied%0Asignin+user%3Dada+result%3Dok&state=x")
        assert page.status_code == 403 and "signin user=ada" not in page.text
    world.tear_down(conn)
    assert "result=refused reason=the provider's answer was refused (mismatching_state)" in caplog.text
    portal_lines = "\n".join(r.getMessage() for r in caplog.records if r.name != "httpx2")   # (not the test's client)
    assert "a-code-from-elsewhere" not in portal_lines and "the-client-secret" not in portal_lines
    assert "result=ok" not in portal_lines and "reason=the provider's answer was refused (OAuthError)" in portal_lines


def test_without_a_provider_there_is_no_oidc_sign_in(conn, tmp_path):
    with TestClient(create_app(world.build(conn, tmp_path))) as client:
        assert client.get("/oidc/signin").status_code == 404
        assert client.get("/oidc/callback?code=x&state=y").status_code == 404
        assert "oidc-signin" not in client.get("/signin").text
    world.tear_down(conn)


def test_the_readmes_provider_setting_is_one_vdesk_reads(tmp_path):
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    example = readme.split("identity provider is the administrator's too", 1)[1].split("```yaml\n", 1)[1]
    file = tmp_path / "policy.yaml"
    file.write_text(textwrap.dedent(example.split("```", 1)[0]))
    assert policy.load(file).portal_oidc == OidcSettings(**GOOD)


@pytest.mark.parametrize("answer, refusal", [
    ({}, "the provider sent no ID token"),
    ({"userinfo": {"sub": "1", "email": "ada@example.org", "email_verified": False}}, "not verified"),
    ({"userinfo": {"sub": "1", "email": "ada@example.org", "email_verified": "false"}}, "not verified"),
    ({"userinfo": {"sub": "1", "email": ""}}, "no `email`"),
])
def test_a_verified_answer_without_a_verified_address_signs_no_one_in(tmp_path, monkeypatch, answer, refusal):
    secret = tmp_path / "client.secret"
    secret.write_text("s")
    sign_in = OidcSignIn(OidcSettings(**{**GOOD, "client_secret_file": str(secret)}))

    async def verified(_request, **_kwargs):       # what authlib returns once state, signature and claims held
        return answer
    monkeypatch.setattr(sign_in.client, "authorize_access_token", verified)
    with pytest.raises(SignInRefused, match=refusal):
        _run(sign_in.finish(None))


def test_an_address_only_in_userinfo_counts_for_the_same_subject_only(tmp_path, monkeypatch):
    secret = tmp_path / "client.secret"
    secret.write_text("s")
    sign_in = OidcSignIn(OidcSettings(**{**GOOD, "client_secret_file": str(secret)}))

    async def verified(_request, **_kwargs):
        return {"access_token": "at", "userinfo": {"sub": "ada-id"}}
    monkeypatch.setattr(sign_in.client, "authorize_access_token", verified)
    for subject, outcome in (("ada-id", "ada@example.org"), ("eve-id", None)):
        async def userinfo(token, _subject=subject):
            return {"sub": _subject, "email": "ada@example.org"}
        monkeypatch.setattr(sign_in.client, "userinfo", userinfo)
        if outcome:
            assert _run(sign_in.finish(None)) == Identity(outcome)
        else:
            with pytest.raises(SignInRefused, match="another identity"):
                _run(sign_in.finish(None))


GROUPED = {**GOOD, "admin_groups": ["vdesk-admins"], "groups_claim": "roles", "groups_scope": "roles"}


@pytest.mark.parametrize("field, value", [("admin_groups", "vdesk-admins"), ("admin_groups", ["two words"]),
                                          ("admin_groups", [""]), ("admin_groups", [7]), ("groups_claim", ""),
                                          ("groups_claim", "a claim"), ("groups_scope", "groups roles")])
def test_bad_group_settings_name_their_field(field, value):
    assert [where for where, _ in OidcSettings(**{**GROUPED, field: value}).problems("portal_oidc")] == [
        f"portal_oidc.{field}"]
    assert OidcSettings(**GROUPED).problems("portal_oidc") == []


def test_the_policy_may_name_admin_groups_and_their_claim(tmp_path):
    file = tmp_path / "policy.yaml"
    file.write_text(yaml.safe_dump({"portal_oidc": GROUPED}))
    oidc = policy.load(file).portal_oidc
    assert oidc.admin_groups == ("vdesk-admins",) and (oidc.groups_claim, oidc.groups_scope) == ("roles", "roles")
    assert OidcSettings(**GOOD).admin_groups == () and OidcSettings(**GOOD).groups_claim == "groups"
    settings = PortalSettings(oidc=oidc)          # and back from the portal's settings.json
    assert PortalSettings(**json.loads(json.dumps(dataclasses.asdict(settings)))).oidc == oidc
    for bad in ({**GROUPED, "admin_groups": "vdesk-admins"}, {**GROUPED, "admin_group": ["x"]}):
        file.write_text(yaml.safe_dump({"portal_oidc": bad}))
        with pytest.raises(policy.PolicyError, match="portal_oidc"):
            policy.load(file)


@pytest.mark.parametrize("id_token, userinfo, groups", [
    ({"roles": ["vdesk-admins", "staff"]}, None, {"vdesk-admins", "staff"}),
    ({"roles": "vdesk-admins"}, None, {"vdesk-admins"}),
    ({}, {"sub": "ada-id", "roles": ["vdesk-admins"]}, {"vdesk-admins"}),        # UserInfo, same subject
    ({"roles": ["staff"]}, {"sub": "ada-id", "roles": ["vdesk-admins"]}, {"staff"}),   # the ID token prevails
    ({"roles": {"vdesk-admins": True}}, None, set()),                            # not a list of names
])
def test_the_groups_come_from_the_verified_claims_of_the_same_subject(tmp_path, monkeypatch, id_token, userinfo,
                                                                     groups):
    secret = tmp_path / "client.secret"
    secret.write_text("s")
    settings = OidcSettings(**{**GROUPED, "client_secret_file": str(secret)})
    sign_in = OidcSignIn(settings)
    assert sign_in.client.client_kwargs["scope"] == "openid email roles"

    async def verified(_request, **_kwargs):
        return {"access_token": "at", "userinfo": {"sub": "ada-id", "email": "ada@example.org", **id_token}}

    async def user_info(token):
        assert userinfo is not None, "UserInfo asked although the ID token had every claim"
        return userinfo
    monkeypatch.setattr(sign_in.client, "authorize_access_token", verified)
    monkeypatch.setattr(sign_in.client, "userinfo", user_info)
    identity = _run(sign_in.finish(None))
    assert identity == Identity("ada@example.org", frozenset(groups))
    assert settings.grants_admin(identity.groups) == ("vdesk-admins" in groups)


def test_groups_of_another_subject_in_userinfo_are_refused(tmp_path, monkeypatch):
    secret = tmp_path / "client.secret"
    secret.write_text("s")
    sign_in = OidcSignIn(OidcSettings(**{**GROUPED, "client_secret_file": str(secret)}))

    async def verified(_request, **_kwargs):
        return {"access_token": "at", "userinfo": {"sub": "ada-id", "email": "ada@example.org"}}

    async def user_info(token):
        return {"sub": "eve-id", "roles": ["vdesk-admins"]}
    monkeypatch.setattr(sign_in.client, "authorize_access_token", verified)
    monkeypatch.setattr(sign_in.client, "userinfo", user_info)
    with pytest.raises(SignInRefused, match="another identity"):
        _run(sign_in.finish(None))


def test_without_admin_groups_no_group_is_read_or_asked_for(tmp_path, monkeypatch):
    secret = tmp_path / "client.secret"
    secret.write_text("s")
    sign_in = OidcSignIn(OidcSettings(**{**GOOD, "client_secret_file": str(secret)}))
    assert sign_in.client.client_kwargs["scope"] == "openid email"

    async def verified(_request, **_kwargs):
        return {"userinfo": {"sub": "ada-id", "email": "ada@example.org", "groups": ["vdesk-admins"]}}
    monkeypatch.setattr(sign_in.client, "authorize_access_token", verified)
    assert _run(sign_in.finish(None)) == Identity("ada@example.org")
    assert not OidcSettings(**GOOD).grants_admin({"vdesk-admins"})


ISSUER = GOOD["issuer"]
SIGNING_KEY = RSAKey.generate_key(2048, parameters={"kid": "idp-key"})
ANOTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "idp-key"})       # same kid, not the issuer's key


def _id_token(flow_nonce: str, key=SIGNING_KEY, **changes) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "ada-at-idp", "aud": GOOD["client_id"], "iat": now, "exp": now + 300,
              "nonce": flow_nonce, "email": "ada@example.org", "email_verified": True, **changes}
    return jwt.encode({"alg": "RS256", "kid": "idp-key"}, claims, key)


@pytest.mark.parametrize("forged, refused", [
    ({}, None),
    ({"key": ANOTHER_KEY}, "the ID token was refused"),
    ({"aud": "another-client"}, "the ID token was refused"),      # (authlib: missing_claim, this client)
    ({"iss": "https://evil.example.org"}, "the ID token was refused (invalid_claim)"),
    ({"exp": int(time.time()) - 3600}, "the ID token was refused (expired_token)"),
    ({"nonce": "another-nonce"}, "the ID token was refused (invalid_claim)"),
])
def test_the_id_token_counts_only_if_the_issuer_signed_it_for_this_client_and_this_flow(
        conn, tmp_path, monkeypatch, caplog, forged, refused):
    """The provider's endpoints stand in (the real one is the integration test's); authlib's checks are real."""
    from authlib.integrations.starlette_client.apps import StarletteOAuth2App
    metadata = {"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/auth", "token_endpoint": f"{ISSUER}/token",
                "jwks": KeySet([SIGNING_KEY]).as_dict(private=False), "id_token_signing_alg_values_supported": ["RS256"]}
    sent = {}

    async def discovery(self):
        return metadata

    async def token_endpoint(self, redirect_uri=None, **params):
        assert params["code"] == "the-code" and params["code_verifier"]       # PKCE: the verifier goes back
        return {"access_token": "an-access-token", "token_type": "Bearer",
                "id_token": _id_token(sent["nonce"], **forged)}
    monkeypatch.setattr(StarletteOAuth2App, "load_server_metadata", discovery)
    monkeypatch.setattr(StarletteOAuth2App, "fetch_access_token", token_endpoint)
    secret = tmp_path / "client.secret"
    secret.write_text("s")
    settings = PortalSettings(oidc=OidcSettings(**{**GOOD, "client_secret_file": str(secret)}))
    caplog.set_level(logging.INFO, logger="vdesk.portal")
    with TestClient(create_app(world.build(conn, tmp_path, settings))) as client:
        to_provider = client.get("/oidc/signin", follow_redirects=False)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(to_provider.headers["location"]).query))
        sent["nonce"] = query["nonce"]
        page = client.get(f"/oidc/callback?code=the-code&state={query['state']}")
        home = client.get("/", follow_redirects=False)
    world.tear_down(conn)
    if refused is None:
        assert 'id="desktop-team-ada"' in page.text and home.status_code == 200
    else:
        assert page.status_code == 403 and refused in page.text and home.headers["location"] == "/signin"
        assert "result=ok" not in caplog.text


def test_up_starts_the_portal_with_the_policys_provider(tmp_path, monkeypatch):
    from components.host import resolve
    file = tmp_path / "policy.yaml"
    file.write_text(yaml.safe_dump({"portal_oidc": GOOD}))
    monkeypatch.setenv("VDESK_POLICY", str(file))
    started = {}
    monkeypatch.setattr("components.portal.service.ensure_running",
                        lambda portal_dir, settings, **_: started.update(dir=portal_dir, settings=settings))
    resolve._start_portal("local", world.URI, tmp_path / "console")
    assert started["dir"] == tmp_path / "portal" and started["settings"].oidc == OidcSettings(**GOOD)


@pytest.mark.parametrize("end_session, sent_to", [
    (None, "/signin"),                                                       # a provider without RP logout
    (f"{ISSUER}/logout", f"{ISSUER}/logout?client_id=vdesk-portal&post_logout_redirect_uri="
                         "http%3A%2F%2Ftestserver%2Fsignin"),
    (f"{ISSUER}/logout?realm=staff", f"{ISSUER}/logout?realm=staff&client_id=vdesk-portal&"
                                     "post_logout_redirect_uri=http%3A%2F%2Ftestserver%2Fsignin"),
    ("http://evil.example.org/logout", "/signin"),                           # not https: not followed
])
def test_signing_out_sends_the_browser_to_the_providers_end_session_endpoint_when_it_has_one(
        conn, tmp_path, monkeypatch, end_session, sent_to):
    from authlib.integrations.starlette_client.apps import StarletteOAuth2App
    metadata = {"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/auth", "token_endpoint": f"{ISSUER}/token",
                "jwks": KeySet([SIGNING_KEY]).as_dict(private=False), "id_token_signing_alg_values_supported": ["RS256"],
                **({"end_session_endpoint": end_session} if end_session else {})}
    sent = {}

    async def discovery(self):
        return metadata

    async def token_endpoint(self, redirect_uri=None, **params):
        return {"access_token": "an-access-token", "token_type": "Bearer", "id_token": _id_token(sent["nonce"])}
    monkeypatch.setattr(StarletteOAuth2App, "load_server_metadata", discovery)
    monkeypatch.setattr(StarletteOAuth2App, "fetch_access_token", token_endpoint)
    secret = tmp_path / "client.secret"
    secret.write_text("s")
    settings = PortalSettings(oidc=OidcSettings(**{**GOOD, "client_secret_file": str(secret)}))
    with TestClient(create_app(world.build(conn, tmp_path, settings))) as client:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(
            client.get("/oidc/signin", follow_redirects=False).headers["location"]).query))
        sent["nonce"] = query["nonce"]
        home = client.get(f"/oidc/callback?code=the-code&state={query['state']}")
        csrf = re.search(r'name="csrf" value="([^"]+)"', home.text).group(1)
        out = client.post("/signout", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == sent_to
        assert "eyJ" not in out.headers["location"]
        assert client.get("/", follow_redirects=False).headers["location"] == "/signin"
    world.tear_down(conn)
