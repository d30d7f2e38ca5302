"""ImageBuild: a recipe image as a resource of the stack, built (or found in the cache) during `up`.

The image lives in the per-user cache ($VDESK_CACHE/images/<name>-<hash>/),
keyed by its recipe hash and shared by every stack that declares the same
recipe, so creating the resource builds the image only when no stack has
built it yet, and deleting it leaves the cache alone. A changed recipe is a
new hash, and so a new image (a replacement). `pulumi preview` never builds:
the Image component logs whether `up` will build or reuse it.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from ..errors import VdeskError
from ..images.golden import BUILD_IMAGE
from ..images.recipe import Recipe
from .provider import DeclaredProvider, Prop

log = logging.getLogger(__name__)

BUILD_TIMEOUT_S = 3 * 3600


def _hash_problem(value: str) -> str | None:
    return None if len(value) == 12 and all(c in "0123456789abcdef" for c in value) else "must be 12 hex digits"


def image_outputs(directory: Path, manifest: dict, *, reused: bool) -> dict:
    """What an ImageBuild reports: where the files are, how the image boots, what it cost."""
    return {
        "directory": str(directory),
        "disk": str(directory / "disk.qcow2"),
        "kernel": str(directory / "vmlinuz"),
        "initrd": str(directory / "initrd.img"),
        "cmdline": manifest["kernel_cmdline"],
        "manifest": str(directory / "manifest.json"),
        "package_count": len(manifest.get("packages", [])),
        "build_seconds": manifest.get("build_seconds"),
        "disk_file_bytes": manifest.get("disk_file_bytes"),
        "reused": reused,
    }


def build(recipe: Recipe, *, label: str = "") -> tuple[Path, dict, bool]:
    """Build the recipe's image unless the cache has it: (directory, manifest, reused).

    tools/build-image.sh writes its progress lines to stderr, which is passed
    through (Pulumi shows a provider's stderr as it comes); it serialises
    builds with a lock, so two stacks asking for one recipe build it once.
    """
    manifest = recipe.manifest()
    if manifest is not None:
        return recipe.directory, manifest, True
    started = time.monotonic()
    print(f"image {label or recipe.name}: building recipe {recipe.hash} ({recipe.to_json()})",
          file=sys.stderr, flush=True)
    try:
        proc = subprocess.run([str(BUILD_IMAGE), "--recipe", "-"], input=recipe.to_json(), text=True,
                              stdout=subprocess.PIPE, stderr=None, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise VdeskError(f"image {label or recipe.name}: the build took longer than {BUILD_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise VdeskError(f"image {label or recipe.name}: building recipe {recipe.hash} failed (exit "
                         f"{proc.returncode}); its log is {recipe.directory}.failed.log")
    lines = proc.stdout.strip().splitlines()
    directory = Path(lines[-1]) if lines else recipe.directory
    if directory != recipe.directory:
        raise VdeskError(f"image {label or recipe.name}: the build put the image in {directory}, "
                         f"expected {recipe.directory} (build scripts changed meanwhile?)")
    manifest = recipe.manifest()
    if manifest is None:
        raise VdeskError(f"image {label or recipe.name}: the build ended without a manifest in {directory}")
    print(f"image {label or recipe.name}: built in {time.monotonic() - started:.0f} s, "
          f"{manifest.get('disk_file_bytes', 0) / 2**20:.0f} MiB qcow2", file=sys.stderr, flush=True)
    return directory, manifest, False


class ImageBuildProvider(DeclaredProvider):
    PROPS = {
        "recipe": Prop(dict, required=True, replaces=True,
                       doc="{base, desktop, packages, locale, keyboard, timezone}, canonical"),
        "recipe_hash": Prop(str, required=True, replaces=True, validate=_hash_problem,
                            doc="hash of the recipe and the build scripts: a new hash is a new image"),
        "image": Prop(str, inert=True, doc="the image's name in the stack (for progress lines)"),
    }
    OUTPUTS = ("directory", "disk", "kernel", "initrd", "cmdline", "manifest", "package_count", "build_seconds",
               "disk_file_bytes", "reused")
    DELETE_BEFORE_REPLACE = False   # the cache keeps every image; nothing to make room for

    def check_more(self, inputs):
        recipe, wanted = inputs.get("recipe"), inputs.get("recipe_hash")
        if isinstance(recipe, dict) and isinstance(wanted, str):
            try:
                actual = Recipe.parse(recipe, check_packages=False).hash
            except Exception as exc:                            # noqa: BLE001 (reported, not raised)
                return [("recipe", f"recipe: {exc}")]
            if actual != wanted:
                return [("recipe_hash", f"recipe_hash {wanted} is not the recipe's hash {actual} "
                                        "(the build scripts changed since the program ran?)")]
        return []

    def create(self, props):
        recipe = Recipe.parse(props["recipe"], check_packages=False)
        directory, manifest, reused = build(recipe, label=props.get("image") or "")
        return CreateResult(directory.name, {**self.inputs_of(props),
                                             **image_outputs(directory, manifest, reused=reused)})

    def read(self, id_, props):
        """The image is there while its directory holds a manifest of this recipe; a cleaned cache
        reads as gone, so the next `up` builds it again."""
        recipe = Recipe.parse(props["recipe"], check_packages=False)
        manifest = recipe.manifest()
        if manifest is None:
            return ReadResult("", {})
        return ReadResult(id_, {**self.inputs_of(props),
                                **image_outputs(recipe.directory, manifest, reused=props.get("reused", True))})

    def update(self, _id, _olds, news):
        recipe = Recipe.parse(news["recipe"], check_packages=False)
        directory, manifest, reused = build(recipe, label=news.get("image") or "")
        return UpdateResult({**self.inputs_of(news), **image_outputs(directory, manifest, reused=reused)})

    def delete(self, _id, props):
        log.info("image %s: left in the cache (other stacks may use it)", props.get("image"))


class ImageBuild(Resource):
    """A recipe image: create builds it (or finds it in the shared cache)."""

    directory: pulumi.Output[str]
    disk: pulumi.Output[str]
    kernel: pulumi.Output[str]
    initrd: pulumi.Output[str]
    cmdline: pulumi.Output[str]
    manifest: pulumi.Output[str]

    def __init__(self, name: str, recipe: Recipe, *, image: str = "", opts=None):
        props = {"recipe": recipe.as_dict(), "recipe_hash": recipe.hash, "image": image or name}
        super().__init__(ImageBuildProvider(), name, ImageBuildProvider.resource_props("ImageBuild", props), opts)
