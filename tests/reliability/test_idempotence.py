"""Idempotence of the example stacks: a second `up` changes nothing, and `preview --expect-no-changes` passes.

A declaration applied twice must be a no-op: no update that would restart a desktop, no
seed rewritten, no image re-imported. Each example stack is brought up on its own embedded
host, as `make up` would, then `up` again (zero changes) and previewed with
`--expect-no-changes` (which fails on any change), then destroyed to zero objects, counted
from libvirt.

- `dev` is booted for real in `make reliability`: the graphical desktop `make up` gives a
  new user, through its session check (its image is the developer recipe, built once and
  shared with the graphical end-to-end test). `make test` declares it powered off: its
  graphical desktop is booted there by the console and graphical end-to-end tests, and a
  third Xfce boot under TCG would cost three minutes for the same diff.
- `team` is declared with its two Xfce desktops powered off (their passwords set as the team
  would): two graphical TCG boots at once on this machine's two cores would take longer than
  the rest of the tier; every object is still made, and a powered-off domain diffs the same
  way a running one does. Its people at the portal are tests/e2e/test_portal_console_e2e.py.
- `ci` and `lab` are booted by their end-to-end tests, which check the same two things.
- `desktop` (two Xfce images, one with LibreOffice) only in `make reliability`: its office
  image costs minutes to build on a fresh machine.
"""
from __future__ import annotations

import os
import secrets

import pytest
from pulumi import automation as auto

from components.host import embedded
from tests.support.host import inventory, records_left
from tests.support.project import isolated_env, make_project, open_stack, stack_config

pytestmark = pytest.mark.reliability
THOROUGH = os.environ.get("VDESK_RELIABILITY") == "thorough"
# The recipe images these stacks declare, built in the background while earlier tests run (tests/support/prebuild.py).
IMAGE_RECIPES = [image["recipe"] for name in ("dev", "desktop") if name == "dev" or THOROUGH
                 for image in stack_config(name)["vdesk:images"].values() if "recipe" in image]


def powered_off(config: dict) -> dict:
    for profile in config.get("vdesk:profiles", {}).values():
        profile["running"] = False
        profile.pop("checks", None)
        profile.pop("autologin", None)
    for user in config.get("vdesk:users", []):
        user.pop("checks", None)
    return config


def kept_homes(config: dict, stack: str) -> list[str]:
    """The home volumes destroy leaves: desktops whose profile or user declares a home to keep."""
    prefix = config.get("vdesk:prefix") or stack
    profiles = config.get("vdesk:profiles", {})
    kept = []
    for user in config.get("vdesk:users", []):
        settings = {**profiles.get(user["profile"], {}), **user}
        if settings.get("home") and settings.get("home_on_removal", "keep") == "keep":
            kept.append(f"{prefix}-{user['name']}-home.qcow2")
    return sorted(kept)


STACKS = [
    pytest.param("dev", not THOROUGH, id=f"dev, {'booted' if THOROUGH else 'powered off'}",
                 marks=[pytest.mark.guests] if THOROUGH else []),
    pytest.param("team", True, id="team, powered off"),
    pytest.param("desktop", True, id="desktop, powered off",
                 marks=pytest.mark.skipif(not THOROUGH, reason="make reliability only: builds the office image")),
]


@pytest.mark.parametrize(("name", "off"), STACKS)
def test_a_second_up_of_an_example_stack_changes_nothing(name, off, tmp_path):
    config = stack_config(name)
    if off:
        config = powered_off(config)
    state = tmp_path / "state"
    host = embedded.embedded_host("local", state_root=state)
    stack = open_stack(make_project(tmp_path / "project", name, config), name, isolated_env(state))
    for user in config.get("vdesk:users", []):       # the passwords a team sets before its first `up`
        if user.get("password"):
            stack.set_config(f"vdesk:{user['password']}", auto.ConfigValue(secrets.token_urlsafe(12), secret=True))
    try:
        first = stack.up(on_output=print)
        assert first.summary.result == "succeeded"
        if not off:
            states = {d["state"] for d in first.outputs["desktops"].value.values()}
            assert states == {"running"}, states
        again = stack.up(on_output=print)
        changes = {k: v for k, v in (again.summary.resource_changes or {}).items() if k != "same"}
        assert changes == {}, again.summary.resource_changes
        stack.preview(expect_no_changes=True, on_output=print)      # raises on any change
        stack.destroy(on_output=print)
        # Homes kept on removal (dev's default, `home_on_removal: keep`) stay, with the pool that holds them.
        kept = kept_homes(config, name)
        left = inventory(host.uri)
        assert (left["domains"], left["networks"]) == ({}, {}), left
        assert sorted(left["volumes"]) == kept, left
        assert len(left["pools"]) == (1 if kept else 0), left
        assert records_left(host.state_dir) == [], "destroy leaves no portal or quota record"
    finally:
        try:
            stack.destroy()
        finally:
            embedded.stop(host, purge=True)
