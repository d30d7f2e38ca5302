"""A throw-away copy of the vdesk project for Automation API tests.

Only Pulumi.yaml, __main__.py and one stack file are copied: the program finds
components/, templates/ and tools/ through the package, so the test runs the
real code while its stack files and state never touch the clone.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml
from pulumi import automation as auto

REPO = Path(__file__).resolve().parents[2]


def stack_config(stack: str) -> dict:
    """The `config:` mapping of one of the repo's stack files."""
    return yaml.safe_load((REPO / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]


def make_project(root: Path, stack: str, config: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copy(REPO / "__main__.py", root / "__main__.py")
    (root / "stacks").mkdir(exist_ok=True)
    (root / "stacks" / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))
    return root


def rewrite_config(project: Path, stack: str, config: dict) -> None:
    """Replace the stack file's config, keeping the salt `stack init` wrote into it."""
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"] = config
    path.write_text(yaml.safe_dump(document))


def lose_state(stack: auto.Stack) -> None:
    """What a deleted backend looks like to the engine: the stack owns nothing, the host still has it all."""
    deployment = stack.export_stack()
    deployment.deployment["resources"] = []
    stack.import_stack(deployment)


def isolated_env(state: Path) -> dict[str, str]:
    """Environment for the engine: its own backend and vdesk state (own embedded libvirtd)."""
    (state / "backend").mkdir(parents=True, exist_ok=True)
    return {
        "VDESK_STATE": str(state),
        "PULUMI_BACKEND_URL": f"file://{state / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": "vdesk-tests",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_HOME": str(state / "pulumi-home"),
        "PYTHONPATH": str(REPO),
        "PULUMI_PYTHON_CMD": os.environ.get("PULUMI_PYTHON_CMD", shutil.which("python3") or "python3"),
    }


def open_stack(project: Path, stack: str, env: dict[str, str]) -> auto.Stack:
    opts = auto.LocalWorkspaceOptions(env_vars=env, pulumi_home=env["PULUMI_HOME"])
    return auto.create_or_select_stack(stack, work_dir=str(project), opts=opts)


def on_the_console_image(config: dict, profile: str = "desktop") -> dict:
    """The `dev` stack's profile on the golden console image: tests about secrets or users need no Xfce build.

    Drops what only a graphical image has: autologin, resolution and the session checks."""
    config["vdesk:images"] = {"debian12": {"golden": "debian12"}}
    prof = config["vdesk:profiles"][profile]
    prof["image"] = "debian12"
    for key in ("autologin", "resolution", "home"):
        prof.pop(key, None)
    prof["checks"] = [c for c in prof.get("checks", [])
                      if "session" not in c and c.get("service") != "lightdm" and c.get("command") != "git --version"]
    return config
