"""The console gateway and idleness, on the project's own libvirtd: real input counts, an open tab does not,
and opening a sleeping desktop's console wakes it.

OS-less guests (firmware only) serve VNC like any other, so no guest boots. The
browser is a WebSocket client speaking RFB through the gateway: key and pointer
events make the desktop's activity record (what the host's lifecycle service
reads); a session that only asks for screen updates, as an open noVNC tab does,
makes none. Opening a console sends the display one Shift press and release
(the gateway's wake key: a blanked guest display shows itself again), which
QEMU's own trace of VNC key events shows once per console, and which is not
the desktop's input. A desktop in a managed save is restored when its console
is opened, and the display answers.
"""
from __future__ import annotations

import json
import os
import re
import struct
import time

import libvirt
import libvirt_qemu
import pytest
import websocket

from components.console import gateway as console_gateway
from components.console import service, tokens
from components.console.settings import ConsoleSettings
from components.lifecycle import actions, console_input
from components.resources.domain import DomainProvider
from tests.support.providers import checked
from tests.support.rfb import WebSocketTransport, handshake

pytestmark = [pytest.mark.integration, pytest.mark.guests]
PASSWORD = "idle0k!"
DESKTOPS = ("idle-typed", "idle-watched", "idle-sleepy", "idle-woken")
UPDATE_REQUEST = struct.pack(">BBHHHH", 3, 1, 0, 0, 640, 400)      # incremental: what an idle tab sends
FULL_UPDATE_REQUEST = struct.pack(">BBHHHH", 3, 0, 0, 0, 64, 64)   # not incremental: the display answers at once
KEY_DOWN, KEY_UP = struct.pack(">BBxxI", 4, 1, 0x61), struct.pack(">BBxxI", 4, 0, 0x61)
POINTER = struct.pack(">BBHH", 5, 0, 100, 100)


@pytest.fixture(scope="module")
def gateway(own_host):
    os.makedirs(own_host.state_dir / "displays", exist_ok=True)
    provider, made = DomainProvider(), []
    for name in DESKTOPS:
        made.append(provider.create(checked(provider, {
            "host_uri": own_host.uri, "name": name, "domain_type": "qemu", "boot": "bios", "memory": 128 * 1024**2,
            "vcpus": 1, "display_password": PASSWORD, "shutdown_timeout_s": 2,
            "graphics_socket": str(own_host.state_dir / "displays" / f"{name}.vnc")})))
    console_dir = own_host.state_dir / "console"
    url = service.ensure_running(console_dir, ConsoleSettings(), libvirt_uri=own_host.uri, netns=own_host.netns)
    yield {"url": url, "dir": console_dir, "key": tokens.signing_key(console_dir), "host": own_host,
           "lifecycle": own_host.state_dir / "lifecycle"}
    service.stop(console_dir)
    for created in made:
        provider.delete(created.id, created.outs)


def _session(gw, desktop: str) -> tuple[websocket.WebSocket, WebSocketTransport]:
    token, _ = tokens.mint(gw["key"], desktop, 60)
    ws = websocket.create_connection(gw["url"].replace("http", "ws", 1) + f"/websockify?desktop={desktop}"
                                     f"&token={token}", subprotocols=["binary"], timeout=60)
    transport = WebSocketTransport(ws)
    assert handshake(transport, None)[2] == f"QEMU ({desktop})"
    return ws, transport


def _wait(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (met := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return met


def test_keys_and_pointer_through_the_console_are_input(gateway):
    before = time.time()
    ws, transport = _session(gateway, "idle-typed")
    try:
        transport.sendall(UPDATE_REQUEST)
        transport.sendall(KEY_DOWN + KEY_UP)
        transport.sendall(POINTER)
        _wait(lambda: (console_input.last_input(gateway["lifecycle"], "idle-typed") or 0) >= before - 1, 10,
              "no input recorded for the typed-on console")
    finally:
        ws.close()


def test_an_open_console_with_no_input_is_idle(gateway):
    ws, transport = _session(gateway, "idle-watched")
    try:
        deadline = time.monotonic() + console_input.RECORD_EVERY_S + 2
        while time.monotonic() < deadline:              # a tab that is only watched: screen updates, no input
            transport.sendall(UPDATE_REQUEST)
            time.sleep(0.5)
        transport.sendall(UPDATE_REQUEST)
        ws.ping()                                       # (the gateway has read all of the above by its answer)
    finally:
        ws.close()
    assert console_input.last_input(gateway["lifecycle"], "idle-watched") is None


def _traced_keys(log: str) -> list[tuple[int, int]]:
    """(down, keysym) of each key event QEMU's VNC server took, from its trace in the domain's log."""
    return [(int(down), int(sym, 16)) for down, sym in re.findall(r"vnc_key_event_map down (\d), sym (0x[0-9a-f]+)", log)]


def test_opening_a_console_sends_the_display_one_wake_key_that_is_not_input(gateway):
    conn = libvirt.open(gateway["host"].uri)
    try:
        dom = conn.lookupByName("idle-woken")
        libvirt_qemu.qemuMonitorCommand(dom, json.dumps({"execute": "trace-event-set-state", "arguments": {
            "name": "vnc_key_event_map", "enable": True}}), 0)     # QEMU logs each VNC key event it takes
    finally:
        conn.close()
    qemu_log = gateway["host"].state_dir / "log" / "qemu" / "idle-woken.log"
    ws, transport = _session(gateway, "idle-woken")
    try:
        shift = console_gateway.SHIFT_L
        _wait(lambda: len(_traced_keys(qemu_log.read_text())) >= 2, 10, "no wake key reached the display")
        transport.sendall(FULL_UPDATE_REQUEST)          # answered by the display after every key sent before it
        assert transport.recv(1)[:1] == b"\x00"         # FramebufferUpdate
        assert _traced_keys(qemu_log.read_text()) == [(1, shift), (0, shift)]
    finally:
        ws.close()
    assert console_input.last_input(gateway["lifecycle"], "idle-woken") is None


def test_opening_a_sleeping_desktops_console_wakes_it(gateway):
    conn = libvirt.open(gateway["host"].uri)
    try:
        dom = conn.lookupByName("idle-sleepy")
        qemu_before = dom.ID()
        actions.suspend(dom)
        assert actions.asleep(dom)
        ws, _ = _session(gateway, "idle-sleepy")       # the display answers: it was restored for this session
        ws.close()
        assert dom.isActive() and not dom.hasManagedSaveImage(0) and dom.ID() != qemu_before
        log = (gateway["dir"] / service.LOG_FILE).read_text()
        assert "woke desktop=idle-sleepy for its console how=restored" in log, log[-2000:]

        dom.destroy()                                   # stopped on purpose: not woken, refused
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            _session(gateway, "idle-sleepy")
        assert refused.value.status_code == 403 and not dom.isActive()
    finally:
        conn.close()
