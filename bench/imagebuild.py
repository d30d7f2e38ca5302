"""What a one-package recipe change costs against a full image build, measured one after the other.

Both builds run tools/build-image.sh, as `up` does, in a cache of the bench's own, so the full build is
really from debootstrap (no base layer, no image); the downloaded .debs are shared with the user's cache
(hard links), so neither build pays for downloads the machine already made. First the recipe as
given (full: debootstrap, the base layer, the recipe's part, the disk), then the same recipe with one
package more (the base layer reused: the package, customize.sh, the disk).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from components.images.golden import BUILD_IMAGE
from components.images.recipe import Recipe
from components.paths import cache_dir

from .wholestack import progress

PACKAGE = "hello"           # small, with no dependencies of its own beyond the base
BUILD_TIMEOUT_S = 3 * 3600


def _build(cache: Path, recipe: Recipe, log: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run([str(BUILD_IMAGE), "--recipe", "-"], input=recipe.to_json(), text=True,
                              stdout=subprocess.PIPE, stderr=out, env={**os.environ, "VDESK_CACHE": str(cache)},
                              timeout=BUILD_TIMEOUT_S)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"building {recipe.to_json()} failed (exit {proc.returncode}); see {log}")
    manifest = json.loads((Path(proc.stdout.strip().splitlines()[-1]) / "manifest.json").read_text())
    return seconds, manifest


def measure(logs: Path, recipe: Recipe | None = None, package: str = PACKAGE) -> dict:
    """Full build of `recipe`, then the same recipe plus `package`; times, and the ratio."""
    base = recipe or Recipe()
    more = Recipe.parse({**base.as_dict(), "packages": [*base.packages, package]}, check_packages=False)
    root = Path(tempfile.mkdtemp(prefix="vdesk-bench-images-", dir="/var/tmp"))
    try:
        shared = (cache_dir() / "apt-archives").resolve()
        if shared.is_dir():
            subprocess.run(["cp", "-al", str(shared), str(root / "apt-archives")], check=True)
        load_before = os.getloadavg()
        progress(f"image: full build of {base.to_json()} (from debootstrap) ...")
        full_s, full = _build(root, base, logs / "image-full.log")
        progress(f"image: full build {full_s:.1f}s; now the same recipe plus {package} ...")
        delta_s, delta = _build(root, more, logs / "image-one-package.log")
        progress(f"image: one-package build {delta_s:.1f}s")
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    added = sorted(set(delta["packages"]) - set(full["packages"]))
    return {
        "recipe": base.as_dict(), "package": package,
        "full_s": round(full_s, 1), "one_package_s": round(delta_s, 1),
        "ratio_one_package_vs_full": round(delta_s / full_s, 3),
        "layer_reused": delta.get("layer_reused"), "packages_added": added,
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
    }


def line(result: dict) -> str:
    return (f"image: one-package recipe change (+{result['package']}) {result['one_package_s']} s vs full build "
            f"{result['full_s']} s = {result['ratio_one_package_vs_full']:.2f}x (target < 0.33x); base layer "
            f"reused: {result['layer_reused']}; packages added: {', '.join(result['packages_added']) or 'none'}")
