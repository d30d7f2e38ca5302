"""Guest images: the golden Debian image vdesk builds, or a user's own disk image."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path

from ..errors import InputError
from ..paths import shipped

BUILD_IMAGE = shipped("tools/build-image.sh")


@dataclasses.dataclass(frozen=True)
class ImageFiles:
    """Local files that make up an image, and how it boots."""

    name: str
    disk: str
    boot: str                      # kernel | bios | uefi
    source_id: str                 # changes when the content changes
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None


def golden_image_dir() -> Path:
    """Where tools/build-image.sh keeps the image for the current recipe (built or not)."""
    out = subprocess.run([str(BUILD_IMAGE), "--print-path"], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


@dataclasses.dataclass(frozen=True)
class ImageSource:
    """What a stack declares: a golden image by name, or a file of the user's own and how it boots."""

    name: str
    golden: str | None
    path: str | None
    boot: str                      # kernel (golden) | bios | uefi


def resolve(image: ImageSource) -> ImageFiles:
    """The image's files on this machine (a stack's `images.<name>` entry has the same fields)."""
    if image.golden:
        folder = golden_image_dir()
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            raise InputError([(f"images.{image.name}.golden",
                               f"the {image.golden} image is not built yet ({folder}); run `make image`")])
        manifest = json.loads(manifest_path.read_text())
        return ImageFiles(image.name, str(folder / "disk.qcow2"), "kernel", manifest["recipe_hash"],
                          str(folder / "vmlinuz"), str(folder / "initrd.img"), manifest["kernel_cmdline"])
    stat = os.stat(image.path)
    return ImageFiles(image.name, os.path.abspath(image.path), image.boot,
                      f"{stat.st_size}-{int(stat.st_mtime)}")
