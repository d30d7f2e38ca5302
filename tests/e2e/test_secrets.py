"""How secrets get into a stack: a password kept in plain text is refused before anything exists, and
`components.cli.workdir set-secret` keeps per-user secrets in the user's mirror and team secrets in the
committed stack file.

Where a password and the display's secrets end up once a desktop is up (only as hashes; nowhere in state,
XML, logs or output) is searched for on a real guest in tests/e2e/test_console_e2e.py, whose desktop's user
has a password secret: one TCG boot serves both.
"""
from __future__ import annotations

import copy
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from pulumi import automation as auto

from components.cli import workdir
from tests.support.project import REPO, isolated_env, make_project, on_the_console_image, open_stack, stack_config

pytestmark = pytest.mark.e2e
STACK = "secrets"
USER = "sam"
KEY = "sam-password"
PASSWORD = f"vdesk-{secrets.token_urlsafe(18)}"   # random: it cannot be anywhere by chance


def secrets_config() -> dict:
    cfg = on_the_console_image(copy.deepcopy(stack_config("dev")))
    cfg["vdesk:networks"]["lan"]["cidr"] = "10.81.0.0/24"
    cfg["vdesk:profiles"]["desktop"].update(memory="768MiB", disk="4GiB")
    cfg["vdesk:users"] = [{"name": USER, "profile": "desktop", "password": KEY}]
    cfg["vdesk:timeouts"] = copy.deepcopy(stack_config("ci")["vdesk:timeouts"])
    return cfg


def test_a_password_kept_in_plain_text_is_refused_before_anything_exists(tmp_path):
    state = tmp_path / "state"
    stack = open_stack(make_project(tmp_path / "project", "plain", secrets_config()), "plain", isolated_env(state))
    stack.set_config(f"vdesk:{KEY}", auto.ConfigValue(PASSWORD, secret=False))
    printed: list[str] = []
    with pytest.raises(auto.CommandError) as err:
        stack.preview(on_output=printed.append)
    assert (f"users[0].password: vdesk:{KEY} is stored in plain text: set it again with "
            f"`pulumi config set --secret vdesk:{KEY}`") in str(err.value)
    assert PASSWORD not in str(err.value) + "".join(printed)
    assert not (state / "hosts").exists()     # stopped before even starting the embedded host


# --- how secrets get into a stack: components.cli.workdir set-secret ---------------------------------------


def cli_env(root: Path, passphrase: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PULUMI_CONFIG_PASSPHRASE_FILE"}
    (root / "backend").mkdir(parents=True, exist_ok=True)
    env.update(PULUMI_BACKEND_URL=f"file://{root / 'backend'}", PULUMI_HOME=str(root / "home"),
               PULUMI_CONFIG_PASSPHRASE=passphrase, PULUMI_SKIP_UPDATE_CHECK="true", VDESK_STATE=str(root))
    return env


def config_get(work: Path, stack: str, key: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["pulumi", "config", "get", f"vdesk:{key}", "--stack", stack], cwd=work, env=env,
                          capture_output=True, text=True)


@pytest.fixture
def repo_copy(tmp_path):
    repo = tmp_path / "repo"
    (repo / "stacks").mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(REPO / name, repo / name)
    for stack in ("dev", "team"):
        shutil.copy(REPO / "stacks" / f"Pulumi.{stack}.yaml", repo / "stacks")
    return repo


def test_a_per_user_secret_stays_in_the_users_mirror(repo_copy, tmp_path):
    env = cli_env(tmp_path / "me", "my-own-passphrase")
    state = tmp_path / "me"
    declared = (repo_copy / "stacks" / "Pulumi.dev.yaml").read_bytes()
    where = workdir.set_secret("dev", "dev-password", state, repo_copy, env=env, value=PASSWORD)
    assert where == state / "workdirs" / "dev" / "stacks" / "Pulumi.dev.yaml"
    assert (repo_copy / "stacks" / "Pulumi.dev.yaml").read_bytes() == declared    # the clone is not written
    mirrored = yaml.safe_load(where.read_text())
    assert set(mirrored["config"]["vdesk:dev-password"]) == {"secure"} and PASSWORD not in where.read_text()
    work = workdir.sync("dev", state, repo_copy)                                   # as every tools/vdesk run does
    assert config_get(work, "dev", "dev-password", env).stdout.strip() == PASSWORD


def test_a_team_secret_is_committed_encrypted_and_readable_with_the_team_passphrase(repo_copy, tmp_path):
    team_file = repo_copy / "stacks" / "Pulumi.team.yaml"
    original = team_file.read_text()
    first = cli_env(tmp_path / "first", "the-team-passphrase")
    assert workdir.set_secret("team", "carol-password", tmp_path / "first", repo_copy, team=True, env=first,
                              value=PASSWORD) == team_file
    workdir.set_secret("team", "erin-password", tmp_path / "first", repo_copy, env=first, value="erin's")
    text = team_file.read_text()
    assert PASSWORD not in text
    # Only the salt and two entries were added: every line of the declaration (comments too) is still there.
    added = [line for line in text.splitlines() if line not in original.splitlines()]
    assert len(added) == 5 and added[0].startswith("encryptionsalt: v1:")
    assert [line for line in text.splitlines() if line in original.splitlines()] == original.splitlines()

    # Another machine (own state, own backend) with the team passphrase reads them from the committed file.
    other = cli_env(tmp_path / "other", "the-team-passphrase")
    work = workdir.sync("team", tmp_path / "other", repo_copy)
    subprocess.run(["pulumi", "stack", "init", "team", "--non-interactive"], cwd=work, env=other, check=True,
                   capture_output=True)
    assert config_get(work, "team", "carol-password", other).stdout.strip() == PASSWORD
    assert config_get(work, "team", "erin-password", other).stdout.strip() == "erin's"
    wrong = config_get(work, "team", "carol-password", cli_env(tmp_path / "other", "not-the-passphrase"))
    assert wrong.returncode != 0 and "incorrect passphrase" in wrong.stderr
