"""docs/stack.schema.json: the JSON Schema of a stack file as editors see it, made from the models.

A stack file (stacks/Pulumi.<stack>.yaml) is Pulumi's: its `config` holds the
`vdesk:<section>` keys that stackfile.py describes, and `vdesk:<key>: {secure: ...}`
entries for secrets such as passwords; Pulumi's own keys sit beside `config`.
Each example stack names the schema on its first line, for yaml-language-server:

    # yaml-language-server: $schema=../docs/stack.schema.json

`python -m components.config.schema` writes the file; with `--check` it only
says whether the committed file is current.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .loader import NAMESPACE
from .stackfile import StackFile, CONFIG_KEY_PATTERN

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "stack.schema.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
# Pulumi's own keys of a stack file, beside `config`.
PULUMI_KEYS = {
    "encryptionsalt": "Salt of the passphrase secrets provider; the `secure:` values of this file are encrypted "
                      "with the passphrase and this salt. Written by Pulumi (or by `set-secret --team`).",
    "secretsprovider": "The stack's secrets provider (e.g. a KMS URL), when it is not the passphrase. Written by "
                       "Pulumi.",
    "encryptedkey": "The stack's data key, encrypted by its secrets provider. Written by Pulumi.",
}


def document() -> dict:
    """The schema of a whole stack file."""
    sections = StackFile.model_json_schema(mode="validation")
    names = "|".join(sections["properties"])
    secret = {"type": "object", "description": "A secret set with `pulumi config set --secret vdesk:<key>`, "
                                               "e.g. a password that a user's `password` names.",
              "properties": {"secure": {"type": "string", "description": "The encrypted value."}},
              "required": ["secure"], "additionalProperties": False}
    config = {
        "type": "object",
        "description": f"The stack's configuration: the `{NAMESPACE}:` sections, secrets, and other namespaces' "
                       "keys (which vdesk does not read).",
        "properties": {f"{NAMESPACE}:{name}": value for name, value in sections["properties"].items()},
        "required": [f"{NAMESPACE}:{name}" for name in sections.get("required", [])],
        "patternProperties": {
            # any other vdesk key is a secret (a section's name is not: it is declared above)
            f"^{NAMESPACE}:(?!({names})$){CONFIG_KEY_PATTERN.removeprefix('^')}": {"$ref": "#/$defs/Secret"},
            f"^(?!{NAMESPACE}:)[^:]+:": {},
        },
        "additionalProperties": False,
    }
    return {
        "$schema": DRAFT,
        "title": "vdesk stack file",
        "description": "stacks/Pulumi.<stack>.yaml: the desktops of a stack, declared for vdesk "
                       "(generated from components/config/stackfile.py by `python -m components.config.schema`).",
        "type": "object",
        "properties": {"config": config, **{key: {"type": "string", "description": text}
                                            for key, text in PULUMI_KEYS.items()}},
        "required": ["config"],
        "additionalProperties": False,
        "$defs": {**sections["$defs"], "Secret": secret},
    }


def render() -> str:
    return json.dumps(document(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        if SCHEMA.exists() and SCHEMA.read_text() == render():
            return 0
        sys.stderr.write(f"{SCHEMA} is stale: run `python -m components.config.schema` and commit it\n")
        return 1
    if argv:
        sys.stderr.write("usage: python -m components.config.schema [--check]\n")
        return 2
    SCHEMA.write_text(render())
    sys.stdout.write(f"wrote {SCHEMA}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
