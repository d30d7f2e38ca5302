"""docs/stack.schema.json is made from the models, is valid Draft 2020-12, and agrees with the example stacks."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from components.config.resolve import parse
from components.config.schema import SCHEMA, main, render

STACKS = sorted((Path(__file__).resolve().parents[3] / "stacks").glob("Pulumi.*.yaml")) \
    + sorted((Path(__file__).resolve().parents[3] / "examples").glob("*/Pulumi.*.yaml"))   # (examples/kubevirt)
MODELINE = "# yaml-language-server: $schema=../docs/stack.schema.json"


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))


def test_committed_schema_is_current():
    assert SCHEMA.read_text() == render(), "run `python -m components.config.schema` and commit docs/stack.schema.json"
    assert main(["--check"]) == 0


def test_schema_is_valid_draft_2020_12():
    schema = json.loads(SCHEMA.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_setting_has_a_description():
    schema = json.loads(SCHEMA.read_text())
    for name, model in schema["$defs"].items():
        for key, prop in model.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{key} has no description"
    for key, prop in schema["properties"]["config"]["properties"].items():
        assert prop.get("description"), f"{key} has no description"


@pytest.mark.parametrize("path", STACKS, ids=[p.name for p in STACKS])
def test_example_stack_names_the_schema_and_validates(path):
    text = path.read_text()
    assert text.splitlines()[0] == (MODELINE.replace("../", "../../") if path.parent.parent.name == "examples"
                                    else MODELINE)
    document = yaml.safe_load(text)
    assert [e.message for e in validator().iter_errors(document)] == []
    # and vdesk itself accepts what the schema accepts here
    config = {key.split(":", 1)[1]: value for key, value in document["config"].items()}
    secrets = {key: True for key, value in config.items() if isinstance(value, dict) and "secure" in value}
    # the passwords its users name: secrets a team sets before its first `up` (an example cannot commit them)
    secrets.update({user["password"]: True for user in config.get("users", []) if user.get("password")})
    parse({k: v for k, v in config.items() if k not in secrets}, stack=path.stem.split(".")[1], config_keys=secrets)


def _team() -> dict:
    return yaml.safe_load(next(p for p in STACKS if p.name == "Pulumi.team.yaml").read_text())


def test_secrets_and_pulumis_own_keys_are_allowed():
    document = _team()
    document.update(encryptionsalt="v1:abc:v1:def:ghi", secretsprovider="passphrase", encryptedkey="xyz")
    document["config"]["vdesk:carol-password"] = {"secure": "v1:Zm9v"}
    document["config"]["other:setting"] = [1, 2]     # another namespace's key: not vdesk's business
    assert [e.message for e in validator().iter_errors(document)] == []


def _set(*path_and_value):
    *path, value = path_and_value

    def change(document):
        node = document
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _drop(*path):
    def change(document):
        node = document
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


BAD = [
    ("unknown-section", _set("config", "vdesk:hostz", {"local": {}})),          # a secret needs `secure:`
    ("plain-value-for-a-secret", _set("config", "vdesk:carol-password", "hunter2")),
    ("unknown-top-level-key", _set("stack", "team")),
    ("no-hosts", _drop("config", "vdesk:hosts")),
    ("size-with-a-space", lambda d: d["config"]["vdesk:users"][1].update(memory="2 GB")),
    ("unknown-accelerator", _set("config", "vdesk:hosts", {"local": {"accelerator": "fast"}})),
    ("users-as-a-mapping", _set("config", "vdesk:users", {"alice": {"profile": "standard"}})),
    ("unknown-user-setting", lambda d: d["config"]["vdesk:users"][0].update(shell="/bin/zsh")),
    ("user-without-profile", lambda d: d["config"]["vdesk:users"][0].pop("profile")),
    ("bad-entry-name", lambda d: d["config"]["vdesk:profiles"].update(Power_Users={"pool": "main"})),
    ("vcpus-zero", lambda d: d["config"]["vdesk:profiles"]["standard"].update(vcpus=0)),
]


@pytest.mark.parametrize("change", [c[1] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_stack_file_does_not_validate(change):
    document = copy.deepcopy(_team())
    change(document)
    assert list(validator().iter_errors(document)), "the schema accepted a broken stack file"
