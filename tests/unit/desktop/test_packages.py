"""A profile's template may install only what its image holds: guests are offline."""
from __future__ import annotations

from components.desktop.packages import image_packages, template_package_problems, template_packages
from components.images.recipe import CONSOLE, Recipe
from tests.unit.images.conftest import FakeIndex, NoIndex, cache, fake_build  # noqa: F401 (cache: a fixture)

DEVELOPER = ["git", "build-essential", "python3-venv", "vim"]


def test_the_templates_packages_come_from_rendering_it():
    assert template_packages("developer") == DEVELOPER
    assert template_packages("desktop") == []
    assert set(template_packages("office")) >= {"libreoffice-writer", "cups"}


def test_a_package_the_image_lacks_names_the_template_the_package_and_the_image(cache):
    index = FakeIndex(closure=["base-files", "openssh-server", "git", "vim"])     # not built: the closure
    problems = template_package_problems("developer", CONSOLE, field="profiles.developer.template",
                                         image_name="debian12", index=index)
    assert len(problems) == 1
    field, message = problems[0]
    assert field == "profiles.developer.template"
    assert message.startswith("template 'developer' installs build-essential, python3-venv, which image "
                              "'debian12' does not hold")
    assert f"recipe {CONSOLE.hash}, not built yet" in message
    assert "add them to images.debian12.recipe.packages" in message


def test_a_built_images_manifest_is_authoritative(cache):
    recipe = Recipe(desktop="xfce", packages=("git",))
    fake_build(recipe, ["git", "xfce4", "lightdm"])
    [(field, message)] = template_package_problems("developer", recipe, field="users[0].profile",
                                                   image_name="desk", recipe_field="desktops.x.image",
                                                   index=NoIndex())
    assert field == "users[0].profile"
    assert "installs build-essential, python3-venv, vim, which image 'desk' does not hold (its manifest " in message
    assert "desktops.x.image.packages" in message
    fake_build(recipe, ["git", "xfce4", "lightdm", *DEVELOPER])
    assert template_package_problems("developer", recipe, field="f", image_name="desk", index=NoIndex()) == []


def test_an_image_that_holds_everything_passes(cache):
    recipe = {"desktop": "xfce", "packages": DEVELOPER}
    index = FakeIndex(closure=None)            # the closure is what is asked for: the recipe's own lists
    assert template_package_problems("developer", recipe, field="f", image_name="dev", index=index) == []
    assert template_package_problems("desktop", CONSOLE, field="f", image_name="x", index=NoIndex()) == []


def test_image_packages_before_the_build_include_debootstraps_and_the_desktops(cache):
    held = image_packages({"desktop": "xfce"}, index=FakeIndex())
    assert {"base-files", "lightdm", "xfce4", "cloud-init"} <= held.names
    assert "not built yet" in held.source
