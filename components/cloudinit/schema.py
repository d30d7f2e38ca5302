"""Validate user-data against cloud-init's own schema, taken from Debian's package so it matches the guests.

The schema is never copied into the repository: ``ensure_schema`` downloads
Debian's ``cloud-init`` package with apt, extracts the schema (and any schema
file it references) into the per-user cache, and reuses that cache afterwards.

Validation mirrors cloud-init's own validator, but strictly: the schema's
draft (draft-04), keywords beside ``$ref`` still apply, ``bytes`` count as
strings (``!!binary``), formats are checked, and anything the schema marks
``deprecated`` is an error rather than a warning.

CLI: ``python -m components.cloudinit.schema --ensure`` prints the schema path.
"""

import argparse
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from operator import methodcaller
from pathlib import Path

import jsonschema
import yaml

from ..paths import cache_dir
from . import CloudInitError

PACKAGE = "cloud-init"
SCHEMA_FILE = "schema-cloud-config-v1.json"
PACKAGE_SCHEMA_DIR = "usr/lib/python3/dist-packages/cloudinit/config/schemas"
CACHE_SUBDIR = "cloud-init-schema"
MANIFEST = "manifest.json"  # written last: its presence marks a complete entry
CURRENT = "current"  # names the entry in use: the latest one fetched
HEADER = "#cloud-config"
ROOT = "(root)"
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
BRANCHING_KEYWORDS = frozenset({"oneOf", "anyOf"})
MAX_ALTERNATIVES = 4  # sub-messages quoted when no oneOf branch stands out
FORMATS = jsonschema.FormatChecker()  # every known format, as cloud-init passes


class SchemaUnavailable(RuntimeError):
    """The schema is not cached and could not be fetched from Debian's package."""


def ensure_schema(refresh: bool = False) -> Path:
    """Return the path of the cached ``schema-cloud-config-v1.json``.

    On a cache miss (or with ``refresh``) runs ``apt-get download cloud-init``
    and extracts the schema into ``<cache>/cloud-init-schema/<version>/``.
    Raises ``SchemaUnavailable`` when that fails.
    """
    base = cache_dir() / CACHE_SUBDIR
    cached = None if refresh else cached_schema(base)
    if cached is not None:
        return cached
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="download-", dir=base) as work:
        deb = _download(Path(work))
        version = _run(["dpkg-deb", "--field", str(deb), "Version"]).strip()
        unpacked = Path(work) / "unpacked"
        _run(["dpkg-deb", "--extract", str(deb), str(unpacked)])
        staging = Path(work) / "entry"
        staging.mkdir()
        files = _copy_schema_closure(unpacked / PACKAGE_SCHEMA_DIR, staging)
        manifest = {"package": PACKAGE, "version": version, "files": files}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        target = base / _safe_dir_name(version)
        if refresh and target.exists():
            shutil.rmtree(target)
        try:
            staging.rename(target)
        except OSError:
            if not _complete(target):  # else a concurrent run installed it first
                raise
        pointer = Path(work) / CURRENT
        pointer.write_text(target.name + "\n")
        os.replace(pointer, base / CURRENT)
    return target / SCHEMA_FILE


def cached_schema(base: Path) -> Path | None:
    """The cache entry in use under ``base`` (else the newest complete one), if any."""
    try:
        current = base / (base / CURRENT).read_text().strip()
    except OSError:
        current = None
    if current is not None and current.parent == base and _complete(current):
        return current / SCHEMA_FILE
    entries = [manifest.parent for manifest in base.glob(f"*/{MANIFEST}") if _complete(manifest.parent)]
    if not entries:
        return None
    newest = max(entries, key=lambda entry: (entry / MANIFEST).stat().st_mtime_ns)
    return newest / SCHEMA_FILE


def _complete(entry: Path) -> bool:
    return (entry / MANIFEST).is_file() and (entry / SCHEMA_FILE).is_file()


def external_refs(schema) -> set[str]:
    """File names of every ``$ref`` in ``schema`` that points outside it."""
    found = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                found.add(ref.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    found.discard("")
    return found


def _copy_schema_closure(source: Path, dest: Path) -> list[str]:
    """Copy SCHEMA_FILE and every schema file it references, transitively."""
    pending, copied = [SCHEMA_FILE], []
    while pending:
        name = pending.pop()
        if name in copied:
            continue
        origin = source / name
        if not origin.is_file():
            raise SchemaUnavailable(f"{PACKAGE} package has no {PACKAGE_SCHEMA_DIR}/{name}")
        shutil.copyfile(origin, dest / name)
        copied.append(name)
        pending.extend(sorted(external_refs(json.loads(origin.read_text()))))
    return sorted(copied)


def _download(work: Path) -> Path:
    _run(["apt-get", "download", PACKAGE], cwd=work)
    debs = sorted(work.glob(f"{PACKAGE}_*.deb"))
    if len(debs) != 1:
        raise SchemaUnavailable(f"apt-get download {PACKAGE} left {len(debs)} .deb files")
    return debs[0]


def _run(argv: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise SchemaUnavailable(
            f"{argv[0]} not found: the cloud-init schema comes from Debian's "
            f"{PACKAGE} package, so fetching it needs apt and dpkg"
        ) from exc
    if done.returncode != 0:
        hint = " (run 'apt-get update' first?)" if argv[0] == "apt-get" else ""
        raise SchemaUnavailable(
            f"{' '.join(argv)} failed with exit code {done.returncode}{hint}: "
            f"{done.stderr.strip()}"
        )
    return done.stdout


def _safe_dir_name(version: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+~_-]", "_", version) or "unknown"


@functools.lru_cache(maxsize=4)
def load_validator(schema_path: Path):
    """A validator for the schema at ``schema_path``, built once per path."""
    schema = json.loads(Path(schema_path).read_text())
    draft = jsonschema.validators.validator_for(schema)
    validator_class = jsonschema.validators.create(
        meta_schema=draft.META_SCHEMA,
        validators={**draft.VALIDATORS, "deprecated": _deprecated},
        type_checker=draft.TYPE_CHECKER.redefine("string", _is_string),
        format_checker=FORMATS,
        id_of=draft.ID_OF,
        applicable_validators=methodcaller("items"),  # as cloud-init: $ref siblings apply
    )
    return validator_class(schema, format_checker=FORMATS)


def _is_string(_checker, instance) -> bool:
    return isinstance(instance, (str, bytes))


def _deprecated(_validator, deprecated, _instance, schema):
    if deprecated:
        reason = " ".join(str(schema.get("description", "")).split()) or "no longer supported"
        yield jsonschema.ValidationError(f"deprecated in cloud-init: {reason}")


def validate_user_data(text: str) -> None:
    """Raise ``CloudInitError`` listing every problem in a ``#cloud-config`` document."""
    errors = user_data_errors(text)
    if errors:
        raise CloudInitError(errors)


def user_data_errors(text: str, schema_path: Path | None = None) -> list[tuple[str, str]]:
    """Every problem in ``text`` as ``(path, message)``; empty when valid."""
    if not isinstance(text, str):
        return [(ROOT, f"user-data must be text, not {type(text).__name__}")]
    errors = []
    if text.split("\n", 1)[0].rstrip() != HEADER:
        errors.append((ROOT, f"first line must be {HEADER!r}"))
    try:
        config = parse_yaml(text)
    except yaml.YAMLError as exc:
        return errors + [(ROOT, f"not valid YAML: {yaml_problem(exc)}")]
    if not isinstance(config, dict):
        return errors + [(ROOT, f"must be a mapping, not {type(config).__name__}")]
    return errors + config_errors(config, schema_path)


def config_errors(config: dict, schema_path: Path | None = None) -> list[tuple[str, str]]:
    """Schema errors of an already parsed cloud-config, sorted by path."""
    validator = load_validator(schema_path or ensure_schema())
    found = []
    for error in validator.iter_errors(config):
        found.extend(_explain(error))
    return sorted(set(found))


def _explain(error) -> list[tuple[str, str]]:
    """Turn one jsonschema error into readable ``(path, message)`` pairs."""
    if error.validator in BRANCHING_KEYWORDS and error.context:
        return _explain_branches(error)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        extras = _unexpected_keys(error.instance, error.schema)
        if extras:
            return [(json_path([*error.absolute_path, key]), "unknown property") for key in extras]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        return [(json_path([*error.absolute_path, key]), "required property is missing") for key in missing]
    return [(json_path(error.absolute_path), error.message)]


def _explain_branches(error) -> list[tuple[str, str]]:
    """Explain a failed oneOf/anyOf by the branches whose shape fits the value.

    Branches rejecting the value's type are not what the author meant; if one
    branch is left its own errors are the answer, otherwise all are summed up.
    """
    branches = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = {
        index: subs for index, subs in branches.items()
        if not any(sub.validator == "type" and not sub.relative_path for sub in subs)
    }
    path = json_path(error.absolute_path)
    if len(fitting) == 1:
        (subs,) = fitting.values()
        return [pair for sub in subs for pair in _explain(sub)]
    if not fitting:
        allowed = sorted({
            kind
            for subs in branches.values() for sub in subs
            if sub.validator == "type" and not sub.relative_path
            for kind in _as_list(sub.validator_value)
        })
        return [(path, f"{error.instance!r} is not of type {', '.join(allowed)}")]
    if all(sub.validator == "required" for subs in fitting.values() for sub in subs):
        keys = sorted({key for subs in fitting.values() for sub in subs for key in sub.validator_value})
        return [(path, f"needs one of the properties: {', '.join(keys)}")]
    reasons = []
    for subs in fitting.values():
        relevant = [sub for sub in subs if sub.validator != "deprecated"] or subs
        reasons.extend(sub.message for sub in relevant)
    detail = "; ".join(sorted(set(reasons), key=len)[:MAX_ALTERNATIVES])
    return [(path, f"matches none of the allowed forms ({detail})")]


def _as_list(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def _unexpected_keys(instance: dict, schema: dict) -> list[str]:
    known = set(schema.get("properties", {}))
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    return sorted(
        str(key) for key in instance
        if key not in known and not any(p.search(str(key)) for p in patterns)
    )


def json_path(parts) -> str:
    """``["users", 0, "sudo"]`` -> ``"users[0].sudo"``; odd keys are quoted."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif IDENTIFIER_RE.match(str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{json.dumps(str(part))}]"
    return text or ROOT


def parse_yaml(text: str):
    """``yaml.safe_load(text)``, parsed by libyaml when PyYAML has it (a desktop's seed documents are parsed
    twice per run each: at 60 desktops the pure-Python parser was most of the program's seed checks). The same
    constructor and resolver build the same data; a document libyaml refuses is parsed again by the pure
    parser, so what is accepted and how an error reads are the pure parser's."""
    if getattr(yaml, "CSafeLoader", None) is not None:
        try:
            return yaml.load(text, Loader=yaml.CSafeLoader)   # noqa: S506 (the safe loader, in C)
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A one-line description of a YAML error, with its 1-based position."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return problem
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.cloudinit.schema",
        description="Fetch and cache cloud-init's cloud-config schema from Debian's package.",
    )
    parser.add_argument("--ensure", action="store_true", help="fetch the schema if not cached; print its path")
    parser.add_argument("--refresh", action="store_true", help="download again even if cached")
    parser.add_argument("--validate", metavar="USER_DATA", type=Path, help="validate a #cloud-config file")
    args = parser.parse_args(argv)
    if not (args.ensure or args.refresh or args.validate):
        parser.error("nothing to do: pass --ensure, --refresh or --validate FILE")
    try:
        path = ensure_schema(refresh=args.refresh)
        if args.ensure or args.refresh:
            print(path)
        if args.validate:
            validate_user_data(args.validate.read_text())
    except SchemaUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CloudInitError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
