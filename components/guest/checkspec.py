"""Declarative guest checks from stack config: validated, normalized and read as sentences.

guest/checkrun.py runs them, through the check objects of guest/checks.py, on a desktop or a container.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..errors import InputError

# Each kind with its allowed options. The kind key holds the check's target.
KINDS: dict[str, tuple[str, ...]] = {
    "package": (),
    "absent_package": (),
    "service": ("enabled",),
    "file": ("contains",),
    "port": (),
    "user": ("groups",),
    "command": ("output_matches", "sudo"),
    "session": ("within",),
}
# Bump when what a check runs changes, so checks_digest() re-runs existing checks.
_DIGEST_VERSION = "vdesk-checks/1"

_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.\-]+(:[a-z0-9\-]+)?$")
_UNIT = re.compile(r"^[A-Za-z0-9:_.@\\\-]+$")
_ACCOUNT = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*\$?$")
_PORT_SPEC = re.compile(r"^(?:(?P<proto>[A-Za-z0-9]+)/)?(?:(?P<addr>\[[^\]]*\]|[^\[\]]*):)?(?P<port>[^:/\[\]]*)$")


class CheckSpecError(InputError):
    """Invalid check config; .problems lists every (path, message), str() shows one per line."""


@dataclass(frozen=True)
class Check:
    """One validated check: kind, normalized target, options and the sentence it stands for."""

    kind: str
    target: str
    options: dict = field(default_factory=dict)
    sentence: str = ""


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_checks(raw: Any, path: str = "checks") -> list[Check]:
    """Validate a list of check items; raise CheckSpecError naming every problem at once."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise CheckSpecError([(path, f"must be a list of checks, got {type(raw).__name__}")])
    problems: list[tuple[str, str]] = []
    checks: list[Check] = []
    for index, item in enumerate(raw):
        check = _parse_item(item, f"{path}[{index}]", problems)
        if check is not None:
            checks.append(check)
    if problems:
        raise CheckSpecError(problems)
    return checks


def _parse_item(item: Any, path: str, problems: list[tuple[str, str]]) -> Check | None:
    """Validate one item; append problems and return None if it is unusable."""
    kinds_list = ", ".join(KINDS)
    if not isinstance(item, dict):
        problems.append((path, f"must be a mapping with one of: {kinds_list}; got {_describe(item)}"))
        return None
    kinds = [key for key in item if key in KINDS]
    if not kinds:
        keys = ", ".join(str(k) for k in item)
        got = f"got key(s): {keys}" if keys else "it is empty"
        problems.append((path, f"names no check kind (use one of: {kinds_list}); {got}"))
        return None
    if len(kinds) > 1:
        problems.append((path, f"has more than one check kind ({', '.join(kinds)}); write one check per item"))
        return None
    kind = kinds[0]
    allowed = KINDS[kind]
    before = len(problems)
    for key in item:
        if key != kind and key not in allowed:
            listing = ", ".join(allowed) if allowed else "none"
            problems.append((f"{path}.{key}", f"unknown option for a {kind} check (allowed: {listing})"))
    target = _TARGETS[kind](item[kind], f"{path}.{kind}", problems)
    options = _OPTIONS[kind](item, path, problems)
    if len(problems) > before or target is None:
        return None
    return Check(kind, target, options, _sentence(kind, target, options))


def _describe(value: Any) -> str:
    """Type and short repr of a config value, for messages."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _string(value: Any, path: str, problems: list, what: str) -> str | None:
    """A non-empty string, or a problem naming the path."""
    if not isinstance(value, str) or not value.strip():
        problems.append((path, f"must be a non-empty string ({what}), got {_describe(value)}"))
        return None
    return value


def _package_target(value, path, problems):
    name = _string(value, path, problems, "a Debian package name")
    if name is not None and not _PACKAGE.match(name):
        problems.append((path, f"{name!r} is not a valid Debian package name"))
        return None
    return name


def _service_target(value, path, problems):
    name = _string(value, path, problems, "a systemd unit name")
    if name is not None and not _UNIT.match(name):
        problems.append((path, f"{name!r} is not a valid systemd unit name"))
        return None
    return name


def _file_target(value, path, problems):
    name = _string(value, path, problems, "an absolute path")
    if name is not None and (not name.startswith("/") or "\0" in name or "\n" in name):
        problems.append((path, f"{name!r} is not an absolute path"))
        return None
    return name


def _user_target(value, path, problems):
    name = _string(value, path, problems, "a user name")
    if name is not None and not _ACCOUNT.match(name):
        problems.append((path, f"{name!r} is not a valid user name"))
        return None
    return name


def _command_target(value, path, problems):
    return _string(value, path, problems, "a shell command line")


def _port_target(value, path, problems):
    """Normalize 22 / "udp/53" / "tcp/0.0.0.0:22" / "tcp/[::1]:22" to "PROTO/[ADDR:]PORT"."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        problems.append((path, f"must be a port number or 'PROTOCOL/[ADDRESS:]PORT', got {_describe(value)}"))
        return None
    if isinstance(value, int):
        if not 0 < value < 65536:
            problems.append((path, f"{value} is not a port (use 1-65535)"))
            return None
        return f"tcp/{value}"
    match = _PORT_SPEC.match(value.strip())
    if not match:
        problems.append((path, f"{value!r} is not a port"))
        return None
    proto = (match.group("proto") or "tcp").lower()
    if proto not in ("tcp", "udp"):
        problems.append((path, f"{value!r} has an unknown protocol {match.group('proto')!r} (use tcp or udp)"))
        return None
    port = match.group("port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        problems.append((path, f"{value!r} is not a port" + (" (use 1-65535)" if port.isdigit() else "")))
        return None
    address = match.group("addr")
    if address is None:
        return f"{proto}/{int(port)}"
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        problems.append((path, f"{value!r} has an invalid address {address!r}"))
        return None
    shown = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{proto}/{shown}:{int(port)}"


_TARGETS = {
    "package": _package_target,
    "absent_package": _package_target,
    "service": _service_target,
    "file": _file_target,
    "port": _port_target,
    "user": _user_target,
    "command": _command_target,
    "session": _user_target,
}


def _flag(item: dict, key: str, path: str, problems: list) -> bool | None:
    """An optional boolean option: None if absent."""
    if key not in item:
        return None
    value = item[key]
    if not isinstance(value, bool):
        problems.append((f"{path}.{key}", f"must be true or false, got {_describe(value)}"))
        return None
    return value


def _no_options(item, path, problems) -> dict:
    return {}


def _service_options(item, path, problems) -> dict:
    enabled = _flag(item, "enabled", path, problems)
    if enabled is False:  # "must be disabled" or "do not care"? Refuse to guess.
        problems.append((f"{path}.enabled", "only `enabled: true` is supported; leave it out to not check it"))
    return {"enabled": True} if enabled else {}


def _file_options(item, path, problems) -> dict:
    if "contains" not in item:
        return {}
    text = item["contains"]
    if not isinstance(text, str) or not text:
        problems.append((f"{path}.contains", f"must be a non-empty string, got {_describe(text)}"))
        return {}
    return {"contains": text}


def _user_options(item, path, problems) -> dict:
    if "groups" not in item:
        return {}
    groups = item["groups"]
    if not isinstance(groups, list) or not groups:
        problems.append((f"{path}.groups", f"must be a non-empty list of group names, got {_describe(groups)}"))
        return {}
    names = []
    for i, group in enumerate(groups):
        if not isinstance(group, str) or not _ACCOUNT.match(group):
            problems.append((f"{path}.groups[{i}]", f"{group!r} is not a valid group name"))
        elif group not in names:
            names.append(group)
    return {"groups": names}


def _command_options(item, path, problems) -> dict:
    options: dict = {}
    if "output_matches" in item:
        pattern = item["output_matches"]
        if not isinstance(pattern, str) or not pattern:
            message = f"must be a non-empty regular expression, got {_describe(pattern)}"
            problems.append((f"{path}.output_matches", message))
        else:
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.append((f"{path}.output_matches", f"{pattern!r} is not a valid regular expression: {exc}"))
            else:
                options["output_matches"] = pattern
    if _flag(item, "sudo", path, problems):
        options["sudo"] = True
    return options


def _session_options(item, path, problems) -> dict:
    if "within" not in item:
        return {}
    within = item["within"]
    if isinstance(within, bool) or not isinstance(within, int) or not 0 <= within <= 3600:
        problems.append((f"{path}.within", f"must be a number of seconds from 0 to 3600, got {_describe(within)}"))
        return {}
    return {"within": within}


_OPTIONS = {
    "package": _no_options,
    "absent_package": _no_options,
    "service": _service_options,
    "file": _file_options,
    "port": _no_options,
    "user": _user_options,
    "command": _command_options,
    "session": _session_options,
}


def _sentence(kind: str, target: str, options: dict) -> str:
    """What the check asserts, as a sentence: "service ssh is running and enabled"."""
    if kind == "package":
        return f"package {target} is installed"
    if kind == "absent_package":
        return f"package {target} is not installed"
    if kind == "service":
        return f"service {target} is running" + (" and enabled" if options.get("enabled") else "")
    if kind == "file":
        return f"file {target} contains {options['contains']!r}" if "contains" in options else f"file {target} exists"
    if kind == "port":
        return f"port {target} is listening"
    if kind == "user":
        text = f"user {target} exists"
        if options.get("groups"):
            text += f" and is in group(s) {', '.join(options['groups'])}"
        return text
    if kind == "session":
        return f"user {target} has an active graphical session"
    text = f"command `{target}` succeeds"
    if options.get("sudo"):
        text += " as root"
    if "output_matches" in options:
        text += f" with output matching {options['output_matches']!r}"
    return text


def checks_digest(checks: Sequence[Check]) -> str:
    """A stable sha256 over the checks (their order does not matter), to re-run them on change."""
    items = sorted(
        json.dumps([c.kind, c.target, c.options], sort_keys=True, separators=(",", ":")) for c in checks
    )
    payload = json.dumps([_DIGEST_VERSION, items], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


__all__ = [
    "Check",
    "CheckSpecError",
    "KINDS",
    "checks_digest",
    "parse_checks",
]
