"""Bad input fails at preview, names the field, and creates nothing."""
from __future__ import annotations

import copy

import pytest
from pulumi import automation as auto

from tests.support.project import isolated_env, make_project, open_stack, stack_config

pytestmark = pytest.mark.e2e


def broken(change):
    config = copy.deepcopy(stack_config("ci"))
    change(config)
    return config


@pytest.mark.parametrize("change,field,message", [
    (lambda c: c["vdesk:desktops"]["ci"].update(memory="2 GB"), "desktops.ci.memory", "'2 GB' is not a size"),
    (lambda c: c["vdesk:desktops"]["ci"].update(network="wan"), "desktops.ci.network", "unknown network 'wan'"),
    (lambda c: c["vdesk:images"].update(debian12={"path": "/nonexistent/disk.qcow2"}), "images.debian12.path",
     "does not exist"),
], ids=["memory", "network", "image-path"])
def test_preview_fails_naming_the_field_and_creates_nothing(tmp_path, change, field, message):
    env = isolated_env(tmp_path / "state")
    stack = open_stack(make_project(tmp_path / "project", "bad", broken(change)), "bad", env)
    with pytest.raises(auto.CommandError) as err:
        stack.preview()
    assert f"{field}: " in str(err.value) and message in str(err.value)
    with pytest.raises(auto.CommandError):
        stack.up()
    resources = stack.export_stack().deployment.get("resources") or []
    assert [r["type"] for r in resources if r["type"] != "pulumi:pulumi:Stack"] == []
    # the program stopped before even starting the embedded host
    assert not (tmp_path / "state" / "hosts").exists()
