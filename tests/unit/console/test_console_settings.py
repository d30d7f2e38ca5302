"""Console settings, remote-viewer files and the console CLI's choice of desktop."""
import configparser
import os
import stat

import pytest

from components.cli.console import pick
from components.console.settings import ConsoleSettings
from components.console.viewer import viewer_file, write_private
from components.errors import VdeskError


def test_default_settings_serve_this_machine_for_an_hour():
    s = ConsoleSettings()
    assert (s.bind, s.port, s.scheme, s.link_validity_s) == ("127.0.0.1", 0, "http", 3600)
    assert s.problems("console") == []


def test_settings_problems_name_their_field(tmp_path):
    s = ConsoleSettings(bind="localhost", port=70000, tls_cert=str(tmp_path / "none.pem"), link_validity_s=0)
    assert [f for f, _ in s.problems("hosts.local.console")] == [
        "hosts.local.console.bind", "hosts.local.console.port", "hosts.local.console.link_validity",
        "hosts.local.console.tls_cert"]
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    assert ConsoleSettings(tls_cert=str(cert)).scheme == "https"


def _parse(text):
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(text)
    return dict(ini["virt-viewer"])


def test_a_socket_display_opens_as_spice_over_its_unix_socket():
    text = viewer_file("ci (ci-ci)", display_uri="vnc+unix:///s/ci-ci.vnc", spice_uri="spice+unix:///s/ci-ci.spice",
                       password="Ab3%x")
    assert _parse(text) == {"type": "spice", "unix-path": "/s/ci-ci.spice", "password": "Ab3%x",
                            "title": "ci (ci-ci)", "delete-this-file": "0"}


def test_an_address_opens_as_vnc_without_spice_and_a_vnc_socket_alone_cannot():
    text = viewer_file("d", display_uri="vnc://127.0.0.1:5901", spice_uri=None, password="p")
    assert _parse(text)["type"] == "vnc" and _parse(text)["port"] == "5901"
    assert viewer_file("d", display_uri="vnc+unix:///s/d.vnc", spice_uri=None, password="p") is None


def test_private_files_are_0600_even_when_they_existed(tmp_path):
    path = tmp_path / "v" / "d.vv"
    path.parent.mkdir()
    path.write_text("old")
    os.chmod(path, 0o644)
    write_private(path, "new")
    assert path.read_text() == "new" and stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_console_cli_picks_the_named_or_only_desktop():
    assert pick({"ci": {"name": "ci-ci"}}, None) == ("ci", {"name": "ci-ci"})
    with pytest.raises(VdeskError, match="name a desktop: a, b"):
        pick({"a": {}, "b": {}}, None)
    with pytest.raises(VdeskError, match="no desktop 'c'"):
        pick({"a": {}}, "c")


def test_the_console_cli_prints_the_link_and_its_expiry(monkeypatch, capsys):
    from components.cli import console
    desktops = {"alice": {"name": "team-alice", "console": {"dir": "/x", "desktop": "team-alice"}}}
    monkeypatch.setattr(console, "fetch_outputs", lambda stack: {"desktops": desktops})
    seen = {}

    def link(desktop, *, valid_for_s=None):
        seen.update(desktop=desktop["name"], valid_for_s=valid_for_s)
        return "http://127.0.0.1:6080/vnc.html#path=x", 1_800_000_000

    monkeypatch.setattr(console, "console_link", link)
    assert console.main(["team", "alice", "--valid-for", "15m"]) == 0
    assert seen == {"desktop": "team-alice", "valid_for_s": 900}
    assert capsys.readouterr().out.splitlines() == [
        "desktop alice (team-alice): browser console, valid until 2027-01-15 08:00:00 UTC",
        "http://127.0.0.1:6080/vnc.html#path=x"]
    assert console.main(["team", "bob"]) == 1 and "no desktop 'bob'" in capsys.readouterr().err


def test_a_desktop_without_a_console_says_why():
    from components.cli.console import console_link
    with pytest.raises(VdeskError, match="has no browser console"):
        console_link({"name": "x", "console": None})
