#!/usr/bin/env python3
"""An image recipe as the build reads it: its canonical form, its hash and its package list.

Standard library only: tools/build-image.sh runs it with the system python3,
and components.images.recipe loads this same file, so the build and the
Pulumi program can never disagree about a hash or a package list.

A recipe (JSON) has these fields; missing ones take the defaults below:
    base      "debian12"
    desktop   "none" (a console image) or a directory name under desktops/
    packages  extra Debian packages, installed with the rest
    locale    the default locale, e.g. "de_DE.UTF-8"
    keyboard  an XKB layout, optionally with its variant: "de" or "de(nodeadkeys)"
    timezone  a tz database name, e.g. "Europe/Berlin"
    firmware  "bios" (an unpartitioned ext4 root, booted by direct kernel boot) or
              "uefi" (a GPT disk: an ESP with Debian's Microsoft-signed shim and
              signed GRUB, and an ext4 root with Debian's signed kernel, so it
              boots under UEFI with Secure Boot enforced); firmware/<name>/

The hash covers the canonical recipe and the build inputs it uses:
tools/build-image.sh and every file under tools/image/ except other desktop
environments' and firmwares' folders (so a change to xfce's list, or to the
UEFI layout, is not a new console image).

    recipe.py canonical FILE   the canonical recipe (FILE "-" is stdin; no FILE: the defaults)
    recipe.py hash FILE        its hash (12 hex digits)
    recipe.py name FILE        the image's name: debian12, debian12-xfce, ...
    recipe.py shell FILE       shell assignments for the build (R_NAME, R_HASH, R_PACKAGES, R_LAYER, ...)
"""
from __future__ import annotations

import hashlib
import json
import re
import shlex
import sys
from pathlib import Path

IMAGE_DIR = Path(__file__).resolve().parent          # tools/image
TOOLS_DIR = IMAGE_DIR.parent                          # tools
BUILD_SCRIPT = TOOLS_DIR / "build-image.sh"
DESKTOPS_DIR = IMAGE_DIR / "desktops"
NOT_HASHED = ("smoke-boot.sh",)                       # tools that do not shape the image

BASES = ("debian12",)
SUITES = {"debian12": "bookworm"}
NO_DESKTOP = "none"
FIRMWARES = ("bios", "uefi")
FIRMWARE_DIR = IMAGE_DIR / "firmware"
DEFAULTS = {"base": "debian12", "desktop": NO_DESKTOP, "packages": [], "locale": "en_US.UTF-8",
            "keyboard": "us", "timezone": "Etc/UTC", "firmware": "bios"}
FIELDS = tuple(DEFAULTS)
# A console image with another keyboard layout needs the console keymap tools.
CONSOLE_KEYMAP_PACKAGE = "console-setup"
_KEYBOARD = re.compile(r"^(?P<layout>[a-z][a-z0-9_]*)(?:\((?P<variant>[A-Za-z0-9_-]+)\))?$")


class RecipeError(ValueError):
    """The recipe cannot be built as written (the message names the field)."""


def desktops() -> list[str]:
    """Desktop environments a recipe may name: none, and each folder under desktops/."""
    found = sorted(p.name for p in DESKTOPS_DIR.iterdir() if p.is_dir()) if DESKTOPS_DIR.is_dir() else []
    return [NO_DESKTOP, *found]


def canonical(recipe: dict | None) -> dict:
    """The recipe with defaults filled in and packages sorted, or RecipeError for what no build can take."""
    recipe = dict(recipe or {})
    unknown = sorted(set(recipe) - set(FIELDS))
    if unknown:
        raise RecipeError(f"unknown field(s) {', '.join(unknown)} (fields: {', '.join(FIELDS)})")
    out = {**DEFAULTS, **{k: v for k, v in recipe.items() if v is not None}}
    for field in FIELDS:
        if field != "packages" and not isinstance(out[field], str):
            raise RecipeError(f"{field}: must be a string")
    if not isinstance(out["packages"], (list, tuple)) or not all(isinstance(p, str) for p in out["packages"]):
        raise RecipeError("packages: must be a list of package names")
    out["packages"] = sorted(set(out["packages"]))
    if out["base"] not in BASES:
        raise RecipeError(f"base: {out['base']!r} is not a base vdesk builds (known: {', '.join(BASES)})")
    if out["desktop"] not in desktops():
        raise RecipeError(f"desktop: {out['desktop']!r} is not a desktop environment vdesk builds "
                          f"(known: {', '.join(desktops())})")
    if out["firmware"] not in FIRMWARES:
        raise RecipeError(f"firmware: {out['firmware']!r} is not a firmware vdesk builds images for "
                          f"(known: {', '.join(FIRMWARES)})")
    if not _KEYBOARD.match(out["keyboard"]):
        raise RecipeError(f"keyboard: {out['keyboard']!r} is not an XKB layout such as 'de' or 'de(nodeadkeys)'")
    return out


def written(recipe: dict | None) -> dict:
    """The canonical recipe as it is stored and hashed: the default firmware (bios) is left out, so
    recipes written before there was a choice keep their form."""
    out = canonical(recipe)
    if out["firmware"] == DEFAULTS["firmware"]:
        del out["firmware"]
    return out


def canonical_json(recipe: dict | None) -> str:
    return json.dumps(written(recipe), sort_keys=True, separators=(",", ":"))


def hashed_files(desktop: str, firmware: str = "bios") -> list[str]:
    """The build inputs of an image with this desktop and firmware, relative to tools/, in a stable order."""
    files = ["build-image.sh"]
    for path in IMAGE_DIR.rglob("*"):
        rel = path.relative_to(IMAGE_DIR)
        if not path.is_file() or "__pycache__" in rel.parts or path.suffix == ".pyc" or str(rel) in NOT_HASHED:
            continue
        if rel.parts[0] == "desktops" and (len(rel.parts) < 2 or rel.parts[1] != desktop):
            continue
        if rel.parts[0] == "firmware" and (len(rel.parts) < 2 or rel.parts[1] != firmware):
            continue
        files.append(str(path.relative_to(TOOLS_DIR)))
    return sorted(files)


def recipe_hash(recipe: dict | None) -> str:
    """The first 12 hex digits of sha256 over the build inputs (sha256sum lines) and the canonical recipe."""
    text = canonical_json(recipe)
    lines = [f"{hashlib.sha256((TOOLS_DIR / f).read_bytes()).hexdigest()}  {f}\n"
             for f in hashed_files(canonical(recipe)["desktop"], canonical(recipe)["firmware"])]
    return hashlib.sha256(("".join(lines) + f"recipe {text}\n").encode()).hexdigest()[:12]


def image_name(recipe: dict | None) -> str:
    r = canonical(recipe)
    name = r["base"] if r["desktop"] == NO_DESKTOP else f"{r['base']}-{r['desktop']}"
    return name if r["firmware"] == DEFAULTS["firmware"] else f"{name}-{r['firmware']}"


def list_file(path: Path) -> list[str]:
    """Names in a package list: one or more per line, '#' starts a comment."""
    if not path.is_file():
        return []
    return [word for line in path.read_text().splitlines() for word in line.split("#", 1)[0].split()]


def kernel_package(recipe: dict | None) -> str:
    """The desktop environment's kernel, else the firmware's (UEFI: a signed one), else the console kernel."""
    r = canonical(recipe)
    own = DESKTOPS_DIR / r["desktop"] / "kernel.txt"
    firmware = FIRMWARE_DIR / r["firmware"] / "kernel.txt"
    return (list_file(own) or list_file(firmware) or list_file(IMAGE_DIR / "kernel.txt"))[0]


def packages(recipe: dict | None) -> list[str]:
    """What the build installs on top of debootstrap's minbase: kernel, common, desktop, the recipe's own."""
    r = canonical(recipe)
    wanted = base_packages(r)
    if r["desktop"] == NO_DESKTOP and r["keyboard"] != DEFAULTS["keyboard"]:
        wanted.append(CONSOLE_KEYMAP_PACKAGE)
    wanted += r["packages"]
    return list(dict.fromkeys(wanted))


def base_packages(recipe: dict | None) -> list[str]:
    """What the base layer installs on top of minbase: the kernel, the common list and the firmware's and
    desktop environment's lists, i.e. all that the recipe's packages, locale, keyboard and time zone leave alone."""
    r = canonical(recipe)
    wanted = [kernel_package(r), *list_file(IMAGE_DIR / "packages.txt"),
              *list_file(FIRMWARE_DIR / r["firmware"] / "packages.txt"),
              *list_file(DESKTOPS_DIR / r["desktop"] / "packages.txt")]
    return list(dict.fromkeys(wanted))


def delta_packages(recipe: dict | None) -> list[str]:
    """What a build installs on top of its base layer: the recipe's own packages (and the console keymap tools)."""
    base = set(base_packages(recipe))
    return [name for name in packages(recipe) if name not in base]


def layer_key(recipe: dict | None) -> str:
    """Names the base layer a recipe's build starts from (16 hex digits): the build inputs and the base
    package list, so two recipes that differ only in their packages, locale, keyboard or time zone share it."""
    r = canonical(recipe)
    lines = [f"{hashlib.sha256((TOOLS_DIR / f).read_bytes()).hexdigest()}  {f}\n"
             for f in hashed_files(r["desktop"], r["firmware"])]
    facts = {"base": r["base"], "suite": SUITES[r["base"]], "desktop": r["desktop"], "firmware": r["firmware"],
             "packages": base_packages(r)}
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(("".join(lines) + f"layer {text}\n").encode()).hexdigest()[:16]


def keyboard_parts(keyboard: str) -> tuple[str, str]:
    match = _KEYBOARD.match(keyboard)
    return match.group("layout"), match.group("variant") or ""


def _load(arg: str | None) -> dict:
    if arg is None:
        return {}
    text = sys.stdin.read() if arg == "-" else Path(arg).read_text()
    data = json.loads(text) if text.strip() else {}
    if not isinstance(data, dict):
        raise RecipeError("a recipe is a JSON object")
    return data


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("canonical", "hash", "name", "shell"):
        print(__doc__.split("\n\n")[-1], file=sys.stderr)
        return 2
    try:
        recipe = canonical(_load(argv[1] if len(argv) > 1 else None))
    except (RecipeError, json.JSONDecodeError, OSError) as exc:
        print(f"recipe: {exc}", file=sys.stderr)
        return 1
    if argv[0] == "canonical":
        print(canonical_json(recipe))
    elif argv[0] == "hash":
        print(recipe_hash(recipe))
    elif argv[0] == "name":
        print(image_name(recipe))
    else:
        layout, variant = keyboard_parts(recipe["keyboard"])
        values = {"R_JSON": canonical_json(recipe), "R_HASH": recipe_hash(recipe), "R_NAME": image_name(recipe),
                  "R_SUITE": SUITES[recipe["base"]], "R_DESKTOP": recipe["desktop"],
                  "R_PACKAGES": " ".join(packages(recipe)), "R_BASE_PACKAGES": " ".join(base_packages(recipe)),
                  "R_DELTA_PACKAGES": " ".join(delta_packages(recipe)), "R_LAYER": layer_key(recipe),
                  "R_LOCALE": recipe["locale"],
                  "R_XKB_LAYOUT": layout, "R_XKB_VARIANT": variant, "R_TIMEZONE": recipe["timezone"],
                  "R_FIRMWARE": recipe["firmware"]}
        print("\n".join(f"{k}={shlex.quote(v)}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
