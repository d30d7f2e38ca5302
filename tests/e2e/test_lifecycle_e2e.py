"""End to end: a desktop that declares `idle` follows its user: kept up by console input, warned and suspended
(managed save) without it, left asleep by `up`, `refresh` and `preview`, and woken by opening its console.

The `ci` stack's console-image desktop declares `idle: {after: 60s, warn: 15s}` in its stack file; `up` starts
the host's lifecycle service, whose settings (the host's file) are written first with a short poll, switched
off until the desktop is up (as an administrator would switch it on). A console link minted as a person gets
one (`make console`'s console_link) is opened in headless Chromium: Shift pressed on noVNC's canvas every few
seconds for longer than `after` keeps the desktop up, on the same qemu. noVNC sends each press as an RFB key
message (QEMU's extended key event), which the gateway's input watcher counts as input. Then the same tab,
left open and connected, sends only what an open tab always sends (framebuffer update requests, fences), which
the watcher does not count: the desktop is warned, then suspended: qemu is gone and libvirt holds a managed
save image, and the suspend names the console as the last input. `up`, `refresh` and `preview
--expect-no-changes` pass and it stays asleep (refresh records it as asleep). Opening its console wakes it:
the display answers, the screen is the one before the sleep, and over SSH a file in RAM (/dev/shm), a file in
the home and a process started before the sleep are all still there. Then, with `apply_when: idle`, a memory
change made while someone types at its console stays pending (the same qemu, the old memory), and the host's
service applies it (a restart on the new definition) once nobody has typed for its `apply_after`.
"""
from __future__ import annotations

import io
import os
import struct
import threading
import time
from pathlib import Path

import libvirt
import pytest
import websocket
from PIL import Image, ImageChops

from components.cli.console import console_link
from components.console import service as console, tokens
from components.guest.screenshot import png_of
from components.guest.ssh import SshTarget, connect
from components.host import embedded
from components.lifecycle import LifecycleSettings, asleep, console_input, supervisor
from tests.support.browser import chromium
from tests.support.host import qemu_pid
from tests.support.novnc import novnc_state
from tests.support.project import isolated_env, make_project, open_stack, rewrite_config, stack_config
from tests.support.rfb import WebSocketTransport, handshake

pytestmark = [pytest.mark.e2e, pytest.mark.guests]
STACK = "ci"
DOMAIN = f"{STACK}-{STACK}"
AFTER_S, WARN_S = 60, 15
UPDATE_REQUEST = struct.pack(">BBHHHH", 3, 1, 0, 0, 640, 400)     # what an open tab asks, input or not
SHIFT = 0xffe1                                                   # a key that types nothing at the login prompt
KEY_EVERY_S = 3                                                  # a person typing: a key every few seconds


def wait_for(condition, timeout_s: float, what: str, log: Path, poll_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not within {timeout_s:g}s\n--- {log} ---\n{_read(log)}")
        time.sleep(poll_s)
    return value


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else "(no log)"


class Tab:
    """An open console typed at, as noVNC speaks RFB: screen updates asked for all the time, and input."""

    def __init__(self, url: str, key: bytes, link_s: int = 900):
        token, _ = tokens.mint(key, DOMAIN, link_s, stack=STACK)
        self.ws = websocket.create_connection(url.replace("http", "ws", 1) + f"/websockify?desktop={DOMAIN}"
                                              f"&token={token}", subprotocols=["binary"], timeout=300)
        self.name = handshake(WebSocketTransport(self.ws), None)[2]
        self.closed, self._stop = False, threading.Event()
        self.ws.settimeout(1)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        x = 0
        while not self._stop.is_set():
            try:
                self.ws.send_binary(UPDATE_REQUEST)
                x = (x + 7) % 600
                self.ws.send_binary(struct.pack(">BBxxI", 4, 1, SHIFT) + struct.pack(">BBxxI", 4, 0, SHIFT)
                                    + struct.pack(">BBHH", 5, 0, x, 100))
                while True:                              # drain what the display sends
                    self.ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            except (websocket.WebSocketException, OSError):
                self.closed = True                       # (the gateway ends the session when qemu goes)
                return

    def close(self):
        self._stop.set()
        self._thread.join(10)
        self.ws.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    state = tmp_path_factory.mktemp("vdesk-state")
    config = stack_config(STACK)
    config["vdesk:networks"]["lan"]["cidr"] = "10.89.0.0/24"
    config["vdesk:desktops"][STACK]["idle"] = {"after": f"{AFTER_S}s", "warn": f"{WARN_S}s", "action": "suspend"}
    # The teardown's destroy finds the desktop early in the boot the held change's restart began, where it
    # ignores the ACPI power button: the `ci` stack's 20 s were waited out there. No `up` here restarts it,
    # and the host's service stops and restarts guests with its own timeout.
    config["vdesk:timeouts"]["shutdown"] = 1
    project = make_project(tmp_path_factory.mktemp("project"), STACK, config)
    stack = open_stack(project, STACK, isolated_env(state))
    host = embedded.embedded_host("local", state_root=state)
    lifecycle_dir = host.state_dir / "lifecycle"
    # The host's settings, before `up` starts the service with them: a short poll, off until the desktop is up.
    LifecycleSettings(libvirt_uri=host.uri, poll=2, enabled=False).write(lifecycle_dir)
    yield {"stack": stack, "host": host, "lifecycle": lifecycle_dir, "project": project, "config": config}
    try:
        supervisor.stop(lifecycle_dir)
        stack.destroy(on_output=print)
    finally:
        embedded.stop(host, purge=True)


def press_shift(browser) -> None:
    """Shift pressed and let go on noVNC's canvas, focused without a click (a click would be pointer input)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    browser.execute_script("document.querySelector('#noVNC_container canvas').focus()")
    ActionChains(browser).key_down(Keys.SHIFT).key_up(Keys.SHIFT).perform()


def _live_memory_mib(dom) -> int:
    from components import xmlmodel
    return xmlmodel.Domain.from_xml(dom.XMLDesc(0)).memory_kib // 1024


def _domain_state_in_the_stack(stack) -> str:
    """The desktop's domain as the stack's state records it (a refresh reads it from the host)."""
    resources = stack.export_stack().deployment["resources"]
    return next(r["outputs"]["state"] for r in resources
                if r.get("outputs", {}).get("name") == DOMAIN and "boot_id" in r.get("outputs", {}))


def test_an_idle_desktop_is_warned_suspended_left_asleep_by_up_and_woken_by_its_console(world):
    stack, host, lifecycle_dir = world["stack"], world["host"], world["lifecycle"]
    result = stack.up(on_output=print)
    assert result.summary.result == "succeeded"
    outputs = {k: v.value for k, v in result.outputs.items()}
    desk = outputs["desktops"][STACK]
    target = SshTarget(host=desk["ip"], user="ci", private_key=desk["login_private_key"],
                       host_public_key=desk["host_key"], netns=outputs["hosts"]["local"]["netns"])
    with connect(target, timeout_s=60) as session:
        assert session.run("echo kept-in-ram > /dev/shm/before-sleep && echo kept-on-disk > ~/before-sleep").rc == 0
        sleeper = int(session.run("nohup sleep 86400 >/dev/null 2>&1 & echo $!").stdout.strip())
    qemu = qemu_pid(host, DOMAIN)
    log = lifecycle_dir / supervisor.LOG_FILE
    assert supervisor.supervisor_pid(lifecycle_dir) is not None          # `up` started the host's service
    console_dir = Path(desk["console"]["dir"])
    url, key = console.base_url(console_dir), tokens.signing_key(console_dir)

    conn = libvirt.open(outputs["host_uri"])
    try:
        dom = conn.lookupByName(DOMAIN)
        # 1. Typing through noVNC in Chromium for longer than `after` keeps it up, on the same qemu.
        link, _ = console_link(desk)                                     # as `make console` prints it
        with chromium(1024, 768) as browser:
            browser.get(link)
            wait_for(lambda: novnc_state(browser) == "connected", 60, "noVNC to connect", log, poll_s=0.2)
            wait_for(lambda: f"QEMU ({DOMAIN})" in browser.title, 30, "noVNC to show the display's name", log)
            LifecycleSettings(libvirt_uri=host.uri, poll=2, enabled=True).write(lifecycle_dir)
            wait_for(lambda: "settings changed: enabled=True" in _read(log), 30, "the service switched on", log)
            kept_until = time.monotonic() + AFTER_S + 15
            while time.monotonic() < kept_until:
                press_shift(browser)
                assert dom.isActive() and f"warn desktop={DOMAIN}" not in _read(log), _read(log)
                assert qemu_pid(host, DOMAIN) == qemu and novnc_state(browser) == "connected"
                time.sleep(KEY_EVERY_S)
            # (what kept it up is the browser's keys, as the gateway saw them: its record of console input)
            seen = console_input.last_input(lifecycle_dir, DOMAIN)
            assert seen is not None and time.time() - seen < console_input.RECORD_EVERY_S + 2 * KEY_EVERY_S
            # 2. The same tab, open and connected, with no input does not keep it up: warned, then suspended.
            wait_for(lambda: f"warn desktop={DOMAIN}" in _read(log), AFTER_S + 60, "the warning", log)
            assert novnc_state(browser) == "connected", "the tab was not connected when the desktop was warned"
            with Image.open(io.BytesIO(png_of(conn, DOMAIN))) as shot:
                before = shot.convert("RGB")
            wait_for(lambda: asleep(dom), WARN_S + 60, "the managed save", log)
            # (qemu gone, the gateway ends the session; the link's reconnect=0 keeps the tab from waking it)
            wait_for(lambda: novnc_state(browser) == "disconnected", 30, "noVNC to see the session end", log)
        # (the service logs the suspend once libvirt's managed save has returned: a moment after the state shows it)
        suspended = f"suspend desktop={DOMAIN} how=suspended (managed save) reason=no input for"
        wait_for(lambda: suspended in _read(log), 30, "the suspend's log line", log)
        text = _read(log)
        print(text)
        assert "left alone" not in text, text                  # the guest agent answered every time
        assert "(last: console" in text.split(suspended, 1)[1].splitlines()[0], text   # the browser's input
        assert not os.path.exists(f"/proc/{qemu}")             # the host's memory is given back
        assert dom.hasManagedSaveImage(0) and not dom.isActive()      # (and the tab, closed now, did not wake it)

        # 3. Infrastructure as code and a sleeping desktop agree: nothing to change, nothing woken.
        again = stack.up(on_output=print)
        assert {k: v for k, v in (again.summary.resource_changes or {}).items() if k != "same"} == {}
        stack.refresh(on_output=print)
        stack.preview(expect_no_changes=True)
        assert asleep(dom), "up, refresh or preview woke it"
        assert _domain_state_in_the_stack(stack) == "asleep"  # the refresh recorded its runtime state

        # 4. Opening its console wakes it, as it was.
        tab = Tab(url, key)
        try:
            assert tab.name == f"QEMU ({DOMAIN})"            # the display answers: restored for this session
            assert dom.isActive() and not dom.hasManagedSaveImage(0)
            with Image.open(io.BytesIO(png_of(conn, DOMAIN))) as shot:
                after = shot.convert("RGB")
        finally:
            tab.close()
        assert after.size == before.size
        changed = before.size[0] * before.size[1] - ImageChops.difference(before, after).convert("L").histogram()[0]
        assert changed <= 0.02 * before.size[0] * before.size[1], f"{changed} pixels differ after the wake"
        with connect(target, timeout_s=120) as session:
            assert session.run("cat /dev/shm/before-sleep").stdout == "kept-in-ram\n"
            assert session.run("cat ~/before-sleep").stdout == "kept-on-disk\n"
            assert session.run(f"kill -0 {sleeper}").rc == 0   # the same boot, its processes still running
        assert dom.isActive()                                  # a wake is a start: not suspended again at once
        assert "woke desktop=ci-ci for its console how=restored" in _read(console_dir / console.LOG_FILE)

        # 5. apply_when: idle: a memory change to the desktop in use waits, and is applied once it is idle.
        LifecycleSettings(libvirt_uri=host.uri, poll=2, apply_after=20).write(lifecycle_dir)
        wait_for(lambda: _read(log).count("settings changed") == 2, 30, "the new apply_after", log)
        config = world["config"]
        config["vdesk:desktops"][STACK].update(memory="1GiB", apply_when="idle")
        rewrite_config(world["project"], STACK, config)
        tab = Tab(url, key)                                    # someone types at it meanwhile
        try:
            qemu = qemu_pid(host, DOMAIN)
            changed_up = stack.up(on_output=print)
            changes = {k for k, v in (changed_up.summary.resource_changes or {}).items() if v and k != "same"}
            assert changes == {"update"}, changed_up.summary.resource_changes     # in place: nothing replaced
            dom = conn.lookupByName(DOMAIN)
            assert qemu_pid(host, DOMAIN) == qemu and _live_memory_mib(dom) == 768   # not restarted under them
            held_until = time.monotonic() + 30                # longer than apply_after: still in use
            while time.monotonic() < held_until:
                assert qemu_pid(host, DOMAIN) == qemu and "applied desktop=" not in _read(log), _read(log)
                time.sleep(2)
        finally:
            tab.close()                                        # nobody at it any more
        wait_for(lambda: f"applied desktop={DOMAIN} changes=memory" in _read(log), 300, "the held change", log)
        dom = conn.lookupByName(DOMAIN)
        wait_for(lambda: dom.isActive(), 60, "the restart", log)
        assert _live_memory_mib(dom) == 1024 and qemu_pid(host, DOMAIN) != qemu
    finally:
        conn.close()
