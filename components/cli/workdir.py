"""A per-user working copy of the project for the Pulumi CLI.

`pulumi stack init` writes a passphrase salt into the stack file and rewrites
it (dropping comments). The stack files in the repo are the team's
declaration, so the CLI runs in a mirror under the user's state dir: the
program and Pulumi.yaml are links to the clone, the stack file is the clone's
config plus the secrets settings. The clone is never written to by `sync`.

Two ways to hold secrets (`pulumi config set --secret`):

- **per user** (the repo's stack file has no `encryptionsalt`, e.g. `dev`,
  `ci`): each user's own passphrase and salt. Secrets set in the mirror stay
  in the mirror and survive every re-sync while the salt is the same.
- **team** (the repo's stack file has an `encryptionsalt` or another secrets
  provider): the team shares one passphrase; the repo's salt and its `secure:`
  values are used as they are, so secrets are committed with the stack file.

`python -m components.cli.workdir set-secret [--team] STACK KEY` sets `vdesk:KEY`
as a secret in the right place for the stack (the value is read from stdin;
`--team` starts team mode: the repo's stack file gets a salt for the
passphrase in PULUMI_CONFIG_PASSPHRASE).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from ..paths import state_dir

REPO = Path(__file__).resolve().parents[2]
_KEEP = ("encryptionsalt", "secretsprovider", "encryptedkey")  # secrets settings of a stack file
NAMESPACE = "vdesk"


def stack_file(stack: str, repo: Path = REPO) -> Path:
    """The stack's declaration: the repo's file, or $VDESK_STACK_FILE (a change request's version of it,
    previewed with this checkout's trusted code; see .ci/gitops)."""
    return Path(os.environ["VDESK_STACK_FILE"]) if os.environ.get("VDESK_STACK_FILE") else \
        repo / "stacks" / f"Pulumi.{stack}.yaml"


def team_secrets(stack: str, repo: Path = REPO) -> bool:
    """True if the repo's stack file carries its own secrets settings (a team-shared passphrase)."""
    declared = yaml.safe_load(stack_file(stack, repo).read_text()) or {}
    return any(declared.get(k) for k in _KEEP)


def _secure(value) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


def merge(declared: dict, previous: dict) -> dict:
    """The mirror's stack file: the repo's config with the secrets settings that apply."""
    team = any(declared.get(k) for k in _KEEP)
    source = declared if team else previous
    merged = {k: source[k] for k in _KEEP if source.get(k)}
    merged.update({k: v for k, v in declared.items() if k not in _KEEP})
    # Secrets set in the mirror (per user) stay as long as they can still be decrypted: same salt.
    if all(previous.get(k) == merged.get(k) for k in _KEEP):
        config = dict(declared.get("config") or {})
        kept = {k: v for k, v in (previous.get("config") or {}).items() if k not in config and _secure(v)}
        if kept:
            merged["config"] = {**config, **kept}
    return merged


class SharedSecretsError(ValueError):
    """A stack file names another stack's secrets settings: with the same passphrase, its secrets would decrypt."""


def _secrets_settings(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return {k: data[k] for k in _KEEP if isinstance(data, dict) and data.get(k) and k != "secretsprovider"}


def check_own_secrets(stack: str, declared: dict, state: Path, repo: Path = REPO) -> None:
    """Refuse a declared salt (or encrypted key) that another stack has: every stack's `secure:` values are
    encrypted with one passphrase (the user's, or the team's), so copying stack A's salt and ciphertexts
    into stack B's file would let B's desktops receive A's secrets."""
    mine = {k: declared[k] for k in ("encryptionsalt", "encryptedkey") if declared.get(k)}
    if not mine:
        return
    others = [p for p in (repo / "stacks").glob("Pulumi.*.yaml") if p.name != f"Pulumi.{stack}.yaml"]
    others += [p for p in (state / "workdirs").glob("*/stacks/Pulumi.*.yaml") if p.parent.parent.name != stack]
    for path in others:
        theirs = _secrets_settings(path)
        for key, value in mine.items():
            if theirs.get(key) == value:
                raise SharedSecretsError(f"stack {stack}: its {key} is the one of {path} (stack "
                                         f"{path.name[len('Pulumi.'):-len('.yaml')]}); each stack needs its own "
                                         f"(remove it, and set its secrets again with set-secret --team)")


def sync(stack: str, state: Path, repo: Path = REPO) -> Path:
    work = state / "workdirs" / stack
    (work / "stacks").mkdir(parents=True, exist_ok=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        link = work / name
        if not (link.is_symlink() and os.readlink(link) == str(repo / name)):
            link.unlink(missing_ok=True)
            link.symlink_to(repo / name)
    declared = yaml.safe_load(stack_file(stack, repo).read_text()) or {}
    check_own_secrets(stack, declared, state, repo)
    target = work / "stacks" / f"Pulumi.{stack}.yaml"
    previous = (yaml.safe_load(target.read_text()) if target.exists() else None) or {}
    merged = merge(declared, previous)
    header = f"# Generated from {stack_file(stack, repo)} by vdesk; edit that file, not this one.\n"
    target.write_text(header + yaml.safe_dump(merged, sort_keys=False))
    return work


def set_secret(stack: str, key: str, state: Path, repo: Path = REPO, *, team: bool = False,
               env: dict | None = None, value: str | None = None) -> Path:
    """Set `vdesk:<key>` as a secret of `stack`; returns the stack file that now holds it.

    The value is `value`, or else read by Pulumi from stdin (prompted for on a terminal); it is never
    put on a command line.

    Per-user stacks: Pulumi writes it into the mirror, where `sync` keeps it.
    Team stacks (or `team=True`, which starts one: the repo file gets a salt for
    the passphrase in the environment): the ciphertext, encrypted with the team
    passphrase and the repo file's salt, is written into the repo's stack file
    as one `secure:` entry; the rest of the file (order, comments) is untouched.
    """
    full = key if ":" in key else f"{NAMESPACE}:{key}"
    secret_input = None if value is None else value.encode()
    work = sync(stack, state, repo)
    run = dict(cwd=work, env=env, check=True)
    if subprocess.run(["pulumi", "stack", "select", stack], capture_output=True, cwd=work, env=env).returncode:
        subprocess.run(["pulumi", "stack", "init", stack, "--non-interactive"], capture_output=True, **run)
        work = sync(stack, state, repo)
    args = ["pulumi", "config", "set", "--secret", full, "--stack", stack]
    if not (team or team_secrets(stack, repo)):
        subprocess.run(args, input=secret_input, **run)
        return work / "stacks" / f"Pulumi.{stack}.yaml"
    # Pulumi would rewrite the whole file (it sorts keys): let it encrypt into a scratch copy instead.
    repo_file = stack_file(stack, repo)
    declared = yaml.safe_load(repo_file.read_text()) or {}
    scratch = work / f".secret-{os.getpid()}.yaml"
    scratch.write_text(yaml.safe_dump({k: declared[k] for k in _KEEP if declared.get(k)} | {"config": {}}))
    try:
        subprocess.run(args + ["--config-file", str(scratch)], input=secret_input, **run)
        written = yaml.safe_load(scratch.read_text())
    finally:
        scratch.unlink(missing_ok=True)
    text = put_secure(repo_file.read_text(), full, written["config"][full]["secure"],
                      written.get("encryptionsalt"))
    repo_file.write_text(text)
    return repo_file


def put_secure(text: str, full_key: str, ciphertext: str, salt: str | None) -> str:
    """`text` (a stack file) with `full_key: {secure: ciphertext}` under `config:` (and `salt`, if it had none);
    every other line stays as it was. The result is checked by parsing it."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    before = yaml.safe_load(text) or {}
    if salt and not before.get("encryptionsalt"):
        lines.insert(0, f"encryptionsalt: {salt}\n")
    entry = [f"  {full_key}:\n", f"    secure: {ciphertext}\n"]
    top = next((i for i, line in enumerate(lines) if re.match(r"^config:\s*(#.*)?$", line)), None)
    if top is None:
        lines += ["config:\n", *entry]
    else:
        own = next((i for i, line in enumerate(lines)
                    if i > top and re.match(rf"^  {re.escape(full_key)}:\s*(#.*)?$", line)), None)
        if own is None:
            lines[top + 1:top + 1] = entry
        else:
            end = own + 1
            while end < len(lines) and (lines[end].startswith("   ") or not lines[end].strip()):
                end += 1
            lines[own:end] = entry
    result = "".join(lines)
    after = yaml.safe_load(result)
    expected = dict(before, config={**(before.get("config") or {}), full_key: {"secure": ciphertext}})
    if salt and not before.get("encryptionsalt"):
        expected["encryptionsalt"] = salt
    if after != expected:
        raise ValueError(f"could not place {full_key} in the stack file's config mapping; set it by hand")
    return result


def main(argv: list[str]) -> int:
    state = state_dir()
    if argv[:1] == ["set-secret"]:
        team = "--team" in argv
        args = [a for a in argv[1:] if a != "--team"]
        if len(args) != 2:
            sys.stderr.write("usage: python -m components.cli.workdir set-secret [--team] STACK KEY  "
                             "(the value is read from stdin)\n")
            return 2
        where = set_secret(args[0], args[1], state, team=team)
        sys.stderr.write(f"{args[1]} set as a secret in {where}\n")
        return 0
    try:
        sys.stdout.write(f"{sync(argv[0], state)}\n")
    except SharedSecretsError as exc:
        sys.stderr.write(f"vdesk: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
