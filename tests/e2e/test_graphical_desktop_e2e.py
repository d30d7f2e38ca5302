"""End to end: a desktop image built from a recipe boots to a graphical session, under TCG, on the embedded host.

examples/desktop (an Xfce recipe holding the developer template's packages, a
developer's desktop logged in at boot) is brought up with the Automation API:

- preview says whether the recipe image will be built or reused; up builds it
  once (the cache is shared: a second run reuses it);
- the readiness gate passes, so cloud-init is done (the template's packages
  were installed offline: the image has them), and so do the checks: the
  user has an active graphical session (logind: x11, active), `git --version`
  works, X runs at 1280x800;
- the screenshot is the desktop, not a console: at least 1280x800, and no
  colour covers 90% of it;
- a second preview changes nothing; destroy leaves nothing behind.

A password typed at LightDM's greeter is tested in tests/e2e/test_console_e2e.py,
on the same image without autologin, typed through the browser console as a person
would (one Xfce boot under TCG costs minutes; this test no longer repeats it).
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from pulumi import automation as auto

from components.guest.checks import GuestHost
from components.guest.checkrun import run_checks
from components.guest.checkspec import parse_checks
from components.guest.screenshot import CONSOLE_SHARE, dominant_share, measure_png
from components.guest.ssh import SshTarget, connect
from components.host import embedded
from tests.support.host import counts
from tests.support.project import REPO, isolated_env, stack_config

pytestmark = [pytest.mark.e2e, pytest.mark.guests]
# examples/desktop declares the developer recipe of the `dev` stack (built in the background: tests/support/prebuild.py).
IMAGE_RECIPES = [image["recipe"] for image in stack_config("dev")["vdesk:images"].values()]
CIDR = "10.91.0.0/24"
USER = "ada"
PASSWORD = "Greeter-Pass1"
# Where the screenshot is kept after the run, to be looked at.
KEEP_SCREENSHOT = Path(os.environ.get("VDESK_E2E_SCREENSHOT_DIR", "/tmp")) / "vdesk-graphical-desktop.png"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    project, state = tmp_path_factory.mktemp("desktop-program"), tmp_path_factory.mktemp("vdesk-state")
    shutil.rmtree(project)
    shutil.copytree(REPO / "examples" / "desktop", project)
    env = isolated_env(state)
    stack = auto.create_or_select_stack("demo", work_dir=str(project),
                                        opts=auto.LocalWorkspaceOptions(env_vars=env, pulumi_home=env["PULUMI_HOME"]))
    stack.set_config("cidr", auto.ConfigValue(CIDR))
    stack.set_config("user", auto.ConfigValue(USER))
    stack.set_config("password", auto.ConfigValue(PASSWORD, secret=True))
    host = embedded.embedded_host("local", state_root=state)
    yield {"stack": stack, "host": host}
    try:
        stack.destroy(on_output=print)
    finally:
        embedded.stop(host, purge=True)


def test_a_desktop_image_boots_to_a_graphical_session(world):
    stack: auto.Stack = world["stack"]
    said: list[str] = []
    stack.preview(on_output=said.append)
    plan = "".join(said)
    match = re.search(r"image workstation: recipe ([0-9a-f]{12}) (cached, reused|not built yet: `up` builds it)",
                      plan)
    assert match, plan

    started = time.monotonic()
    result = stack.up(on_output=print)
    up_seconds = time.monotonic() - started
    assert result.summary.result == "succeeded"
    out = {k: v.value for k, v in result.outputs.items()}
    desk, image = out["desktop"], out["image"]
    assert image["recipe_hash"] == match.group(1) and desk["state"] == "running"
    assert image["reused"] == (match.group(2) == "cached, reused")
    built = 0 if image["reused"] else image["build_seconds"]
    print(f"up: {up_seconds:.0f} s (image {'reused' if image['reused'] else f'built in {built} s'}, "
          f"{image['disk_file_bytes'] / 2**20:.0f} MiB): create, TCG boot, cloud-init, active graphical session, "
          f"checks and screenshot in {up_seconds - built:.0f} s")

    # The screenshot shows the desktop: its resolution, and not a console's one colour.
    png = Path(desk["screenshot"]).read_bytes()
    width, height, colours = measure_png(png)
    share = dominant_share(png)
    shutil.copy(desk["screenshot"], KEEP_SCREENSHOT)
    print(f"screenshot {width}x{height}, {colours} colours, {share:.0%} one colour: {KEEP_SCREENSHOT}")
    assert width >= 1280 and height >= 800
    assert share < CONSOLE_SHARE and colours > 16

    target = SshTarget(host=desk["ip"], user=USER, private_key=out["login_private_key"],
                       host_public_key=desk["host_key"], netns=out["netns"])
    with connect(target, timeout_s=120) as session:
        host = GuestHost(session)
        checks = parse_checks([{"session": USER, "within": 0}, {"command": "git --version"},
                               {"package": "xfce4"}, {"service": "lightdm"},
                               {"command": "DISPLAY=:0 xrandr --current", "output_matches": "current 1280 x 800"}])
        outcomes = run_checks(host, checks)
        assert all(o.passed for o in outcomes), [o for o in outcomes if not o.passed]
        [autologin] = [s for s in host.session(USER).all if s.graphical and s.active]
        since = session.run(["loginctl", "show-session", autologin.id, "-p", "Timestamp", "--value"]).stdout.strip()
        booted = session.run(["uptime", "-s"]).stdout.strip()
        print(f"graphical session {autologin.id} of {USER} since {since}; guest booted at {booted}")

    # Nothing changes on a second run; destroy leaves nothing (the image stays in the shared cache).
    assert set(stack.preview().change_summary) == {"same"}
    stack.destroy(on_output=print)
    assert counts(world["host"].uri) == {"domains": 0, "networks": 0, "pools": 0, "volumes": 0}
    assert Path(image["directory"], "manifest.json").is_file()
