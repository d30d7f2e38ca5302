"""examples/desktop: a recipe image as a resource, a graphical desktop with autologin, previewed with mocks."""
from __future__ import annotations

import logging
import runpy
from pathlib import Path

import pulumi
import pytest

from components.host.resolve import ResolvedHost
from components.images.recipe import Recipe
from tests.unit.config.test_program import RENDERED, RecordingMocks, _fake_render, after
from tests.unit.images.conftest import FakeIndex, fake_build

PROGRAM = Path(__file__).resolve().parents[2] / "examples" / "desktop" / "__main__.py"
RECIPE = {"base": "debian12", "desktop": "xfce", "packages": ["build-essential", "git", "python3-venv", "vim"],
          "locale": "en_US.UTF-8", "keyboard": "us", "timezone": "Etc/UTC"}


@pytest.fixture
def mocks(monkeypatch, tmp_path):
    m = RecordingMocks()
    pulumi.runtime.set_mocks(m, project="vdesk-desktop", stack="demo", preview=True)
    monkeypatch.setenv("VDESK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("components.host.resolve.resolve_host", lambda name, uri, accel, probe_kernel, **_: ResolvedHost(
        name, "test:///default", "/run/netns/vdesk-unit", "qemu", "tcg requested explicitly", "/pools", "/displays"))
    monkeypatch.setattr("components.desktop.component.render_seed", _fake_render)
    monkeypatch.setattr("components.images.debian_index.shared_index",
                        lambda: FakeIndex({"build-essential", "git", "python3-venv", "vim"}))
    RENDERED.clear()
    return m


def _run(mocks, check):
    namespace = runpy.run_path(str(PROGRAM))
    return after(namespace["desk"].ip, lambda _: check(namespace))


@pulumi.runtime.test
def test_the_recipe_image_is_a_resource_and_the_desktop_is_graphical(mocks, caplog):
    caplog.set_level(logging.INFO)
    recipe = Recipe.parse(RECIPE, check_packages=False)

    def check(namespace):
        build = mocks.named("workstation-build")
        assert build["recipe"] == RECIPE and build["recipe_hash"] == recipe.hash
        assert f"image workstation: recipe {recipe.hash} not built yet: `up` builds it" in caplog.text
        # the image's volumes are named after the recipe hash and imported once
        assert mocks.named("workstation-main-disk")["name"] == f"demo-workstation-{recipe.hash}-disk.qcow2"
        vm = mocks.named("ada-vm")
        assert vm["video"] == {"model": "virtio", "width": 1280, "height": 800}
        assert vm["tablet"] is True and vm["vdagent"] is True and vm["boot"] == "kernel"
        ready = mocks.named("ada-ready")
        assert (ready["graphical"], ready["min_width"], ready["min_height"]) == (True, 1280, 800)
        assert {"session": "ada"} in ready["checks"]
        assert RENDERED["ada"]["graphical_session"] == {"session": "xfce", "autologin": "ada"}
        assert RENDERED["ada"]["profile"] == "developer"

    return _run(mocks, check)


@pulumi.runtime.test
def test_preview_says_a_built_recipe_is_reused(mocks, caplog):
    caplog.set_level(logging.INFO)
    recipe = Recipe.parse(RECIPE, check_packages=False)
    fake_build(recipe, RECIPE["packages"])

    def check(_):
        assert f"image workstation: recipe {recipe.hash} cached, reused" in caplog.text

    return _run(mocks, check)


def test_a_bad_recipe_fails_before_anything_is_declared(mocks):
    from components import Image, ImageArgs, InputError
    with pytest.raises(InputError) as err:
        Image("office", ImageArgs(recipe={"desktop": "kde", "packages": ["libreoffice-writr"],
                                          "timezone": "Europe/Berln"}))
    assert [f for f, _ in err.value.problems] == ["office.recipe.desktop", "office.recipe.timezone",
                                                  "office.recipe.packages[0]"]
    assert mocks.resources == []


def test_autologin_and_resolution_are_checked_against_the_image(mocks):
    from components import Desktop, DesktopArgs, Host, Image, ImageArgs, InputError, Network, NetworkArgs
    from components import StoragePool, StoragePoolArgs
    from components.desktop.settings import DesktopSettings
    from components.images.golden import ImageFiles
    host = Host.embedded("local", accelerator="tcg")
    console = Image("console", ImageArgs(files=ImageFiles("console", "/i/disk.qcow2", "kernel", "0" * 12,
                                                          "/i/vmlinuz", "/i/initrd.img", "root=/dev/vda")))
    args = DesktopArgs(image=console, pool=StoragePool("p", StoragePoolArgs(host=host)),
                       network=Network("n", NetworkArgs(host=host, cidr="10.9.0.0/24")),
                       autologin=True, resolution="1280*800")
    with pytest.raises(InputError) as err:
        Desktop("bad", args)
    assert err.value.problems == [      # (the declaration's own check first, then the image's)
        ("bad.resolution", "'1280*800' is not WIDTHxHEIGHT, e.g. 1280x800"),
        ("bad.autologin", "the image has no desktop environment to log in to (none): use an image whose recipe "
                          "names one, e.g. desktop: xfce")]
    args = DesktopArgs(image=console, pool=args.pool, network=args.network,
                       settings=DesktopSettings(autologin=False, resolution="320x200"))
    with pytest.raises(InputError) as err:
        Desktop("bad", args)
    assert err.value.problems == [("bad.resolution", "320x200 is outside 640x400..7680x4320")]


@pytest.mark.parametrize("kwargs, expected", [
    ({"autologin": True, "desktop": "xfce", "resolution": "1920x1080"}, []),
    ({"autologin": True, "desktop": "none"}, ["profiles.dev.autologin"]),
    ({"autologin": True, "desktop": None}, ["profiles.dev.autologin"]),
    ({"autologin": False, "desktop": None, "resolution": "800x600"}, []),
    ({"resolution": "wide"}, ["profiles.dev.resolution"]),
    ({"resolution": "99999x800"}, ["profiles.dev.resolution"]),
])
def test_session_problems_for_the_config_layer(kwargs, expected):
    from components.desktop.settings import DesktopSettings, session_problems
    desktop = kwargs.pop("desktop", "none")
    own = DesktopSettings.model_construct(**kwargs)      # (as written: a bad resolution is this check's to say)
    assert [f for f, _ in session_problems("profiles.dev", own, desktop=desktop)] == expected
