"""A portal console link asks for noVNC's remote resize where the desktop's display follows the window."""
from __future__ import annotations

import urllib.parse

import pytest

from components.console.tokens import console_url
from components.portal import inventory
from tests.support import portal_world as world


@pytest.mark.parametrize("video, mode", [
    ({"model": "virtio"}, "remote"),
    ({"model": "virtio", "width": 1920, "height": 1080}, "remote"),
    ({"model": "vga"}, "scale"),
    ({"model": "qxl"}, "scale"),
    ({"model": "bochs"}, "scale"),
    (None, "scale"),
])
def test_the_resize_mode_follows_the_desktops_video_device(conn, video, mode):
    dom = world.define(conn, "resize-me", "team", True, **({"video": video} if video else {}))
    try:
        desk = inventory.Desktop("resize-me", "team", "running", "local")
        assert inventory.resize_of(world.URI, desk) == mode
    finally:
        dom.destroy()
        dom.undefine()


@pytest.mark.parametrize("mode", ["remote", "scale"])
def test_the_link_carries_the_resize_mode_to_novnc(mode):
    fragment = urllib.parse.parse_qs(urllib.parse.urlsplit(console_url("http://h:1", "d", "t", mode)).fragment)
    assert fragment["resize"] == [mode]


def test_the_default_link_still_scales_and_an_unknown_mode_is_refused():
    assert "resize=scale" in console_url("http://h:1", "d", "t")
    with pytest.raises(ValueError):
        console_url("http://h:1", "d", "t", "off&password=x")


def test_the_portal_link_of_a_virtio_desktop_asks_for_remote_resize(conn, tmp_path, monkeypatch):
    import re
    from starlette.testclient import TestClient
    from components.portal.app import create_app
    config = world.build(conn, tmp_path)
    world.believe_the_gateway(monkeypatch, config)
    try:
        old = conn.lookupByName("team-ada")                   # ada's desktop, as a graphical desktop has it
        old.destroy()
        old.undefine()
        world.define(conn, "team-ada", "team", True, video={"model": "virtio", "width": 1280, "height": 800})
        with TestClient(create_app(config)) as client:
            csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/signin").text).group(1)
            client.post("/signin", data={"user": "ada", "password": world.PASSWORDS["team", "ada"], "csrf": csrf})
            csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text).group(1)
            link = client.post("/desktops/team-ada/open", data={"csrf": csrf}, follow_redirects=False)
        fragment = urllib.parse.parse_qs(urllib.parse.urlsplit(link.headers["location"]).fragment)
        assert fragment["resize"] == ["remote"]
    finally:
        world.tear_down(conn)
