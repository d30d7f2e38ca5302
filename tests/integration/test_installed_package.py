"""vdesk as a Pulumi user gets it: `pip install` into a fresh venv, then a program outside the clone.

The wheel is built from a copy of the checkout (setuptools writes build/ beside its sources) with
the project's venv, offline. The fresh venv has nothing of the checkout on its path: it reaches the
runtime dependencies through a .pth naming the project venv's site-packages, so only `vdesk`, the
installed package, can answer `import vdesk` (and `components` cannot be imported at all).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.support.project import REPO

pytestmark = pytest.mark.integration

PROGRAM = REPO / "tests" / "fixtures" / "outside_program" / "__main__.py"
SOURCES = ("pyproject.toml", "README.md", "components", "templates", "tools")


def _run(*args, cwd: Path, timeout: float = 300) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
           "LANG": "C.UTF-8", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1",
           **{k: v for k, v in os.environ.items() if k in ("VDESK_CACHE", "VDESK_STATE")}}
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The python of a fresh venv with the checkout's wheel installed."""
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", source,
         cwd=root)
    [wheel] = (root / "dist").glob("vdesk-*.whl")
    fresh = root / "venv"
    venv.EnvBuilder(with_pip=False).create(fresh)
    python = fresh / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=root).strip())
    (site / "project-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel, cwd=root)
    return python


def test_the_installed_package_is_vdesk_with_its_files(installed, tmp_path):
    # (the share wrapper is the file root installs, root-owned, for the domains' virtiofsd: vdesk.rootexec)
    out = _run(installed, "-c", "import json, vdesk, vdesk.paths as p, vdesk.rootexec as r;"
               "import importlib.util as u;"
               "print(json.dumps([vdesk.__file__, str(p.shipped('templates')),"
               " str(p.shipped('tools/' + r.WRAPPERS['virtiofsd-rw'])),"
               " str(p.shipped('tools/build-image.sh')), u.find_spec('components') is None]))", cwd=tmp_path)
    package, templates, virtiofsd, build_image, no_components = json.loads(out)
    site = Path(package).parent.parent
    assert not Path(package).is_relative_to(REPO) and Path(package).parent.name == "vdesk"
    assert Path(templates) == site / "vdesk" / "templates" and (Path(templates) / "user-data" / "base.yaml.j2").is_file()
    assert os.access(virtiofsd, os.X_OK) and Path(virtiofsd).is_relative_to(site)
    assert os.access(build_image, os.X_OK) and (Path(build_image).parent / "image" / "recipe.py").is_file()
    assert no_components


def test_a_program_outside_the_clone_declares_a_desktop_through_vdesk(installed, tmp_path):
    project = tmp_path / "my-desktops"
    project.mkdir()
    shutil.copy2(PROGRAM, project / "__main__.py")
    disk = tmp_path / "own.img"
    disk.write_bytes(b"\0" * 65536)
    registered = json.loads(_run(installed, project / "__main__.py", disk, cwd=project))
    by_name = {r["name"]: r for r in registered}
    assert by_name["main"]["type"] == by_name["lan"]["type"] == "pulumi-python:dynamic:Resource"
    assert {r["type"] for r in registered} >= {"vdesk:index:Desktop", "vdesk:index:Image"}
    assert {"ada-disk", "ada-seed", "ada-vm", "ada-ready", "ada-credentials"} <= set(by_name)
    assert by_name["lan"]["inputs"]["cidr"] == "10.99.0.0/24"
    vm = by_name["ada-vm"]["inputs"]
    assert vm["name"] == "demo-ada" and vm["nics"][0]["network"] == "demo-lan"
    # the seed is rendered from the installed package's own templates
    user_data = by_name["ada-seed"]["inputs"]["user_data"]
    assert user_data.startswith("#cloud-config") and 'hostname: "ada"' in user_data and '- name: "ada"' in user_data
