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
