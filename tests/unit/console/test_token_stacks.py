"""Console tokens are a stack's: the gateway serves a link only for a desktop its own stack owns.

On a shared host, stack B's console command signs with the same host key as stack A's. A token B mints for
A's desktop (by its libvirt name) is refused by the gateway, which reads the desktop's owner metadata on
libvirt's test driver; A's own token is served.
"""
import pytest

from components import xmlmodel
from components.console import tokens
from components.console.gateway import ConsoleTokens
from components.console.tokens import Refused

URI = "test:///default"


@pytest.fixture
def team_a_desktop(conn):
    """Stack team-a's running desktop, its VNC on a socket."""
    dom = conn.defineXML(xmlmodel.Domain(
        type="test", name="team-a-ann", memory_kib=65536, vcpus=1, os_type="hvm", arch="x86_64",
        owner=xmlmodel.Owner(stack="team-a", resource="team-a-ann"),
        graphics=[xmlmodel.Graphics(type="vnc", listen_type="socket", listen_socket="/run/ann.sock")]).to_xml())
    dom.create()
    yield dom
    dom.destroy()
    dom.undefine()


def _gateway_grant(tmp_path, token):
    plugin = ConsoleTokens(str(tmp_path), URI, None)
    grant = plugin.grant(token, "team-a-ann")
    return plugin.display_of(grant)


def test_a_token_names_the_stack_it_was_minted_for(tmp_path):
    key = tokens.signing_key(tmp_path, create=True)
    token, _ = tokens.mint(key, "team-a-ann", 60, stack="team-b")
    assert tokens.verify(key, token, "team-a-ann").stack == "team-b"


@pytest.mark.parametrize("stack", ["team-b", ""])
def test_another_stacks_token_for_a_desktop_is_refused_by_the_gateway(tmp_path, team_a_desktop, stack):
    key = tokens.signing_key(tmp_path, create=True)
    token, _ = tokens.mint(key, "team-a-ann", 60, stack=stack)
    with pytest.raises(Refused, match="a token of another stack"):
        _gateway_grant(tmp_path, token)


def test_the_owners_token_is_served(tmp_path, team_a_desktop):
    key = tokens.signing_key(tmp_path, create=True)
    token, _ = tokens.mint(key, "team-a-ann", 60, stack="team-a")
    assert _gateway_grant(tmp_path, token) == ("unix_socket", "/run/ann.sock", None)   # (no display password)


def test_the_console_command_mints_for_the_stack_of_the_desktops_outputs(tmp_path, monkeypatch):
    from components.cli import console
    tokens.signing_key(tmp_path, create=True)
    (tmp_path / "settings.json").write_text('{"settings": {}, "libvirt_uri": "test:///default"}')
    monkeypatch.setattr(console, "SETTINGS_FILE", "settings.json")
    monkeypatch.setattr(console.service, "ensure_running", lambda *a, **k: "http://127.0.0.1:6080")
    url, _ = console.console_link({"name": "team-a-ann", "console": {"dir": str(tmp_path), "desktop": "team-a-ann",
                                                                      "stack": "team-a"}})
    token = url.split("token%3D", 1)[1].split("&", 1)[0].split("%26", 1)[0]
    assert tokens.verify(tokens.signing_key(tmp_path), token, "team-a-ann").stack == "team-a"


def test_another_stacks_stopped_desktop_is_refused_as_another_stacks_not_as_stopped(tmp_path, team_a_desktop):
    team_a_desktop.destroy()
    try:
        key = tokens.signing_key(tmp_path, create=True)
        with pytest.raises(Refused, match="a token of another stack"):
            _gateway_grant(tmp_path, tokens.mint(key, "team-a-ann", 60, stack="team-b")[0])
        with pytest.raises(Refused, match="not running"):
            _gateway_grant(tmp_path, tokens.mint(key, "team-a-ann", 60, stack="team-a")[0])
    finally:
        team_a_desktop.create()
