"""Hostile strings in every kind of stack-file field, through the whole preview-time check.

A stack file is written by whoever opens a change request. Each generated case puts one
hostile value into one field of a valid stack and runs what `preview` runs before anything
exists (`loader.validate`: the models, cross-references, the host policy, and every desktop's
seed rendered against cloud-init's schema). It must end one of two ways:

- refused, with a problem whose path is that field (`users[0].memory`), never some other one;
- accepted, and then the value is in the parsed config exactly as written, and the seed the
  desktop gets still parses to the same document shape (the value did not open a new key).

The paths below are the kinds of values that reach XML, a shell, a host path or cloud-init.
"""
from __future__ import annotations

import copy

import yaml
from hypothesis import given
from hypothesis import strategies as st

from components.cloudinit import CloudInitError
from components.config.loader import HOME_DEVICE, validate
from components.desktop.seeding import check_seed
from components.errors import InputError
from tests.reliability import ledger
from tests.reliability.test_hostile_rendering import HOSTILE, KEY_BODY

BASE = {
    "hosts": {"local": {"uri": "embedded", "accelerator": "tcg"}},
    "pools": {"main": {"host": "local"}},
    "networks": {"lan": {"host": "local", "cidr": "10.77.0.0/24", "domain": "lan.test",
                         "dns_hosts": [{"ip": "10.77.0.9", "hostnames": ["files"]}]}},
    "images": {"debian12": {"golden": "debian12"}},
    "profiles": {"standard": {"template": "desktop", "pool": "main", "network": "lan", "image": "debian12",
                              "memory": "1GiB", "groups": ["netdev"],
                              "checks": [{"command": "true"}, {"file": "/etc/hostname", "contains": "x"}]}},
    "users": [{"name": "alice", "profile": "standard", "ssh_authorized_keys": [f"{KEY_BODY} alice@laptop"]}],
}

# (field path as the error names it, where it is in the raw config, how the value is written there)
FIELDS = [
    ("users[0].name", ("users", 0, "name"), str),
    ("users[0].memory", ("users", 0, "memory"), str),
    ("users[0].disk", ("users", 0, "disk"), str),
    ("users[0].groups[0]", ("users", 0, "groups"), lambda v: [v]),
    ("users[0].ssh_authorized_keys[0]", ("users", 0, "ssh_authorized_keys"), lambda v: [f"{KEY_BODY} {v}"]),
    ("users[0].password", ("users", 0, "password"), str),
    ("users[0].profile", ("users", 0, "profile"), str),
    ("profiles.standard.template", ("profiles", "standard", "template"), str),
    ("profiles.standard.kernel_args", ("profiles", "standard", "kernel_args"), str),
    ("profiles.standard.checks[0].command", ("profiles", "standard", "checks", 0, "command"), str),
    ("profiles.standard.checks[1].file", ("profiles", "standard", "checks", 1, "file"), str),
    ("profiles.standard.checks[1].contains", ("profiles", "standard", "checks", 1, "contains"), str),
    ("pools.main.path", ("pools", "main", "path"), str),
    ("networks.lan.cidr", ("networks", "lan", "cidr"), str),
    ("networks.lan.domain", ("networks", "lan", "domain"), str),
    ("networks.lan.bridge", ("networks", "lan", "bridge"), str),
    ("networks.lan.dns_hosts[0].hostnames[0]", ("networks", "lan", "dns_hosts", 0, "hostnames"), lambda v: [v]),
    ("images.debian12.path", ("images", "debian12"), lambda v: {"path": v}),
    ("hosts.local.uri", ("hosts", "local", "uri"), str),
    ("prefix", ("prefix",), str),
]


def put(raw: dict, where: tuple, value) -> None:
    node = raw
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value


def get(raw, where: tuple):
    for key in where:
        raw = raw[key]
    return raw


def names_the_field(problem_path: str, field: str) -> bool:
    """The problem is at the field, inside it, or at the mapping that holds it (a whole image entry)."""
    return problem_path == field or problem_path.startswith((field + ".", field + "[")) or \
        field.startswith(problem_path + ".")


SEED_KEYS = None


def seed_shape(config) -> set[str]:
    desk = config.desktops["alice"]
    docs = check_seed(desk.profile, desk.users, hostname=desk.name, home_device=HOME_DEVICE if desk.settings.home else None)
    return set(yaml.safe_load(docs.user_data))


@given(field=st.sampled_from(FIELDS), value=HOSTILE)
def test_a_hostile_value_in_any_field_is_refused_naming_it_or_carried_intact(field, value):
    global SEED_KEYS
    path, where, write = field
    if SEED_KEYS is None:
        SEED_KEYS = seed_shape(validate("team", copy.deepcopy(BASE)))
    raw = copy.deepcopy(BASE)
    put(raw, where, write(value))
    try:
        config = validate("team", raw, config_keys={value: True} if path == "users[0].password" else None)
    except InputError as refused:
        paths = [p for p, _ in refused.problems]
        ok = any(names_the_field(p, path) for p in paths) and all(message.strip() for _, message in refused.problems)
        ledger.hostile("rejected" if ok else "unescaped")
        assert ok, (path, value, refused.problems)
        return
    except CloudInitError as exc:      # validate turns these into InputError; getting one raw is a defect
        ledger.hostile("unescaped")
        raise AssertionError((path, value, exc.errors))
    # Accepted: the value is carried exactly (a key line loses only its surrounding blanks), and the seed
    # keeps its shape.
    carried = {
        "users[0].ssh_authorized_keys[0]": lambda: f"{KEY_BODY} {value}".strip() in config.desktops["alice"].users[0].ssh_authorized_keys,
        "profiles.standard.checks[0].command": lambda: value in [c.get("command") for c in config.desktops["alice"].settings.checks],
        "profiles.standard.checks[1].contains": lambda: value in [c.get("contains") for c in config.desktops["alice"].settings.checks],
    }.get(path, lambda: True)()
    same_shape = seed_shape(config) == SEED_KEYS
    ledger.hostile("rendered_safely" if carried and same_shape else "unescaped")
    assert carried and same_shape, (path, value)
