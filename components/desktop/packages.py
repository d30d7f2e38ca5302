"""Does an image hold what a profile's template installs? Guests are offline: it must, or cloud-init fails.

The template's packages come from rendering it (with placeholder users and
keys, as the preview does). The image's come from its manifest once it is
built (authoritative), or, before that, from its recipe: everything the build
installs and the dependency closure of it, computed by apt from vdesk's copy
of Debian's package index.
"""
from __future__ import annotations

import dataclasses
import functools
from types import SimpleNamespace
from typing import Any, Mapping


from ..cloudinit import CloudInitError
from ..images.recipe import Recipe


@dataclasses.dataclass(frozen=True)
class ImagePackages:
    """The packages an image holds, and where that is known from (for messages)."""

    names: frozenset[str]
    source: str


def template_packages(template: str) -> list[str]:
    """The packages a profile template's seed installs (names, without versions)."""
    return list(_template_packages(template))


@functools.lru_cache(maxsize=None)
def _template_packages(template: str) -> tuple[str, ...]:
    from ..cloudinit.schema import parse_yaml
    from .seeding import check_seed
    users = [SimpleNamespace(name="vdeskpreview", groups=(), ssh_authorized_keys=())]
    docs = check_seed(template, users, hostname="preview")
    listed = (parse_yaml(docs.user_data) or {}).get("packages") or []
    return tuple(str(p).split("=", 1)[0] for p in listed)


def image_packages(recipe: Recipe | Mapping[str, Any] | None, *, index=None) -> ImagePackages:
    """What an image of this recipe holds: its manifest's list when built, else the recipe's closure."""
    recipe = recipe if isinstance(recipe, Recipe) else Recipe.parse(recipe, check_packages=False)
    manifest = recipe.manifest()
    if manifest is not None:
        names = frozenset(str(p).split("=", 1)[0] for p in manifest.get("packages", []))
        return ImagePackages(names, f"its manifest {recipe.directory / 'manifest.json'}")
    from ..images.debian_index import shared_index
    index = index or shared_index()
    names = index.closure([*index.required(), "apt", *recipe.installs()])
    return ImagePackages(names, f"recipe {recipe.hash}, not built yet: what its build installs, with dependencies")


def template_package_problems(template: str, recipe: Recipe | Mapping[str, Any] | None, *, field: str,
                              image_name: str, recipe_field: str | None = None,
                              index=None) -> list[tuple[str, str]]:
    """[(field, message)] when `template` installs packages the image `image_name` (of `recipe`) lacks.

    field: where the template is chosen, e.g. "profiles.developer.template";
    recipe_field: where the image's recipe is declared (default images.<image_name>.recipe).
    """
    try:
        wanted = template_packages(template)
    except CloudInitError:
        return []        # the template's own problems are reported where seeds are checked
    if not wanted:
        return []
    held = image_packages(recipe, index=index)
    missing = [p for p in wanted if p not in held.names]
    if not missing:
        return []
    where = recipe_field or f"images.{image_name}.recipe"
    return [(field, f"template {template!r} installs {', '.join(missing)}, which image {image_name!r} does not "
                    f"hold ({held.source}); guests are offline: add {'it' if len(missing) == 1 else 'them'} to "
                    f"{where}.packages, or use an image that holds {'it' if len(missing) == 1 else 'them'}")]
