"""Image recipes: every problem named by its field, and a hash that is stable and follows the recipe."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess

import pytest

from components.errors import InputError
from components.images.recipe import CONSOLE, Recipe, build_recipe, recipe_problems
from tests.support.project import REPO
from tests.unit.images.conftest import FakeIndex, NoIndex, fake_build

INDEX = FakeIndex({"git", "vim", "libreoffice-writer", "firefox-esr"}, virtual={"awk": ["gawk", "mawk"]})
P = "images.office.recipe"


@pytest.mark.parametrize("recipe, expected", [
    ({"desktop": "kde"}, [(f"{P}.desktop", "'kde' is not a desktop environment vdesk builds "
                                           "(known: none, lxqt, xfce)")]),
    ({"base": "debian11"}, [(f"{P}.base", "'debian11' is not a base vdesk builds (known: debian12)")]),
    ({"locale": "de_DE.utf8x!"}, [(f"{P}.locale", "'de_DE.utf8x!' is not a locale name such as en_US.UTF-8")]),
    ({"locale": "german"}, [(f"{P}.locale", "'german' is not a locale name such as en_US.UTF-8")]),
    ({"locale": "xx_YY.UTF-8"}, [(f"{P}.locale", "'xx_YY.UTF-8' is not a locale Debian's locales package supports")]),
    ({"timezone": "Europe/Berln"}, [(f"{P}.timezone", "'Europe/Berln' is not a time zone of the tz database "
                                                      "(did you mean Europe/Berlin")]),
    ({"timezone": "../etc/passwd"}, [(f"{P}.timezone", "'../etc/passwd' is not a time zone name such as")]),
    ({"timezone": "Berlin Time"}, [(f"{P}.timezone", "'Berlin Time' is not a time zone name such as")]),
    ({"keyboard": "German"}, [(f"{P}.keyboard", "'German' is not an XKB keyboard layout such as us, de")]),
    ({"keyboard": "zz"}, [(f"{P}.keyboard", "'zz' is not an XKB keyboard layout")]),
    ({"keyboard": "de(nosuchvariant)"}, [(f"{P}.keyboard", "layout 'de' has no variant 'nosuchvariant'")]),
    ({"packages": ["git", "libreoffice-writr"]},
     [(f"{P}.packages[1]", "'libreoffice-writr' is not a package of Debian bookworm")]),
    ({"packages": ["awk"]}, [(f"{P}.packages[0]", "'awk' is a virtual package in Debian bookworm: name one that "
                                                  "provides it (gawk, mawk)")]),
    ({"packages": ["Git Tools"]}, [(f"{P}.packages[0]", "'Git Tools' is not a Debian package name")]),
    ({"packages": "git"}, [(f"{P}.packages", "must be a list of Debian package names, got str")]),
    ({"flavour": "lite"}, [(f"{P}.flavour", "unknown field (fields: base, desktop, packages, locale, keyboard, "
                                            "timezone, firmware)")]),
    ({"desktop": 3}, [(f"{P}.desktop", "must be a non-empty string, got 3")]),
    # several at once, each with its field
    ({"desktop": "kde", "locale": "x", "timezone": "Mars/Olympus", "packages": ["nope"]},
     [(f"{P}.desktop", "'kde' is not a desktop"), (f"{P}.locale", "'x' is not a locale name"),
      (f"{P}.timezone", "'Mars/Olympus' is not a time zone"), (f"{P}.packages[0]", "'nope' is not a package")]),
], ids=lambda v: str(v)[:40])
def test_recipe_problems_name_the_field(cache, recipe, expected):
    problems = recipe_problems(recipe, P, index=INDEX)
    assert [field for field, _ in problems] == [field for field, _ in expected], problems
    for (_, message), (_, start) in zip(problems, expected):
        assert message.startswith(start), message


def test_a_good_recipe_has_no_problems(cache):
    recipe = {"base": "debian12", "desktop": "xfce", "packages": ["libreoffice-writer", "firefox-esr"],
              "locale": "de_DE.UTF-8", "keyboard": "de(nodeadkeys)", "timezone": "Europe/Berlin"}
    assert recipe_problems(recipe, P, index=INDEX) == []
    parsed = Recipe.parse(recipe, P, index=INDEX)
    assert parsed.packages == ("firefox-esr", "libreoffice-writer") and parsed.graphical
    assert parsed.session == "xfce" and parsed.name == "debian12-xfce"


def test_parse_raises_every_problem_at_once(cache):
    with pytest.raises(InputError) as err:
        Recipe.parse({"desktop": "kde", "timezone": "Nowhere"}, P, index=INDEX)
    assert [f for f, _ in err.value.problems] == [f"{P}.desktop", f"{P}.timezone"]


def test_a_built_image_is_authoritative_for_its_packages(cache):
    recipe = Recipe(desktop="xfce", packages=("some-local-build",))
    fake_build(recipe, ["some-local-build"])
    assert recipe_problems(recipe.as_dict(), P, index=NoIndex()) == []


def test_the_console_recipe_is_the_default():
    assert Recipe.parse(None) == CONSOLE == Recipe.parse({"desktop": "none", "locale": "en_US.UTF-8"})
    assert CONSOLE.name == "debian12" and not CONSOLE.graphical and CONSOLE.session is None


# --- the hash ----------------------------------------------------------------------------------------

def test_hash_is_stable_and_ignores_order_and_spelled_out_defaults():
    a = Recipe.parse({"desktop": "xfce", "packages": ["vim", "git"]}, check_packages=False)
    b = Recipe.parse({"packages": ["git", "vim", "git"], "timezone": "Etc/UTC", "desktop": "xfce",
                      "base": "debian12"}, check_packages=False)
    assert a.hash == b.hash == Recipe(desktop="xfce", packages=("git", "vim")).hash
    assert len(a.hash) == 12 and int(a.hash, 16) >= 0


@pytest.mark.parametrize("change", [
    {"desktop": "none"}, {"packages": ["git"]}, {"locale": "de_DE.UTF-8"}, {"keyboard": "de"},
    {"timezone": "Europe/Berlin"},
])
def test_hash_changes_with_every_field(change):
    base = {"desktop": "xfce", "packages": ["git", "vim"]}
    assert Recipe.parse({**base, **change}, check_packages=False).hash != Recipe.parse(base, check_packages=False).hash


def _copy_of_build_tools(tmp_path):
    """tools/build-image.sh and tools/image/ in a scratch folder, with their recipe.py loaded from there."""
    tools = tmp_path / "tools"
    shutil.copytree(REPO / "tools" / "image", tools / "image", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "tools" / "build-image.sh", tools / "build-image.sh")
    spec = importlib.util.spec_from_file_location("recipe_copy", tools / "image" / "recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tools, module


def test_hash_changes_with_the_build_inputs_it_uses_only(tmp_path):
    tools, build = _copy_of_build_tools(tmp_path)
    console, xfce = {}, {"desktop": "xfce"}
    before = build.recipe_hash(console), build.recipe_hash(xfce)
    assert before == (CONSOLE.hash, Recipe(desktop="xfce").hash)   # the copy hashes like the original
    with open(tools / "image" / "desktops" / "xfce" / "packages.txt", "a") as fh:
        fh.write("mousepad\n")
    assert build.recipe_hash(console) == before[0], "another desktop's list is not a console image's input"
    assert build.recipe_hash(xfce) != before[1]
    with open(tools / "image" / "packages.txt", "a") as fh:
        fh.write("htop\n")
    assert build.recipe_hash(console) != before[0], "the common list is everyone's input"


def test_the_build_script_computes_the_same_hash_and_directory(tmp_path, cache):
    recipe = Recipe.parse({"desktop": "xfce", "packages": ["git"], "locale": "de_DE.UTF-8"}, check_packages=False)
    file = tmp_path / "recipe.json"
    file.write_text('{"packages": ["git"], "locale": "de_DE.UTF-8", "desktop": "xfce"}')
    script = str(REPO / "tools" / "build-image.sh")

    def run(*args):
        return subprocess.run([script, *args], capture_output=True, text=True, check=True).stdout.strip()
    assert run("--recipe", str(file), "--print-hash") == recipe.hash
    assert run("--recipe", str(file), "--print-path") == str(recipe.directory)
    assert run("--print-path") == str(CONSOLE.directory)


def test_the_build_script_refuses_a_recipe_it_cannot_build(tmp_path):
    file = tmp_path / "recipe.json"
    file.write_text('{"desktop": "kde"}')
    proc = subprocess.run([str(REPO / "tools" / "build-image.sh"), "--recipe", str(file), "--print-path"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "desktop: 'kde' is not a desktop environment vdesk builds" in proc.stderr


def test_package_lists_follow_the_recipe():
    console, xfce = CONSOLE.installs(), Recipe(desktop="xfce", packages=("git",)).installs()
    assert console[0] == "linux-image-cloud-amd64" and "cloud-init" in console and "lightdm" not in console
    assert xfce[0] == "linux-image-amd64" and {"lightdm", "xfce4", "spice-vdagent", "git"} <= set(xfce)
    assert "linux-image-cloud-amd64" not in xfce
    assert "console-setup" in Recipe(keyboard="de").installs() and "console-setup" not in console
    lxqt = Recipe(desktop="lxqt")
    assert {"lxqt-core", "openbox", "lightdm"} <= set(lxqt.installs()) and "xfce4" not in lxqt.installs()
    assert lxqt.session == "lxqt" and lxqt.name == "debian12-lxqt"


def test_a_recipes_own_packages_and_settings_share_the_base_layer():
    """tools/build-image.sh reuses one base layer for recipes that differ only in what sits on top of it."""
    build = build_recipe()
    console = CONSOLE.as_dict()
    layer = build.layer_key(console)
    for same in ({"packages": ["git"]}, {"locale": "de_DE.UTF-8"}, {"keyboard": "de"}, {"timezone": "Europe/Berlin"}):
        assert build.layer_key({**console, **same}) == layer, same
    for other in ({"desktop": "xfce"}, {"firmware": "uefi"}):
        assert build.layer_key({**console, **other}) != layer, other
    git = {**console, "packages": ["git"], "keyboard": "de"}
    assert build.delta_packages(git) == ["console-setup", "git"]
    assert build.base_packages(git) + build.delta_packages(git) == build.packages(git)
    assert build.delta_packages(console) == []
    # a package the base installs already is not installed again on top of it
    assert build.delta_packages({**console, "packages": ["cloud-init"]}) == []


def test_the_layer_follows_the_build_inputs(tmp_path):
    tools, build = _copy_of_build_tools(tmp_path)
    before = build.layer_key({})
    with open(tools / "image" / "packages.txt", "a") as fh:
        fh.write("htop\n")
    assert build.layer_key({}) != before, "the common list is in the base layer"
