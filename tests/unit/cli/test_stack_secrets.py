"""Each stack has its own secrets salt: a file naming another stack's is refused before Pulumi runs."""
from __future__ import annotations

import pytest

from components.cli import workdir

SALT_A = "v1:AAAAAAAAAAA=:v1:BBBBBBBBBBBBBBBB:CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "repo" / "stacks").mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        (tmp_path / "repo" / name).write_text("")
    (tmp_path / "repo" / "stacks" / "Pulumi.team-a.yaml").write_text(
        f"encryptionsalt: {SALT_A}\nconfig:\n  vdesk:db-password:\n    secure: v1:aaaa:bbbb\n")
    return tmp_path / "repo"


def test_a_stack_copying_another_stacks_salt_and_secrets_is_refused(repo, tmp_path):
    (repo / "stacks" / "Pulumi.team-b.yaml").write_text(
        f"encryptionsalt: {SALT_A}\nconfig:\n  vdesk:db-password:\n    secure: v1:aaaa:bbbb\n")
    with pytest.raises(workdir.SharedSecretsError, match=r"stack team-b: its encryptionsalt is the one of .*"
                                                         r"Pulumi.team-a.yaml \(stack team-a\)"):
        workdir.sync("team-b", tmp_path / "state", repo)
    assert not (tmp_path / "state" / "workdirs" / "team-b" / "stacks" / "Pulumi.team-b.yaml").exists()


def test_a_salt_of_another_stacks_mirror_is_refused_too(repo, tmp_path):
    mirror = tmp_path / "state" / "workdirs" / "dev" / "stacks"
    mirror.mkdir(parents=True)
    (mirror / "Pulumi.dev.yaml").write_text("encryptionsalt: v1:mirror-salt\n")    # made by pulumi stack init
    (repo / "stacks" / "Pulumi.team-b.yaml").write_text("encryptionsalt: v1:mirror-salt\n")
    with pytest.raises(workdir.SharedSecretsError, match="stack dev"):
        workdir.sync("team-b", tmp_path / "state", repo)


def test_a_stack_with_its_own_salt_or_none_syncs(repo, tmp_path):
    (repo / "stacks" / "Pulumi.team-b.yaml").write_text("encryptionsalt: v1:its-own\nconfig: {}\n")
    (repo / "stacks" / "Pulumi.dev.yaml").write_text("config: {}\n")
    assert workdir.sync("team-b", tmp_path / "state", repo).name == "team-b"
    assert workdir.sync("team-a", tmp_path / "state", repo).name == "team-a"    # its own mirror is not another's
    assert workdir.sync("team-a", tmp_path / "state", repo).name == "team-a"
    assert workdir.sync("dev", tmp_path / "state", repo).name == "dev"
