"""The lifecycle service's turns on libvirt's test driver: warn, then a real managed save, then wake."""
import json
import logging
import threading
import time

import libvirt
import pytest

from components.lifecycle import actions, console_input
from components.lifecycle.policy import IdlePolicy, set_policy
from components.lifecycle.service import STATE_FILE, Lifecycle, run
from components.lifecycle.settings import LifecycleSettings

T0 = 1_900_000_000.0
AGENT_DOMAIN = """<domain type='test'><name>with-agent</name><memory unit='MiB'>256</memory>
<os><type>hvm</type></os><devices>
<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
</devices></domain>"""


@pytest.fixture
def settings():
    return LifecycleSettings(libvirt_uri="test:///default", poll=5)


@pytest.fixture
def desk(conn):
    dom = conn.lookupByName("test")
    set_policy(dom, IdlePolicy(after="60s", warn="20s"))
    return dom


def test_warned_then_suspended_then_woken(conn, desk, settings, tmp_path, caplog):
    caplog.set_level(logging.INFO, "vdesk.lifecycle")
    lifecycle = Lifecycle(tmp_path, settings)
    assert lifecycle.turn(conn, T0)["test"].verdict == "active"          # a start is input
    assert lifecycle.turn(conn, T0 + 39)["test"].verdict == "active"
    assert lifecycle.turn(conn, T0 + 40)["test"].verdict == "warn"
    assert lifecycle.turn(conn, T0 + 55)["test"].verdict == "wait"
    assert desk.isActive()
    assert lifecycle.turn(conn, T0 + 61)["test"].verdict == "act"
    assert not desk.isActive() and desk.hasManagedSaveImage(0) and actions.asleep(desk)
    lines = [r.getMessage() for r in caplog.records]
    assert "warn desktop=test action=suspend reason=no input for 40 s (last: start); suspend in 20 s unless " \
           "there is input notification=no graphical session to notify" in lines
    assert "suspend desktop=test how=suspended (managed save) reason=no input for 1 min (last: start), " \
           "warned 21 s ago" in lines
    assert lifecycle.turn(conn, T0 + 100) == {}                         # asleep: not looked at
    assert actions.runtime_state(desk) == "asleep"
    assert actions.wake(conn, "test") == "restored"
    assert actions.runtime_state(desk) == "running"
    assert desk.isActive() and not desk.hasManagedSaveImage(0)
    assert actions.wake(conn, "test") == "already running"
    assert lifecycle.turn(conn, T0 + 200)["test"].verdict == "active"     # woken: a new start


def test_console_input_keeps_it_up(conn, desk, settings, tmp_path):
    lifecycle = Lifecycle(tmp_path, settings)
    lifecycle.turn(conn, T0)
    console_input.record_input(tmp_path, "test", at=T0 + 50)
    for t in (T0 + 61, T0 + 80, T0 + 89):
        assert lifecycle.turn(conn, t)["test"].verdict == "active"
    assert lifecycle.turn(conn, T0 + 90)["test"].verdict == "warn"


def test_input_after_the_warning_withdraws_it(conn, desk, settings, tmp_path, caplog):
    caplog.set_level(logging.INFO, "vdesk.lifecycle")
    lifecycle = Lifecycle(tmp_path, settings)
    lifecycle.turn(conn, T0)
    assert lifecycle.turn(conn, T0 + 45)["test"].verdict == "warn"
    console_input.record_input(tmp_path, "test", at=T0 + 50)
    assert lifecycle.turn(conn, T0 + 61)["test"].verdict == "active"
    assert desk.isActive()
    assert any(r.getMessage().startswith("kept desktop=test reason=input 11 s ago (console)") for r in caplog.records)
    assert lifecycle.turn(conn, T0 + 90)["test"].verdict == "warn"       # idle again: warned again


def test_shutdown_is_a_clean_power_off(conn, settings, tmp_path):
    dom = conn.lookupByName("test")
    set_policy(dom, IdlePolicy(after="60s", action="shutdown", warn="20s"))
    lifecycle = Lifecycle(tmp_path, settings)
    for t in (T0, T0 + 40, T0 + 60):
        lifecycle.turn(conn, t)
    assert not dom.isActive() and not dom.hasManagedSaveImage(0)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF and dom.state()[1] == libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN
    assert actions.runtime_state(dom) == "idle-off"           # declared running, shut down for idleness: not drift
    assert actions.wake(conn, "test") == "started"
    assert actions.runtime_state(dom) == "running" and not actions.idle_off_marked(dom)


def test_an_idle_shutdown_the_guest_ignores_is_forced_off_at_a_later_turn(conn, tmp_path, caplog):
    """The idle shutdown asks and returns; the turns of the grace period leave it be; the first past it forces."""
    caplog.set_level(logging.INFO, "vdesk.lifecycle")
    dom = conn.defineXML("<domain type='test'><name>deaf</name><memory unit='MiB'>128</memory><os><type>hvm</type>"
                         "</os><on_poweroff>restart</on_poweroff></domain>")   # answers ACPI by running on
    dom.create()
    set_policy(dom, IdlePolicy(after="60s", action="shutdown", warn="20s"))
    lifecycle = Lifecycle(tmp_path, LifecycleSettings(libvirt_uri="test:///default", poll=5, shutdown_timeout=30))
    for t in (T0, T0 + 40):
        lifecycle.turn(conn, t)
    began = time.monotonic()
    assert lifecycle.turn(conn, T0 + 60)["deaf"].verdict == "act"
    assert time.monotonic() - began < 10 and dom.isActive()
    assert "deaf" not in lifecycle.turn(conn, T0 + 89)          # asked already: not decided again
    assert dom.isActive() and not actions.idle_off_marked(dom)
    lifecycle.turn(conn, T0 + 90)
    assert not dom.isActive() and actions.runtime_state(dom) == "idle-off"
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("shutdown desktop=deaf")] == \
        ["shutdown desktop=deaf how=forced off after 30s reason=no input for 1 min (last: start), warned 20 s ago"]


def test_a_desktop_shut_down_for_idleness_and_started_otherwise_is_no_longer_idle_off(conn, settings, tmp_path):
    dom = conn.lookupByName("test")
    set_policy(dom, IdlePolicy(after="60s", action="shutdown", warn="20s"))
    lifecycle = Lifecycle(tmp_path, settings)
    for t in (T0, T0 + 40, T0 + 60):
        lifecycle.turn(conn, t)
    assert actions.runtime_state(dom) == "idle-off"
    dom.create()                                              # virsh start, or up: not a wake
    lifecycle.turn(conn, T0 + 100)
    assert not actions.idle_off_marked(dom)
    dom.destroy()
    assert actions.runtime_state(dom) == "stopped"


def test_a_restart_of_the_service_neither_forgets_nor_repeats_the_warning(conn, desk, settings, tmp_path):
    Lifecycle(tmp_path, settings).turn(conn, T0)
    assert Lifecycle(tmp_path, settings).turn(conn, T0 + 40)["test"].verdict == "warn"
    saved = json.loads((tmp_path / STATE_FILE).read_text())[desk.UUIDString()]
    assert saved["warned_at"] == T0 + 40 and saved["started_at"] == T0
    assert Lifecycle(tmp_path, settings).turn(conn, T0 + 50)["test"].verdict == "wait"
    assert Lifecycle(tmp_path, settings).turn(conn, T0 + 60)["test"].verdict == "act"
    assert actions.asleep(desk)


def test_desktops_without_a_policy_are_left_alone_unless_the_host_sets_one(conn, tmp_path):
    dom = conn.lookupByName("test")
    lifecycle = Lifecycle(tmp_path, LifecycleSettings(libvirt_uri="test:///default"))
    assert lifecycle.turn(conn, T0) == {} and lifecycle.turn(conn, T0 + 86400) == {}
    hosted = Lifecycle(tmp_path, LifecycleSettings(libvirt_uri="test:///default",
                                                   default=IdlePolicy(after="1h", warn="5m")))
    assert hosted.turn(conn, T0 + 86400 + 3300)["test"].verdict == "warn"
    assert dom.isActive()


def test_a_guest_that_cannot_be_asked_is_not_suspended(conn, settings, tmp_path, caplog):
    """The test driver has no guest agent: a domain with the agent's channel is then blind, and kept."""
    caplog.set_level(logging.INFO, "vdesk.lifecycle")
    dom = conn.defineXML(AGENT_DOMAIN)
    dom.create()
    set_policy(dom, IdlePolicy(after="60s", warn="20s"))
    lifecycle = Lifecycle(tmp_path, settings)
    lifecycle.turn(conn, T0)
    for t in (T0 + 100, T0 + 200, T0 + 300):
        assert lifecycle.turn(conn, t)["with-agent"].verdict == "unknown"
    assert dom.isActive()
    kept = [r.getMessage() for r in caplog.records if "desktop=with-agent" in r.getMessage()]
    assert len(kept) == 1 and kept[0].startswith("left alone desktop=with-agent reason=cannot see input from guest")
    dom.destroy()
    dom.undefine()


def test_a_transient_domain_beside_the_desktops_is_no_trouble(conn, desk, settings, tmp_path):
    """Someone else's transient domain (no persistent config, no policy) on the host: looked past."""
    other = conn.createXML(AGENT_DOMAIN.replace("with-agent", "someone-elses"), 0)
    lifecycle = Lifecycle(tmp_path, settings)
    assert set(lifecycle.turn(conn, T0)) == {"test"}
    assert actions.runtime_state(other) == "running"
    other.destroy()


def test_invalid_metadata_is_reported_and_ignored(conn, settings, tmp_path, caplog):
    dom = conn.lookupByName("test")
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, '<idle after="5s" action="suspend" warn="1s"/>', "lifecycle",
                    "urn:vdesk:lifecycle:1", libvirt.VIR_DOMAIN_AFFECT_LIVE)
    assert Lifecycle(tmp_path, settings).turn(conn, T0) == {}
    assert any("its idle policy is invalid" in r.getMessage() for r in caplog.records)


def test_the_loop_acts_on_the_state_a_previous_run_left(conn, desk, tmp_path):
    """run(): settings from the host's file, its own connection; a warning given before a restart still counts."""
    now = time.time()
    LifecycleSettings(libvirt_uri="test:///default", poll=2).write(tmp_path)
    (tmp_path / STATE_FILE).write_text(json.dumps({desk.UUIDString(): {
        "name": "test", "domain_id": desk.ID(), "started_at": now - 100, "warned_at": now - 30, "noted": None}}))
    stop = threading.Event()
    loop = threading.Thread(target=run, args=(tmp_path, stop), daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 20
        while not actions.asleep(desk):
            assert time.monotonic() < deadline, "not suspended within 20 s"
            time.sleep(0.1)
    finally:
        stop.set()
        loop.join(10)
    assert not loop.is_alive()
    assert desk.hasManagedSaveImage(0)


NODE = """<node><domain type='test'><name>later</name><memory unit='MiB'>128</memory><os><type>hvm</type></os>
</domain></node>"""


def test_the_loop_keeps_trying_until_libvirt_answers(tmp_path, caplog):
    """A host whose libvirt does not answer yet (a test:/// node file not there) is connected when it does."""
    caplog.set_level(logging.INFO, "vdesk.lifecycle")
    node = tmp_path / "node.xml"
    LifecycleSettings(libvirt_uri=f"test://{node}", poll=2).write(tmp_path)
    stop = threading.Event()
    loop = threading.Thread(target=run, args=(tmp_path, stop), daemon=True)
    loop.start()
    try:
        deadline = time.monotonic() + 20
        while not any("reconnecting in" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no reconnect attempt logged"
            time.sleep(0.1)
        node.write_text(NODE)
        while not any(r.getMessage() == f"connected to test://{node}" for r in caplog.records):
            assert time.monotonic() < deadline, "not connected once libvirt answered"
            time.sleep(0.1)
    finally:
        stop.set()
        loop.join(10)
    assert not loop.is_alive()
