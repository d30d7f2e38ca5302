"""The background image builds of a test session: which recipes, in which order, and when none."""
from __future__ import annotations

import types

from components.images.recipe import Recipe
from tests.support import prebuild


def module(*recipes):
    return types.SimpleNamespace(IMAGE_RECIPES=list(recipes))


def test_recipes_are_wanted_in_the_order_the_tests_need_them_each_once():
    xfce = {"desktop": "xfce", "packages": ["git"]}
    tree = {"base": "debian12", "packages": ["tree"]}
    wanted = prebuild.wanted([module(xfce), types.SimpleNamespace(), module(tree, {"packages": ["git"],
                                                                                 "desktop": "xfce"})])
    assert [r.hash for r in wanted] == [Recipe.parse(xfce).hash, Recipe.parse(tree).hash]


def test_nothing_starts_when_every_image_is_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(Recipe, "manifest", lambda self: {"recipe_hash": self.hash})
    assert prebuild.start([module({"packages": ["tree"]})]) is None


def test_nothing_starts_when_turned_off(monkeypatch):
    monkeypatch.setenv("VDESK_PREBUILD", "0")
    monkeypatch.setattr(Recipe, "manifest", lambda self: None)
    assert prebuild.start([module({"packages": ["tree"]})]) is None


def test_a_failed_build_is_reported_with_its_log(tmp_path, monkeypatch):
    """A build that fails is named in the summary; the tests that need the image build it themselves."""
    monkeypatch.setattr(Recipe, "manifest", lambda self: None)
    monkeypatch.setattr(prebuild, "BUILD_IMAGE", "false")       # a build script that fails at once
    job = prebuild.Prebuild([Recipe.parse({"packages": ["tree"]})], tmp_path / "log").start()
    job.thread.join(timeout=60)
    assert not job.thread.is_alive() and job.done == []
    assert "FAILED debian12-" in job.summary() and str(tmp_path / "log") in job.summary()


def test_modules_needing_no_image_build_run_first_in_their_own_order():
    golden_a, xfce, golden_b = module(), module({"desktop": "xfce"}), types.SimpleNamespace()
    items = [types.SimpleNamespace(module=m, name=n) for m, n in
             [(xfce, "console-1"), (xfce, "console-2"), (golden_a, "checks-1"), (golden_b, "lab-1"),
              (golden_a, "checks-2"), (types.SimpleNamespace(), "no-module")]]
    items[-1].module = None
    ordered = [item.name for item in prebuild.needing_no_build_first(items)]
    assert ordered == ["checks-1", "lab-1", "checks-2", "no-module", "console-1", "console-2"]
