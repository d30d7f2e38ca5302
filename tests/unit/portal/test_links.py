"""A portal console link opens only with its person's console cookie; an administrator's link is not bound."""
from __future__ import annotations

import pytest

from components.console.tokens import Refused
from components.portal.links import CONSOLE_COOKIE, link_claims, refuse_unbound
from components.portal.people import Sessions


def test_a_link_needs_the_cookie_of_the_session_it_was_minted_for():
    sessions = Sessions(60)
    ada = sessions.get(sessions.open("ada", [("team", "team-ada")], "127.0.0.1"))
    grace = sessions.get(sessions.open("grace", [("team", "team-grace")], "127.0.0.1"))
    claims = link_claims(ada, "team", ada.since + 60)
    assert claims["per"] == "ada" and claims["stk"] == "team" and ada.bind not in str(claims)
    assert claims["until"] == int(ada.since + 60)                   # a console opened from it: that long
    refuse_unbound(claims, f"other=1; {CONSOLE_COOKIE}={ada.bind}")
    for cookies in (None, "", f"{CONSOLE_COOKIE}={grace.bind}", f"{CONSOLE_COOKIE}=", "other=1"):
        with pytest.raises(Refused, match="another person's session"):
            refuse_unbound(claims, cookies)


def test_a_link_from_make_console_is_not_bound():
    refuse_unbound({"sub": "team-ada"}, None)


def test_a_session_ends_on_sign_out_and_after_its_lifetime():
    now = [1000.0]
    sessions = Sessions(60, clock=lambda: now[0])
    sid = sessions.open("ada", [], "127.0.0.1")
    assert sessions.get(sid).user == "ada"
    now[0] += 61
    assert sessions.get(sid) is None
    sid = sessions.open("ada", [], "127.0.0.1")
    assert sessions.close(sid).user == "ada" and sessions.get(sid) is None and sessions.close(sid) is None

