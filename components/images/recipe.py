"""Image recipes: what a golden image is made of, checked field by field before anything is built.

A recipe is {base, desktop, packages, locale, keyboard, timezone, firmware}. Its
canonical form, hash and package list come from tools/image/recipe.py, the
file the build itself reads, so the program and the build always agree.
The checks here are vdesk's: every problem is reported with its field path.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import json
import logging
import re
import zoneinfo
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError
from ..paths import cache_dir, shipped

log = logging.getLogger(__name__)

BUILD_RECIPE = shipped("tools/image/recipe.py")
SUPPORTED_LOCALES = Path("/usr/share/i18n/SUPPORTED")      # Debian's locales package's list
XKB_LAYOUTS = Path("/usr/share/X11/xkb/rules/base.lst")     # xkb-data's list of layouts and variants
ZONEINFO = Path("/usr/share/zoneinfo")
# The X session each desktop environment starts (a file in /usr/share/xsessions of the image).
SESSIONS = {"xfce": "xfce"}
LOCALE_RE = re.compile(r"^[a-z]{2,3}_[A-Z]{2}(\.[A-Za-z0-9-]+)?(@[a-z]+)?$")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
TIMEZONE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")


@functools.lru_cache(maxsize=1)
def build_recipe():
    """tools/image/recipe.py, the build's own reading of recipes (loaded once, by path)."""
    spec = importlib.util.spec_from_file_location("vdesk_build_recipe", BUILD_RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A valid recipe in canonical form (defaults applied, packages sorted)."""

    base: str = "debian12"
    desktop: str = "none"
    packages: tuple[str, ...] = ()
    locale: str = "en_US.UTF-8"
    keyboard: str = "us"
    timezone: str = "Etc/UTC"
    firmware: str = "bios"                  # bios (direct kernel boot) | uefi (shim, GRUB, signed kernel)

    @classmethod
    def parse(cls, data: "Recipe | Mapping[str, Any] | None", path: str = "recipe", *,
              index=None, check_packages: bool = True) -> "Recipe":
        """The recipe, or InputError naming every field that is wrong (see recipe_problems)."""
        if isinstance(data, Recipe):
            data = data.as_dict()
        problems = recipe_problems(data, path, index=index, check_packages=check_packages)
        if problems:
            raise InputError(problems)
        canon = build_recipe().canonical(dict(data or {}))
        return cls(**{**canon, "packages": tuple(canon["packages"])})

    def as_dict(self) -> dict:
        """The canonical recipe as the build reads it (JSON-ready; firmware only when not the default, bios)."""
        out = {**dataclasses.asdict(self), "packages": list(self.packages)}
        if out["firmware"] == build_recipe().DEFAULTS["firmware"]:
            del out["firmware"]
        return out

    def to_json(self) -> str:
        return build_recipe().canonical_json(self.as_dict())

    @property
    def hash(self) -> str:
        """12 hex digits over the recipe and the build inputs it uses (tools/image/recipe.py)."""
        return build_recipe().recipe_hash(self.as_dict())

    @property
    def name(self) -> str:
        """debian12 for a console image, debian12-<desktop> for a desktop image."""
        return build_recipe().image_name(self.as_dict())

    @property
    def graphical(self) -> bool:
        return self.desktop != build_recipe().NO_DESKTOP

    @property
    def session(self) -> str | None:
        """The X session a desktop of this image logs into (None for a console image)."""
        return SESSIONS.get(self.desktop, self.desktop) if self.graphical else None

    @property
    def boot(self) -> str:
        """How a desktop of this image boots: kernel (direct kernel boot) or uefi (its own signed bootloader)."""
        return "uefi" if self.firmware == "uefi" else "kernel"

    @property
    def directory(self) -> Path:
        """Where the build puts (or has put) this image."""
        return cache_dir() / "images" / f"{self.name}-{self.hash}"

    def installs(self) -> list[str]:
        """What the build installs on top of debootstrap's minbase (kernel, common, desktop, the recipe's)."""
        return build_recipe().packages(self.as_dict())

    def manifest(self) -> dict | None:
        """The built image's manifest, or None while it is not built."""
        path = self.directory / "manifest.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("recipe_hash") == self.hash else None


CONSOLE = Recipe()     # golden: debian12, the console image


def desktops() -> list[str]:
    """Desktop environments vdesk builds: none and each folder under tools/image/desktops/."""
    return build_recipe().desktops()


def recipe_problems(data: Any, path: str = "recipe", *, index=None,
                    check_packages: bool = True) -> list[tuple[str, str]]:
    """Everything wrong with a recipe mapping, as (field path, message) pairs; [] when it can be built.

    Packages are looked up in vdesk's copy of Debian's package index (`index`, a
    debian_index.PackageIndex; by default the shared one, refreshed when older
    than a day), unless the recipe's image is built already: then it has them.
    """
    if isinstance(data, Recipe):
        data = data.as_dict()
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        return [(path, f"must be a mapping with {', '.join(build_recipe().FIELDS)}, got {type(data).__name__}")]
    fields = build_recipe().FIELDS
    found = [(f"{path}.{key}", f"unknown field (fields: {', '.join(fields)})") for key in data if key not in fields]
    defaults = build_recipe().DEFAULTS

    def text(field):
        value = data.get(field, defaults[field])
        if value is None:
            return defaults[field]
        if not isinstance(value, str) or not value:
            found.append((f"{path}.{field}", f"must be a non-empty string, got {value!r}"))
            return None
        return value

    base, desktop, locale, keyboard, timezone, firmware = (text(f) for f in ("base", "desktop", "locale", "keyboard",
                                                                              "timezone", "firmware"))
    if firmware is not None and firmware not in build_recipe().FIRMWARES:
        found.append((f"{path}.firmware", f"{firmware!r} is not a firmware vdesk builds images for (known: "
                                          f"{', '.join(build_recipe().FIRMWARES)})"))
    if base is not None and base not in build_recipe().BASES:
        found.append((f"{path}.base", f"{base!r} is not a base vdesk builds (known: "
                                      f"{', '.join(build_recipe().BASES)})"))
    if desktop is not None and desktop not in desktops():
        found.append((f"{path}.desktop", f"{desktop!r} is not a desktop environment vdesk builds "
                                         f"(known: {', '.join(desktops())})"))
    if locale is not None and (message := locale_problem(locale)):
        found.append((f"{path}.locale", message))
    if keyboard is not None and (message := keyboard_problem(keyboard)):
        found.append((f"{path}.keyboard", message))
    if timezone is not None and (message := timezone_problem(timezone)):
        found.append((f"{path}.timezone", message))
    packages = data.get("packages") or []
    if not isinstance(packages, (list, tuple)):
        found.append((f"{path}.packages", f"must be a list of Debian package names, got {type(packages).__name__}"))
        return found
    names = []
    for i, name in enumerate(packages):
        if not isinstance(name, str) or not PACKAGE_RE.match(name):
            found.append((f"{path}.packages[{i}]", f"{name!r} is not a Debian package name "
                                                   "(lower case letters, digits, '+', '-', '.')"))
        else:
            names.append((i, name))
    if not check_packages or not names:
        return found
    if not found and Recipe(base, desktop, tuple(sorted({n for _, n in names})), locale, keyboard,
                            timezone, firmware).manifest() is not None:
        return found     # built: the image holds its packages
    from .debian_index import IndexUnavailable, shared_index
    try:
        index = index or shared_index()
        for i, name in names:
            if message := index.problem(name):
                found.append((f"{path}.packages[{i}]", message))
    except IndexUnavailable as exc:
        found.append((f"{path}.packages", f"cannot check the packages: {exc}"))
    return found


def _did_you_mean(value: str, known) -> str:
    """' (did you mean a, b?)' with the closest known names, or '' when none is close."""
    close = difflib.get_close_matches(value, known, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def locale_problem(locale: str) -> str | None:
    if not LOCALE_RE.match(locale):
        return f"{locale!r} is not a locale name such as en_US.UTF-8 or de_DE.UTF-8"
    supported = _supported_locales()
    if supported and locale not in supported:
        hint = _did_you_mean(locale, supported)
        return f"{locale!r} is not a locale Debian's locales package supports{hint}"
    return None


def keyboard_problem(keyboard: str) -> str | None:
    match = re.match(r"^(?P<layout>[a-z][a-z0-9_]*)(?:\((?P<variant>[A-Za-z0-9_-]+)\))?$", keyboard)
    if not match:
        return f"{keyboard!r} is not an XKB keyboard layout such as us, de or de(nodeadkeys)"
    layouts, variants = _xkb_layouts()
    layout, variant = match.group("layout"), match.group("variant")
    if layouts and layout not in layouts:
        hint = _did_you_mean(layout, layouts)
        return f"{layout!r} is not an XKB keyboard layout{hint}"
    if layouts and variant and variant not in variants.get(layout, ()):
        known = ", ".join(sorted(variants.get(layout, ()))[:12]) or "none"
        return f"layout {layout!r} has no variant {variant!r} (variants: {known})"
    return None


def timezone_problem(timezone: str) -> str | None:
    if not TIMEZONE_RE.match(timezone) or ".." in timezone:
        return f"{timezone!r} is not a time zone name such as Europe/Berlin or Etc/UTC"
    zones = _timezones()
    if zones and timezone not in zones:
        hint = _did_you_mean(timezone, zones)
        return f"{timezone!r} is not a time zone of the tz database{hint}"
    return None


@functools.lru_cache(maxsize=1)
def _supported_locales() -> frozenset[str]:
    """Locale names from the host's list (Debian's, the same release as the images); empty if absent."""
    try:
        lines = SUPPORTED_LOCALES.read_text().splitlines()
    except OSError:
        log.info("no %s: locales are checked by their form only", SUPPORTED_LOCALES)
        return frozenset()
    return frozenset(line.split()[0] for line in lines if line.strip() and not line.startswith("#"))


@functools.lru_cache(maxsize=1)
def _xkb_layouts() -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """XKB layouts and their variants from xkb-data's base.lst; empty if it is not installed."""
    try:
        lines = XKB_LAYOUTS.read_text().splitlines()
    except OSError:
        log.info("no %s: keyboard layouts are checked by their form only", XKB_LAYOUTS)
        return frozenset(), {}
    layouts, variants, section = set(), {}, None
    for line in lines:
        if line.startswith("! "):
            section = line[2:].strip()
        elif line.strip() and section == "layout":
            layouts.add(line.split()[0])
        elif line.strip() and section == "variant":
            name, rest = line.split(None, 1)
            variants.setdefault(rest.split(":", 1)[0].strip(), set()).add(name)
    return frozenset(layouts), {k: frozenset(v) for k, v in variants.items()}


@functools.lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    """The tz database's zone names (the host's tzdata); empty if there is none."""
    if not ZONEINFO.is_dir():
        return frozenset()
    return frozenset(zoneinfo.available_timezones())
