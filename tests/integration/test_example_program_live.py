"""examples/program, the hand-written Pulumi program, up and down on the project's own libvirtd.

It is copied to a scratch folder (the engine writes the stack's settings beside
the program) and run with the Automation API, as a user's `pulumi up` would.
"""
from __future__ import annotations

import shutil

import pytest
from pulumi import automation as auto

from components.host import embedded
from tests.support.host import counts
from tests.support.project import REPO, isolated_env

pytestmark = [pytest.mark.integration, pytest.mark.guests]


def test_the_example_program_comes_up_passes_its_checks_and_goes_away(tmp_path):
    project, state = tmp_path / "program", tmp_path / "state"
    shutil.copytree(REPO / "examples" / "program", project)
    env = isolated_env(state)
    stack = auto.create_or_select_stack("demo", work_dir=str(project),
                                        opts=auto.LocalWorkspaceOptions(env_vars=env, pulumi_home=env["PULUMI_HOME"]))
    stack.set_config("cidr", auto.ConfigValue("10.89.0.0/24"))
    host = embedded.embedded_host("local", state_root=state)
    try:
        result = stack.up(on_output=print)
        assert result.summary.result == "succeeded"
        outputs = {k: v.value for k, v in result.outputs.items()}
        assert set(outputs) == {"demo-ada", "demo-grace"}
        for desk in outputs.values():
            assert desk["state"] == "running" and desk["ip"].startswith("10.89.0.")   # the gate passed
        assert counts(host.uri) == {"domains": 2, "networks": 1, "pools": 1, "volumes": 2 * 2 + 3}
        assert set(stack.preview().change_summary) == {"same"}       # a second run changes nothing
        stack.destroy(on_output=print)
        assert counts(host.uri) == {"domains": 0, "networks": 0, "pools": 0, "volumes": 0}
    finally:
        stack.destroy()
        embedded.stop(host, purge=True)
