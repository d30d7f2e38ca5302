"""A desktop made before its credentials were one resource moves over: no replace, the same keys and password.

On the project's own libvirtd (a stopped desktop: no guest boots). The first `up` runs the program with the
three resources of before (tests/support/legacy_credentials.py); components.cli.migrate then moves the state
over, and the next `up` of today's program changes nothing: every step is `same`, the domain keeps its UUID,
the new resource holds the old login key, host key and display password, and the state file holds them only as
ciphertext. Before it is moved over, today's program is refused (not given new keys).
"""
from __future__ import annotations

import copy
import json

import pytest
from pulumi import automation as auto

from components.cli import migrate
from components.cli.run import checkpoint_file
from components.host import embedded
from tests.support.host import inventory
from tests.support.project import REPO, isolated_env, make_project, open_stack, stack_config

pytestmark = pytest.mark.integration
STACK = "creds"
PROGRAM_OF_BEFORE = ("import tests.support.legacy_credentials as legacy\nlegacy.install()\n"
                     + (REPO / "__main__.py").read_text())


def _config() -> dict:
    cfg = copy.deepcopy(stack_config("ci"))
    cfg["vdesk:networks"]["lan"]["cidr"] = "10.86.0.0/24"
    desk = cfg["vdesk:desktops"]["ci"]
    desk.update(running=False, display={"password_valid_for": "30d"})
    desk.pop("checks")
    return cfg


SECRET_SIG = "4dabf18193072939515e22adb298388d"    # how the exported state marks a secret


def _secret_value(value) -> str:
    """The value of a secret as the Automation API exports it (shown); fails if it is not a secret."""
    assert isinstance(value, dict) and SECRET_SIG in value, f"not a secret: {str(value)[:20]}..."
    return json.loads(value["plaintext"])


def _by_name(stack) -> dict[str, dict]:
    return {r["urn"].rsplit("::", 1)[1]: r for r in stack.export_stack().deployment["resources"]}


def test_a_desktop_of_before_moves_over_without_a_replace_or_a_new_key(tmp_path, monkeypatch):
    state = tmp_path / "state"
    env = isolated_env(state)
    project = make_project(tmp_path / "project", STACK, _config())
    (project / "__main__.py").write_text(PROGRAM_OF_BEFORE)
    host = embedded.embedded_host("local", state_root=state)
    embedded.ensure_running(host)
    stack = open_stack(project, STACK, env)
    try:
        assert stack.up(parallel=16).summary.result == "succeeded"
        before = _by_name(stack)            # (the Automation API exports with the secrets shown)
        login, host_key, display = (before[f"ci-{p}"]["outputs"] for p in ("login-key", "host-key",
                                                                           "display-password"))
        assert "ci-credentials" not in before and display["valid_to"]
        objects = inventory(host.uri)

        (project / "__main__.py").write_text((REPO / "__main__.py").read_text())
        # today's program on the state of before, not moved over: refused, not given new keys
        with pytest.raises(auto.CommandError) as refused:
            stack.preview()
        assert "components.cli.migrate" in str(refused.value)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(project)
        exported = _by_name(stack)
        assert migrate.migrate(STACK, "vdesk", write=False) == ["ci"], "a preview's question: what would move"
        assert _by_name(stack) == exported, "and it wrote nothing"
        assert migrate.migrate(STACK, "vdesk") == ["ci"]
        assert migrate.migrate(STACK, "vdesk") == [], "moved once: nothing is left to move"

        steps: list[tuple[str, str]] = []

        def step(event):
            if event.resource_pre_event is not None:
                meta = event.resource_pre_event.metadata
                steps.append((str(getattr(meta.op, "value", meta.op)), meta.urn.rsplit("::", 1)[1]))
        assert stack.up(parallel=16, on_event=step).summary.result == "succeeded"
        assert {op for op, _ in steps} == {"same"}, steps
        assert ("same", "ci-credentials") in steps and ("same", "ci-vm") in steps
        assert inventory(host.uri) == objects, "the same domain (UUID), volumes and seed"

        after = _by_name(stack)
        assert not {"ci-login-key", "ci-host-key", "ci-display-password"} & set(after)
        held = after["ci-credentials"]["outputs"]
        assert (held["login_public_key"], held["login_private_key"]) == (login["public_key"], login["private_key"])
        assert (held["host_public_key"], held["host_private_key"]) == (host_key["public_key"],
                                                                       host_key["private_key"])
        assert (held["display_password"], held["display_password_valid_to"]) == (display["password"],
                                                                                 display["valid_to"])
        assert set(stack.preview().change_summary) == {"same"}

        secrets = [_secret_value(held[k]) for k in ("login_private_key", "host_private_key", "display_password")]
        text = checkpoint_file(STACK, "vdesk").read_text()
        assert not [s for s in secrets if s in text or json.dumps(s)[1:-1] in text], \
            "the state file holds the secrets as ciphertext only"
    finally:
        stack.destroy()
        embedded.stop(host, purge=True)
