"""Adding or removing one user changes only that user's resources, as the preview shows.

A stack of two users is brought up on the project's own libvirtd with its
desktops powered off (`running: false`: everything is created, no guest
boots). Then a third user is added, and one removed, and each preview's steps
are compared with the URNs of that one user's desktop (the stack's quotas, and
the group all its users share, are no other desktop's change). The addition is then
applied, and the up changes exactly what the preview said.
"""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
from pulumi import automation as auto

from components.host import embedded
from tests.support.project import (isolated_env, make_project, on_the_console_image, open_stack, rewrite_config,
                                   stack_config)

pytestmark = pytest.mark.e2e
STACK = "people"
# A powered-off desktop: no readiness gate. On the embedded host (it has a portal) its users' record there.
PARTS = ("", "-credentials", "-portal", "-disk", "-seed", "-vm")


def people_config(*users: str) -> dict:
    cfg = on_the_console_image(copy.deepcopy(stack_config("dev")))
    cfg["vdesk:networks"]["lan"]["cidr"] = "10.82.0.0/24"
    cfg["vdesk:profiles"]["desktop"].update(running=False, memory="512MiB", disk="4GiB")
    cfg["vdesk:users"] = [{"name": name, "profile": "desktop", "groups": ["audio"]} for name in users]
    # Quotas, for a group every user is in: the stack's record of them on the host is not a user's resource.
    cfg["vdesk:quotas"] = {"groups": {"audio": {"desktops": 5}}}
    return cfg


def write_config(project: Path, config: dict) -> None:
    rewrite_config(project, STACK, config)


def desktop_urn_names(user: str) -> set[str]:
    return {f"{user}{part}" for part in PARTS}


class Steps:
    """The engine's planned steps, from the preview's event stream: (op, resource name) per URN."""

    def __init__(self):
        self.ops: dict[str, str] = {}

    def __call__(self, event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is not None:
            self.ops[pre.metadata.urn] = str(getattr(pre.metadata.op, "value", pre.metadata.op))

    def changed(self) -> dict[str, str]:
        """resource name -> op, for every step that is not `same`."""
        return {urn.split("::")[-1]: op for urn, op in self.ops.items() if op != "same"}


def preview(stack: auto.Stack) -> tuple[dict[str, str], dict]:
    steps = Steps()
    result = stack.preview(on_event=steps)
    return steps.changed(), {k: v for k, v in result.change_summary.items() if k != "same"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    state = tmp_path_factory.mktemp("vdesk-state")
    project = make_project(tmp_path_factory.mktemp("project"), STACK, people_config("alice", "bob"))
    stack = open_stack(project, STACK, isolated_env(state))
    yield {"stack": stack, "project": project, "state": state}
    try:
        stack.destroy()
    finally:
        embedded.stop(embedded.embedded_host("local", state_root=state), purge=True)


def test_adding_or_removing_a_user_touches_only_that_users_resources(world):
    stack, project = world["stack"], world["project"]
    first = stack.up()
    assert first.summary.result == "succeeded"
    assert sorted(first.outputs["desktops"].value) == ["alice", "bob"]
    assert {d["state"] for d in first.outputs["desktops"].value.values()} == {"stopped"}

    # Unchanged declaration: nothing to do.
    changed, summary = preview(stack)
    assert changed == {} and summary == {}

    # A third user: exactly carol's desktop is created, nothing else is touched.
    write_config(project, people_config("alice", "bob", "carol"))
    changed, summary = preview(stack)
    assert changed == {name: "create" for name in desktop_urn_names("carol")}, changed
    assert summary == {"create": len(PARTS)}

    # Removing a user instead: exactly bob's desktop is deleted.
    write_config(project, people_config("alice"))
    changed, summary = preview(stack)
    assert changed == {name: "delete" for name in desktop_urn_names("bob")}, changed
    assert summary == {"delete": len(PARTS)}

    # Apply the addition: the up does what its preview said, and alice's and bob's desktops stay as they were.
    write_config(project, people_config("alice", "bob", "carol"))
    before = {k: v for k, v in first.outputs["desktops"].value.items()}
    added = stack.up()
    assert {k: v for k, v in added.summary.resource_changes.items() if k != "same"} == {"create": len(PARTS)}
    after = added.outputs["desktops"].value
    assert sorted(after) == ["alice", "bob", "carol"]
    for user in ("alice", "bob"):
        assert after[user]["host_key"] == before[user]["host_key"]
