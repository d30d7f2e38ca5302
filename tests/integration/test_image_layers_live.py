"""A recipe that gains one package is built on the cached base layer, and its image is the base recipe's
image plus that package's files: nothing else added, removed or changed but dpkg's own record.

Builds two console images with tools/build-image.sh in a cache of the test's own (root, a Debian mirror;
the downloaded .debs are shared with the user's cache through hard links): minutes, no guest is booted.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from components.images import rootfs
from components.images.golden import BUILD_IMAGE
from components.images.recipe import Recipe
from components.paths import cache_dir

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("debootstrap"),
                       reason="building an image needs root and debootstrap"),
]

PACKAGE = "hello"        # small, and nothing else depends on it or comes with it
BUILD_TIMEOUT_S = 3600


def _build(cache: Path, recipe: Recipe) -> dict:
    proc = subprocess.run([str(BUILD_IMAGE), "--recipe", "-"], input=recipe.to_json(), text=True,
                          capture_output=True, env={**os.environ, "VDESK_CACHE": str(cache)},
                          timeout=BUILD_TIMEOUT_S)
    failed_log = cache / "images" / f"{recipe.name}-{recipe.hash}.failed.log"
    assert proc.returncode == 0, proc.stderr[-2000:] + (failed_log.read_text()[-3000:] if failed_log.exists() else "")
    folder = Path(proc.stdout.strip().splitlines()[-1])
    return json.loads((folder / "manifest.json").read_text()) | {"directory": str(folder), "log": proc.stderr}


def _files(disk: Path, work: Path, read: str = "") -> tuple[dict[str, tuple], str]:
    """Every path of the image's filesystem (its kind, owner, mode, and a file's digest or a link's
    target), and the text of the file `read`."""
    work.mkdir(parents=True)
    tree = work / "tree"
    rootfs.extract_ext4(disk, tree, work)
    found = {}
    for top, dirs, files in os.walk(tree):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if os.path.islink(path):
                found[os.path.relpath(path, tree)] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                found[os.path.relpath(path, tree)] = ("dir", st.st_mode, st.st_uid, st.st_gid)
            else:
                with open(path, "rb") as fh:
                    digest = hashlib.file_digest(fh, "sha256").hexdigest()
                found[os.path.relpath(path, tree)] = ("file", st.st_mode, st.st_uid, st.st_gid, digest)
    text = (tree / read).read_text() if read and (tree / read).is_file() else ""
    shutil.rmtree(work)
    return found, text


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The console recipe, then the same recipe with one package more, in a cache of their own."""
    cache = tmp_path_factory.mktemp("image-cache")
    shared_debs = (cache_dir() / "apt-archives").resolve()
    if shared_debs.is_dir():
        subprocess.run(["cp", "-al", str(shared_debs), str(cache / "apt-archives")], check=True)
    base, more = Recipe(), Recipe(packages=(PACKAGE,))
    first = _build(cache, base)
    second = _build(cache, more)
    yield first, second, tmp_path_factory.mktemp("trees")
    shutil.rmtree(cache, ignore_errors=True)


def test_the_second_build_reuses_the_first_ones_base_layer(built):
    first, second, _ = built
    assert first["layer"] == second["layer"]
    assert second["layer_reused"] is True
    assert "debootstrap" not in second["log"], "the one-package build ran debootstrap again"


def test_the_package_is_in_the_image_and_nothing_else_changed_in_its_packages(built):
    first, second, _ = built
    added = set(second["packages"]) - set(first["packages"])
    assert [p.split("=")[0] for p in added] == [PACKAGE]
    assert set(first["packages"]) <= set(second["packages"])
    same = ("kernel_version", "kernel_cmdline", "cloud_init_version", "boot", "firmware", "disk_virtual_bytes")
    assert {k: first[k] for k in same} == {k: second[k] for k in same}


def test_the_image_is_the_base_image_plus_the_packages_files(built):
    first, second, work = built
    dpkg_list = f"var/lib/dpkg/info/{PACKAGE}.list"
    before, _ = _files(Path(first["directory"]) / "disk.qcow2", work / "before")
    after, listed = _files(Path(second["directory"]) / "disk.qcow2", work / "after", read=dpkg_list)
    assert f"usr/bin/{PACKAGE}" in after
    assert not set(before) - set(after), "the one-package image lost files"
    own = {line.lstrip("/") for line in listed.splitlines()} | {dpkg_list, f"var/lib/dpkg/info/{PACKAGE}.md5sums"}
    assert sorted(set(after) - set(before) - own) == []
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    assert changed == ["var/lib/dpkg/status"]
