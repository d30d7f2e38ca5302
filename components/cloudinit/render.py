"""Render a profile's NoCloud documents from Jinja templates, and refuse any seed that would not parse or validate.

What the templates may be given is the variable contract (contract.py): ``render_seed`` checks it first.
Templates then see those names normalized, plus ``profile`` (the profile name).
Unknown variables are errors, so a typo is never silently ignored.
"""

import functools
import re
import traceback
from pathlib import Path

import jinja2
import yaml

from ..paths import shipped
from . import CloudInitError, SeedDocuments
from .contract import normalize_variables
from .schema import ROOT, parse_yaml, user_data_errors, yaml_problem

TEMPLATES_DIR = shipped("templates")
USER_DATA_DIR = "user-data"
TEMPLATE_SUFFIX = ".yaml.j2"
META_DATA_TEMPLATE = "meta-data.yaml.j2"
NETWORK_CONFIG_TEMPLATE = "network-config.yaml.j2"
ABSTRACT_PROFILES = frozenset({"base"})  # skeletons other profiles extend
YAML_WIDTH = 1 << 30  # never fold: every interpolated value stays on one line
UNDEFINED_NAME_RE = re.compile(r"^'([^']+)' is undefined$|has no attribute '([^']+)'$")


def available_profiles() -> list[str]:
    """Profile names: the concrete templates under templates/user-data/."""
    names = (path.name.removesuffix(TEMPLATE_SUFFIX)
             for path in (TEMPLATES_DIR / USER_DATA_DIR).glob(f"*{TEMPLATE_SUFFIX}"))
    return sorted(name for name in names if name not in ABSTRACT_PROFILES)


def render_seed(profile: str, variables: dict) -> SeedDocuments:
    """Render, re-parse and validate the three NoCloud documents of ``profile``.

    Raises ``CloudInitError`` listing every problem found in ``variables``,
    or what kept a rendered document from parsing or validating.
    """
    profiles = available_profiles()
    if profile not in profiles:
        raise CloudInitError([("profile", f"unknown profile {profile!r}; choose one of {', '.join(profiles)}")])
    context = normalize_variables(variables)
    context["profile"] = profile
    docs = SeedDocuments(
        user_data=render_template(f"{USER_DATA_DIR}/{profile}{TEMPLATE_SUFFIX}", context),
        meta_data=render_template(META_DATA_TEMPLATE, context),
        network_config=render_template(NETWORK_CONFIG_TEMPLATE, context),
    )
    errors = []
    for name, text in (("meta-data", docs.meta_data), ("network-config", docs.network_config)):
        errors.extend(_mapping_errors(name, text))
    errors.extend(
        (_document_path("user-data", path), message) for path, message in user_data_errors(docs.user_data)
    )
    if errors:
        raise CloudInitError(errors)
    return docs


def render_template(name: str, context: dict) -> str:
    """Render one template; an undefined variable is a ``CloudInitError`` naming it and the template."""
    try:
        return _environment().get_template(name).render(context)
    except jinja2.UndefinedError as exc:
        raise CloudInitError([_undefined_error(exc, name)]) from None


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # YAML, not HTML: values are quoted by the `yaml` filter
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["yaml"] = to_yaml
    env.filters["itemlines"] = item_lines
    env.globals["fail"] = fail
    return env


class _QuotingDumper(yaml.SafeDumper):
    """Safe YAML that double-quotes every string, so none can read as another type."""


_QuotingDumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
)


def to_yaml(value) -> str:
    """Jinja filter: ``value`` as a one-line YAML scalar or flow collection."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()  # raises, naming the variable
    text = yaml.dump(value, Dumper=_QuotingDumper, default_flow_style=True,
                     allow_unicode=True, width=YAML_WIDTH, sort_keys=False)
    text = text.removesuffix("\n...\n").removesuffix("\n")
    if "\n" in text:
        raise ValueError(f"value does not fit on one YAML line: {value!r}")
    return text


def item_lines(text: str) -> list[str]:
    """Jinja filter: the non-blank, non-comment lines of a block, stripped."""
    lines = (line.strip() for line in str(text).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def fail(path: str, message: str):
    """Jinja global: let a template reject its input as a user error."""
    raise CloudInitError([(path, message)])


def _undefined_error(exc: jinja2.UndefinedError, name: str) -> tuple[str, str]:
    template, line = name, None
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if path.suffix == ".j2" and path.is_relative_to(TEMPLATES_DIR):
            template, line = path.relative_to(TEMPLATES_DIR).as_posix(), frame.lineno
    match = UNDEFINED_NAME_RE.search(exc.message or "")
    variable = next((group for group in match.groups() if group), None) if match else None
    where = f"template {template}" + (f" line {line}" if line else "")
    if template != name:
        where += f", rendering {name}"
    return (variable or template, f"undefined variable ({exc.message}) in {where}")


def _document_path(document: str, path: str) -> str:
    return document if path == ROOT else f"{document}.{path}"


def _mapping_errors(document: str, text: str) -> list[tuple[str, str]]:
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        return [(document, f"rendered text is not valid YAML: {yaml_problem(exc)}")]
    if not isinstance(data, dict):
        return [(document, f"rendered document is a {type(data).__name__}, not a mapping")]
    return []
