"""pyproject.toml: the ranges a user installs, the pins this repository installs, and what the package holds."""
from __future__ import annotations

import ast
import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.project import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
COMPONENTS = REPO / "components"


def _by_name(requirements) -> dict[str, Requirement]:
    parsed = [Requirement(r) for r in requirements]
    return {canonicalize_name(r.name): r for r in parsed}


def test_every_pin_is_one_exact_version_inside_its_declared_range():
    extras = PROJECT["project"]["optional-dependencies"]
    ranges = _by_name(PROJECT["project"]["dependencies"] + [r for extra in extras.values() for r in extra])
    pins = _by_name(PROJECT["tool"]["vdesk"]["pinned"])
    assert sorted(pins) == sorted(ranges), "each runtime, extra and test dependency has exactly one pin"
    for name, pin in pins.items():
        [spec] = pin.specifier
        assert spec.operator == "==", f"{pin} is not an exact pin"
        assert ranges[name].specifier.contains(spec.version), f"{pin} is outside {ranges[name]}"


def test_the_runtime_dependencies_hold_no_test_tools_and_pulumi_is_a_range():
    runtime = _by_name(PROJECT["project"]["dependencies"])
    assert not {"pytest", "pytest-xdist", "hypothesis", "selenium", "matplotlib"} & set(runtime)
    assert str(runtime["pulumi"].specifier) == "<4,>=3.68"


def test_the_engine_build_reads_the_pulumi_pin():
    """tools/build-pulumi.sh takes the engine's version from the one `"pulumi==X"` line."""
    found = re.findall(r'^ *"pulumi==([0-9.]*)"', (REPO / "pyproject.toml").read_text(), re.M)
    [pin] = _by_name(PROJECT["tool"]["vdesk"]["pinned"])["pulumi"].specifier
    assert found == [pin.version]


def test_every_subpackage_of_components_is_in_the_installed_package():
    declared = set(PROJECT["tool"]["setuptools"]["packages"])
    found = {"vdesk" + "".join(f".{part}" for part in init.parent.relative_to(COMPONENTS).parts)
             for init in COMPONENTS.rglob("__init__.py")}
    assert found <= declared
    assert declared - found == {"vdesk.templates", "vdesk.tools"}


def test_code_inside_the_package_imports_itself_relatively():
    """Absolute `components.` imports would break the installed `vdesk`."""
    absolute = []
    for path in COMPONENTS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            absolute += [f"{path.relative_to(REPO)}:{node.lineno}" for n in names
                         if n == "components" or n.startswith("components.")]
    assert absolute == []


def test_every_shipped_file_is_in_the_checkout_and_in_the_package_data():
    data = PROJECT["tool"]["setuptools"]["package-data"]
    for path in COMPONENTS.rglob("*.py"):
        for relative in re.findall(r'shipped\("([^"]+)"\)', path.read_text()):
            assert (REPO / relative).exists(), f"{path.name} ships {relative}, which is not in the checkout"
            top, _, rest = relative.partition("/")
            assert f"vdesk.{top}" in data, f"{relative}: no package data for {top}/"
            assert rest == "" or any(re.fullmatch(p.replace("**/*", ".*").replace("*", "[^/]*"), rest)
                                     for p in data[f"vdesk.{top}"]), f"{relative} is not in the package data"
