"""apply_when: idle, on libvirt's test driver: a memory change to a running desktop in use stays pending (held in
the domain), and the host's lifecycle service applies it (a restart on the new definition) once nobody has used
the desktop for `apply_after`; console input meanwhile keeps it waiting."""
import logging
import time

import pytest

from components import xmlmodel
from components.lifecycle import actions, console_input
from components.lifecycle.schedule import WINDOW_NEEDED, window_of
from components.lifecycle.service import Lifecycle
from components.lifecycle.settings import LifecycleSettings
from components.resources.domain import DomainProvider
from tests.unit.config.test_program import example_stack, golden, mocks  # noqa: F401  (fixtures)

URI = "test:///default"
NAME = "held-unit"
T0 = 1_900_000_000.0


def _props(**over):
    return {"host_uri": URI, "name": NAME, "owner": "unit", "domain_type": "test", "memory": 512 * 1024**2, "vcpus": 1,
            "boot": "bios", "disks": [], "nics": [], "apply_when": "idle", "shutdown_timeout_s": 2, **over}


@pytest.fixture
def made(conn):
    provider = DomainProvider()
    created = provider.create(provider.check({}, _props()).inputs)
    yield provider, created, conn.lookupByName(NAME)
    provider.delete(created.id, created.outs)


def _boot(conn) -> int:
    """The running domain's id: a new one at each start (looked up again: a handle keeps the id it had)."""
    return conn.lookupByName(NAME).ID()


def _live_memory_mib(dom) -> int:
    return xmlmodel.Domain.from_xml(dom.XMLDesc(0)).memory_kib // 1024


def test_a_memory_change_is_held_pending_then_applied_when_idle(conn, made, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    provider, created, dom = made
    lifecycle = Lifecycle(tmp_path, LifecycleSettings(libvirt_uri=URI, poll=5, apply_after="2m"))
    lifecycle.turn(conn, T0)                                           # the service knows when it started
    booted = _boot(conn)

    news = provider.check(created.outs, _props(memory=1024 * 1024**2)).inputs
    updated = provider.update(created.id, created.outs, news)
    assert updated.outs["pending_restart"] is True                     # the plan and the outputs say so
    assert _boot(conn) == booted and _live_memory_mib(dom) == 512         # not restarted under its user
    assert actions.held(dom) == ["memory"]
    assert provider.read(created.id, updated.outs).outs["pending_restart"] is True
    # A second `up` with the change already in the state keeps it held (a redefinition drops the metadata).
    again = provider.update(created.id, updated.outs, news)
    assert again.outs["pending_restart"] is True and actions.held(dom) == ["memory"]

    # On the test driver no guest agent answers, so the service cannot see the guest's input: it waits.
    lifecycle.turn(conn, T0 + 3600)
    assert _boot(conn) == booted and actions.held(dom) == ["memory"]
    assert any(r.getMessage().startswith(f"held desktop={NAME} reason=memory wait for 2 min without input")
               for r in caplog.records)


def _agentless(conn, memory_mib: int, uuid: str | None = None):
    """A desktop the test driver can tell everything about: no guest agent to ask (its console and start only)."""
    return conn.defineXML(xmlmodel.Domain(type="test", name="held-agentless", memory_kib=memory_mib * 1024,
                                          current_memory_kib=memory_mib * 1024, vcpus=1, os_type="hvm",
                                          arch="x86_64", uuid=uuid).to_xml())


def test_the_service_applies_a_held_change_once_nobody_used_it_for_apply_after(conn, tmp_path, caplog):
    caplog.set_level(logging.INFO, "vdesk.lifecycle")
    dom = _agentless(conn, 512)
    dom.create()
    try:
        lifecycle = Lifecycle(tmp_path, LifecycleSettings(libvirt_uri=URI, poll=5, apply_after="2m"))
        lifecycle.turn(conn, T0)
        booted = conn.lookupByName("held-agentless").ID()
        dom = _agentless(conn, 1024, dom.UUIDString())                 # what `up` defined, and held
        actions.hold(dom, ["memory"])
        console_input.record_input(tmp_path, "held-agentless", T0 + 100)   # someone types at its console
        lifecycle.turn(conn, T0 + 150)
        assert conn.lookupByName("held-agentless").ID() == booted and actions.held(dom)   # in use: waiting
        lifecycle.turn(conn, T0 + 100 + 121)                           # 2 min without input: applied
        dom = conn.lookupByName("held-agentless")
        assert dom.isActive() and dom.ID() != booted and _live_memory_mib(dom) == 1024
        assert actions.held(dom) == []
        assert "applied desktop=held-agentless changes=memory how=shut down, started again reason=no input " \
               "for 2 min" in [r.getMessage() for r in caplog.records]
    finally:
        if dom.isActive():
            dom.destroy()
        dom.undefine()


def test_a_held_change_to_a_guest_that_ignores_acpi_does_not_hold_the_turn(conn, tmp_path, caplog):
    """The restart is a stop like the idle ones: asked and left; the turn past shutdown_timeout forces it off and
    starts it on the new definition, and the turns between go on for the other desktops."""
    caplog.set_level(logging.INFO, "vdesk.lifecycle")
    deaf = conn.defineXML(xmlmodel.Domain(type="test", name="held-deaf", memory_kib=512 * 1024,
                                          current_memory_kib=512 * 1024, vcpus=1, os_type="hvm",
                                          arch="x86_64").to_xml().replace(
        "</domain>", "<on_poweroff>restart</on_poweroff></domain>"))      # answers ACPI by running on
    deaf.create()
    try:
        lifecycle = Lifecycle(tmp_path, LifecycleSettings(libvirt_uri=URI, poll=5, apply_after="2m",
                                                          shutdown_timeout=30))
        lifecycle.turn(conn, T0)
        booted = deaf.ID()
        actions.hold(deaf, ["memory"])
        began = time.monotonic()
        lifecycle.turn(conn, T0 + 121)                                 # idle for apply_after: asked
        assert time.monotonic() - began < 10
        assert conn.lookupByName("held-deaf").ID() == booted and actions.held(deaf) == ["memory"]
        assert lifecycle.next_turn_in(T0 + 121) == 5                   # a poll; the grace period ends later
        lifecycle.turn(conn, T0 + 150)                                 # within its grace: left be
        assert conn.lookupByName("held-deaf").ID() == booted
        lifecycle.turn(conn, T0 + 151)                                 # past it: forced off, started again
        again = conn.lookupByName("held-deaf")
        assert again.isActive() and again.ID() != booted and actions.held(again) == []
        assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("applied desktop=held-deaf")] \
            == ["applied desktop=held-deaf changes=memory how=forced off after 30s, started again "
                "reason=no input for 2 min"]
        lifecycle.turn(conn, T0 + 160)                                 # a new boot: nothing more to apply
        assert conn.lookupByName("held-deaf").ID() == again.ID()
    finally:
        dom = conn.lookupByName("held-deaf")
        if dom.isActive():
            dom.destroy()
        dom.undefine()


def test_with_apply_when_now_the_change_restarts_at_once(conn, made):
    provider, created, dom = made
    booted = _boot(conn)
    updated = provider.update(created.id, created.outs,
                              provider.check(created.outs, _props(memory=1024 * 1024**2, apply_when="now")).inputs)
    assert updated.outs["pending_restart"] is False and _boot(conn) != booted and _live_memory_mib(dom) == 1024
    assert actions.held(dom) == []


def test_a_change_a_running_guest_takes_live_is_not_held(conn, made):
    provider, created, dom = made
    booted = _boot(conn)
    updated = provider.update(created.id, created.outs, provider.check(created.outs, _props(memory=384 * 1024**2)).inputs)
    assert updated.outs["pending_restart"] is False and _boot(conn) == booted and actions.held(dom) == []


def test_a_bad_apply_when_is_refused_at_check():
    failures = DomainProvider().check({}, _props(apply_when="window")).failures
    assert [f.property for f in failures] == ["apply_when"]


def test_host_settings_bound_apply_after():
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="at least 10 s"):
        LifecycleSettings(libvirt_uri=URI, apply_after="5s")


def test_a_change_to_a_sleeping_desktop_stays_held_for_after_its_wake(conn, made):
    provider, created, dom = made
    actions.suspend(dom)
    updated = provider.update(created.id, created.outs, provider.check(created.outs, _props(memory=1024 * 1024**2)).inputs)
    dom = conn.lookupByName(NAME)
    assert actions.asleep(dom) and updated.outs["pending_restart"] is True
    assert actions.held(dom) == ["memory"]


# apply_when: window --------------------------------------------------------------------------------------------

SATURDAY_NIGHT = {"days": ["sat"], "start": "02:00", "stop": "05:00", "timezone": "UTC"}
IN_IT = 1_900_467_600.0          # Sat 2030-03-23 03:40 UTC
BEFORE_IT = IN_IT - 3 * 3600     # the same Saturday, 00:40


def test_apply_when_window_without_a_window_is_refused_at_preview_naming_the_field(mocks):  # noqa: F811
    from components.config.loader import declare
    from components.errors import InputError
    raw = example_stack("dev")
    raw["profiles"]["desktop"]["apply_when"] = "window"
    with pytest.raises(InputError) as err:
        declare("dev", raw, config_keys={})
    assert dict(err.value.problems) == {"profiles.desktop.apply_when": WINDOW_NEEDED}
    assert mocks.resources == []
    raw["profiles"]["desktop"]["maintenance_window"] = SATURDAY_NIGHT
    declare("dev", raw, config_keys={})                             # with one: fine


def test_the_provider_refuses_window_without_one_and_a_bad_window_names_its_field():
    failures = DomainProvider().check({}, _props(apply_when="window")).failures
    assert [(f.property, f.reason) for f in failures] == [("apply_when", WINDOW_NEEDED)]
    failures = DomainProvider().check({}, _props(apply_when="window", maintenance_window={
        **SATURDAY_NIGHT, "start": "25:00"})).failures
    assert [f.property for f in failures] == ["maintenance_window"] and "start" in failures[0].reason


def test_a_change_held_for_its_window_waits_through_idleness_and_is_made_inside_it(conn, made, tmp_path, caplog):
    """Held like idle (pending, the same qemu), but no amount of idleness applies it: the window's opening does,
    used or not; the plan's pending_restart clears once it is made."""
    caplog.set_level(logging.INFO, "vdesk.lifecycle")
    provider, created, dom = made
    window = _props(apply_when="window", maintenance_window=SATURDAY_NIGHT)
    outs = provider.update(created.id, created.outs, provider.check(created.outs, window).inputs).outs
    lifecycle = Lifecycle(tmp_path, LifecycleSettings(libvirt_uri=URI, poll=5, apply_after="2m"))
    lifecycle.turn(conn, BEFORE_IT - 3600)
    booted = _boot(conn)
    news = provider.check(outs, _props(memory=1024 * 1024**2, apply_when="window",
                                       maintenance_window=SATURDAY_NIGHT)).inputs
    updated = provider.update(created.id, outs, news)
    assert updated.outs["pending_restart"] is True and _boot(conn) == booted and actions.held(dom) == ["memory"]
    assert window_of(conn.lookupByName(NAME)).said() == "sat 02:00-05:00 UTC"
    lifecycle.turn(conn, BEFORE_IT)                                 # an hour without input: still waiting
    assert _boot(conn) == booted and actions.held(dom) == ["memory"]
    assert f"held desktop={NAME} reason=memory wait for its maintenance window (sat 02:00-05:00 UTC)" in \
        [r.getMessage() for r in caplog.records]
    console_input.record_input(tmp_path, NAME, IN_IT - 10)         # in use when the window opens: made anyway
    lifecycle.turn(conn, IN_IT)
    dom = conn.lookupByName(NAME)
    assert dom.isActive() and _boot(conn) != booted and _live_memory_mib(dom) == 1024 and actions.held(dom) == []
    assert f"applied desktop={NAME} changes=memory how=shut down, started again reason=its maintenance window " \
           "(sat 02:00-05:00 UTC)" in [r.getMessage() for r in caplog.records]
    assert provider.read(created.id, updated.outs).outs["pending_restart"] is False


def test_a_window_declared_with_apply_when_idle_is_not_what_the_service_waits_for(conn, made):
    provider, created, dom = made
    news = provider.check(created.outs, _props(memory=1024 * 1024**2, maintenance_window=SATURDAY_NIGHT)).inputs
    provider.update(created.id, created.outs, news)
    assert window_of(conn.lookupByName(NAME)) is None and actions.held(dom) == ["memory"]
