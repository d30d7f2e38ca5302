"""A console link asks noVNC for a remote resize where the desktop's display can follow the window.

qemu 7.2's VNC server takes noVNC's SetDesktopSize and gives the size to the video device as its preferred
mode; only virtio-gpu tells the guest, so a desktop whose live primary video is virtio gets resize=remote,
every other resize=scale (the picture fitted to the window). Read from the live XML on libvirt's test driver.
"""
import urllib.parse

import pytest

from components.console import tokens
from components.console.resize import resize_of
from tests.support import portal_world as world

URI = "test:///default"


def fragment_of(url: str) -> dict:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).fragment))


@pytest.fixture
def desktops(conn):
    """Running desktops: one per video adapter, and one with libvirt's default (none declared)."""
    made = [world.define(conn, "desk-virtio", "team", True, video={"model": "virtio", "width": 1280, "height": 800}),
            world.define(conn, "desk-vga", "team", True, video={"model": "vga"}),
            world.define(conn, "desk-default", "team", True)]
    yield
    for dom in made:
        dom.destroy()
        dom.undefine()


@pytest.mark.parametrize("desktop, mode", [("desk-virtio", "remote"), ("desk-vga", "scale"),
                                           ("desk-default", "scale"), ("no-such-desktop", "scale")])
def test_the_mode_follows_the_live_primary_video(desktops, desktop, mode):
    assert resize_of(URI, desktop) == mode


def test_a_host_that_does_not_answer_gives_a_scaled_link():
    assert resize_of("qemu+unix:///system?socket=/nonexistent/libvirt-sock", "desk-virtio") == "scale"


@pytest.mark.parametrize("mode", tokens.RESIZE_MODES)
def test_the_link_carries_the_mode(mode):
    url = tokens.console_url("http://127.0.0.1:6080", "desk", "tok", mode)
    assert fragment_of(url)["resize"] == mode
    assert fragment_of(tokens.console_url("http://127.0.0.1:6080", "desk", "tok"))["resize"] == "scale"


def test_a_mode_noVNC_does_not_know_is_refused():
    with pytest.raises(ValueError, match="not a noVNC resize mode"):
        tokens.console_url("http://127.0.0.1:6080", "desk", "tok", "off")


def test_the_console_command_asks_for_a_remote_resize_on_virtio(tmp_path, monkeypatch, desktops):
    from components.cli import console
    tokens.signing_key(tmp_path, create=True)
    (tmp_path / "settings.json").write_text(f'{{"settings": {{}}, "libvirt_uri": "{URI}"}}')
    monkeypatch.setattr(console, "SETTINGS_FILE", "settings.json")
    monkeypatch.setattr(console.service, "ensure_running", lambda *a, **k: "http://127.0.0.1:6080")
    for desktop, mode in (("desk-virtio", "remote"), ("desk-vga", "scale")):
        url, _ = console.console_link({"name": desktop, "console": {"dir": str(tmp_path), "desktop": desktop,
                                                                    "stack": "team"}})
        assert fragment_of(url)["resize"] == mode
