"""Fixtures for image recipes: a package index that answers from a list, a cache of our own."""
from __future__ import annotations

import json

import pytest

from components.images.recipe import Recipe


class FakeIndex:
    """What vdesk's copy of Debian's index would answer, from a fixed set of names."""

    def __init__(self, packages=(), virtual=None, closure=None):
        self.packages = set(packages)
        self.virtual = dict(virtual or {})
        self._closure = closure
        self.asked: list[str] = []

    def problem(self, name):
        self.asked.append(name)
        if name in self.packages:
            return None
        if name in self.virtual:
            return f"{name!r} is a virtual package in Debian bookworm: name one that provides it " \
                   f"({', '.join(self.virtual[name])})"
        return f"{name!r} is not a package of Debian bookworm (main, updates, security)"

    def required(self):
        return ["base-files"]

    def closure(self, packages):
        return frozenset(self._closure if self._closure is not None else packages)


class NoIndex:
    """An index that must not be asked (the image is built: its manifest is authoritative)."""

    def problem(self, name):
        raise AssertionError(f"the index was asked about {name!r}")

    def closure(self, packages):
        raise AssertionError("the index was asked for a closure")

    def required(self):
        raise AssertionError("the index was asked for the required packages")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty VDESK_CACHE: no image is built."""
    monkeypatch.setenv("VDESK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_build(recipe: Recipe, packages) -> dict:
    """Make the cache look as if the recipe's image were built, holding `packages`."""
    recipe.directory.mkdir(parents=True, exist_ok=True)
    manifest = {"name": recipe.name, "recipe_hash": recipe.hash, "recipe": recipe.as_dict(),
                "kernel_cmdline": "root=/dev/vda console=ttyS0", "build_seconds": 1, "disk_file_bytes": 1,
                "packages": [f"{p}=1.0" for p in packages]}
    (recipe.directory / "manifest.json").write_text(json.dumps(manifest))
    for name in ("disk.qcow2", "vmlinuz", "initrd.img"):
        (recipe.directory / name).write_bytes(b"x")
    return manifest
