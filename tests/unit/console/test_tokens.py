"""Console links: tokens name one desktop and expire; the password never leaves the URL fragment."""
import logging
import os
import stat
import time
import urllib.parse

import jwt
import pytest

from components.console import tokens
from components.console.gateway import _Redact
from components.console.tokens import Refused


@pytest.fixture
def key(tmp_path):
    return tokens.signing_key(tmp_path, create=True)


def test_the_signing_key_is_made_once_and_only_its_owner_reads_it(tmp_path):
    first = tokens.signing_key(tmp_path, create=True)
    assert tokens.signing_key(tmp_path, create=True) == first and len(first) == 32
    assert stat.S_IMODE(os.stat(tmp_path / tokens.KEY_FILE).st_mode) == 0o600


def test_a_token_grants_its_own_desktop_until_it_expires(key):
    token, expires = tokens.mint(key, "ci-ci", 60)
    grant = tokens.verify(key, token, "ci-ci")
    assert grant.desktop == "ci-ci" and grant.expires == expires and abs(expires - time.time() - 60) < 2
    assert grant.link and grant.link not in token.split(".")[2]


@pytest.mark.parametrize("case,reason", [
    ("another desktop's", "a token for another desktop"),
    ("expired", "expired token"),
    ("forged", "invalid token (InvalidSignatureError)"),
    ("garbage", "invalid token (DecodeError)"),
    ("missing", "no token"),
    ("without expiry", "invalid token (MissingRequiredClaimError)"),
    ("another audience", "invalid token (InvalidAudienceError)"),
])
def test_the_gateway_refuses(key, case, reason):
    token = {
        "another desktop's": lambda: tokens.mint(key, "ci-other", 60)[0],
        "expired": lambda: tokens.mint(key, "ci-ci", 60, now=time.time() - 61)[0],
        "forged": lambda: tokens.mint(b"k" * 32, "ci-ci", 60)[0],
        "garbage": lambda: "not.a.token",
        "missing": lambda: None,
        "without expiry": lambda: jwt.encode({"iss": "vdesk", "aud": "vdesk-console", "sub": "ci-ci", "iat": 1,
                                              "jti": "x"}, key, algorithm="HS256"),
        "another audience": lambda: jwt.encode({"iss": "vdesk", "aud": "else", "sub": "ci-ci", "iat": 1, "jti": "x",
                                                "exp": time.time() + 60}, key, algorithm="HS256"),
    }[case]()
    with pytest.raises(Refused) as refused:
        tokens.verify(key, token, "ci-ci")
    assert str(refused.value) == reason
    assert token is None or token not in str(refused.value)


def test_the_url_holds_the_token_in_the_fragment_and_no_password(key):
    token, _ = tokens.mint(key, "ci-ci", 60)
    url = tokens.console_url("http://127.0.0.1:6080", "ci-ci", token)
    parts = urllib.parse.urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path, parts.query) == ("http", "127.0.0.1:6080", "/vnc.html", "")
    fragment = dict(urllib.parse.parse_qsl(parts.fragment))
    assert "password" not in fragment and fragment["autoconnect"] == "1"
    # noVNC opens ws://<page host>/<path>: the token goes to the gateway, the password does not
    ws_path = urllib.parse.urlsplit("/" + fragment["path"])
    assert ws_path.path == "/websockify"
    assert dict(urllib.parse.parse_qsl(ws_path.query)) == {"desktop": "ci-ci", "token": token}


def test_log_lines_never_carry_a_token(key):
    token, _ = tokens.mint(key, "ci-ci", 60)
    record = logging.LogRecord("websocket", logging.INFO, __file__, 1, "127.0.0.1: Path: '%s'", (
        f"/websockify?desktop=ci-ci&token={token}",), None)
    assert _Redact().filter(record)
    assert token not in record.getMessage() and "token=<redacted>" in record.getMessage()
    bare = logging.LogRecord("x", logging.INFO, __file__, 1, "seen %s", (token,), None)
    _Redact().filter(bare)
    assert token not in bare.getMessage()


@pytest.mark.parametrize("value, logged", [
    ("dev-dev", "dev-dev"), (None, "-"),
    ("x from=10.0.0.1 reason=ok\n2026-01-01T00:00:00Z vdesk.console connect desktop=dev-dev",
     '"x from=10.0.0.1 reason=ok\\n2026-01-01T00:00:00Z vdesk.console con..."'),
    ("\u202eevil\x1b[2J", '"\\u202eevil\\u001b[2J"'),
])
def test_a_refused_desktop_name_cannot_forge_a_log_line_or_field(value, logged):
    from components.console.gateway import shown
    assert shown(value) == logged and "\n" not in shown(value)


def test_an_open_session_ends_at_its_expiry_or_a_portal_links_sign_in_end(key):
    """A `make console` link's session never outlives the link; a portal link (opened within minutes of its
    minting) keeps its console open until `until`, its person's sign-in end, and never past the longest link."""
    now = time.time()
    plain = tokens.verify(key, tokens.mint(key, "team-ada", 300)[0], "team-ada")
    assert plain.session_ends == plain.expires
    portal = tokens.verify(key, tokens.mint(key, "team-ada", 300, extra={"until": int(now + 8 * 3600)})[0], "team-ada")
    assert portal.expires < now + 301 and portal.session_ends == int(now + 8 * 3600)
    far = tokens.verify(key, tokens.mint(key, "team-ada", 300, extra={"until": int(now + 30 * 86400)})[0], "team-ada")
    assert far.session_ends == far.issued + tokens.MAX_LINK_VALIDITY_S
    with pytest.raises(tokens.Refused, match="until"):
        tokens.verify(key, tokens.mint(key, "team-ada", 300, extra={"until": "forever"})[0], "team-ada")
