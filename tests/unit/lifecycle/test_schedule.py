"""Schedules: declared like the stack file's other settings, carried by the domain, and kept by the host's
lifecycle service on libvirt's test driver (shut down outside the hours, started again when they begin)."""
import datetime
import json
import logging
import time

import pytest
from pydantic import ValidationError

from components.lifecycle import actions
from components.lifecycle.schedule import Schedule, schedule_of, set_schedule
from components.lifecycle.service import STATE_FILE, Lifecycle
from components.lifecycle.settings import LifecycleSettings
from components.resources.domain import DomainProvider

URI = "test:///default"
NAME = "sched-unit"
WEEKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "07:00", "stop": "20:00", "timezone": "UTC"}


def at(day: int, hour: int, minute: int = 0, zone=datetime.timezone.utc) -> float:
    """Epoch seconds of December `day` 2026 (the 7th is a Monday) at hour:minute."""
    return datetime.datetime(2026, 12, day, hour, minute, tzinfo=zone).timestamp()


@pytest.mark.parametrize("when, running", [
    (at(7, 6, 59), False), (at(7, 7, 0), True), (at(7, 19, 59), True), (at(7, 20, 0), False),
    (at(12, 10), False),                                   # a Saturday
])
def test_weekday_hours(when, running):
    assert Schedule(**WEEKDAYS).running_at(when) is running


def test_overnight_and_time_zones():
    night = Schedule(days=["fri"], start="22:00", stop="02:00")
    assert night.running_at(at(11, 23)) and night.running_at(at(12, 1, 30))   # Friday night into Saturday
    assert not night.running_at(at(12, 2)) and not night.running_at(at(10, 23))
    berlin = Schedule(days=["mon"], start="07:00", stop="08:00", timezone="Europe/Berlin")
    assert berlin.running_at(at(7, 6, 30)) and not berlin.running_at(at(7, 7, 30))   # 07:30 Berlin is 06:30 UTC


@pytest.mark.parametrize("given, words", [
    ({"start": "7:00", "stop": "20:00"}, "String should match pattern"),
    ({"start": "07:00", "stop": "24:00"}, "String should match pattern"),
    ({"start": "07:00", "stop": "07:00"}, "start and stop are both 07:00"),
    ({"start": "07:00", "stop": "20:00", "timezone": "Mars/Olympus"}, "not a time zone"),
    ({"start": "07:00", "stop": "20:00", "days": []}, "at least 1 item"),
    ({"start": "07:00", "stop": "20:00", "days": ["monday"]}, "'mon'"),
    ({"stop": "20:00"}, "Field required"),
])
def test_bad_schedules_say_why(given, words):
    with pytest.raises(ValidationError) as caught:
        Schedule(**given)
    assert any(words in e["msg"] for e in caught.value.errors()), caught.value.errors()


def test_metadata_round_trip():
    schedule = Schedule(days=["sat", "sun"], start="10:00", stop="16:30", timezone="Europe/Berlin")
    assert Schedule.from_metadata(schedule.to_metadata()) == schedule


@pytest.fixture
def made(conn):
    provider = DomainProvider()
    created = provider.create(provider.check({}, {
        "host_uri": URI, "name": NAME, "owner": "unit", "domain_type": "test", "memory": 256 * 1024**2, "vcpus": 1,
        "boot": "bios", "disks": [], "nics": [], "schedule": WEEKDAYS, "shutdown_timeout_s": 2}).inputs)
    yield provider, created, conn.lookupByName(NAME)
    provider.delete(created.id, created.outs)


def test_the_service_keeps_the_schedule_and_up_sees_no_drift(conn, made, tmp_path, caplog):
    caplog.set_level(logging.INFO, "vdesk.lifecycle")
    provider, created, dom = made
    assert schedule_of(dom) == Schedule(**WEEKDAYS)
    assert provider.read(created.id, created.outs).outs["schedule"] == WEEKDAYS
    lifecycle = Lifecycle(tmp_path, LifecycleSettings(libvirt_uri=URI, poll=5, shutdown_timeout=5))
    lifecycle.turn(conn, at(7, 12))
    assert dom.isActive()                                                # inside its hours: left running
    lifecycle.turn(conn, at(7, 20, 1))
    assert not dom.isActive() and actions.runtime_state(dom) == "schedule-off"
    assert "stop desktop=sched-unit how=shut down reason=outside its schedule (mon,tue,wed,thu,fri 07:00-20:00 " \
           "UTC)" in [r.getMessage() for r in caplog.records]
    read = provider.read(created.id, created.outs)                     # refresh: declared running, no drift
    assert (read.outs["state"], read.outs["running"]) == ("schedule-off", True)
    assert not provider.diff(created.id, read.outs, created.outs).changes
    lifecycle.turn(conn, at(8, 6, 59))
    assert not dom.isActive()
    lifecycle.turn(conn, at(8, 7, 0))                                  # Tuesday 07:00: started again
    assert dom.isActive() and actions.runtime_state(dom) == "running"


def test_a_desktop_someone_stopped_is_not_started_by_its_schedule(conn, made, tmp_path):
    _provider, _created, dom = made
    dom.destroy()
    Lifecycle(tmp_path, LifecycleSettings(libvirt_uri=URI, poll=5)).turn(conn, at(7, 12))
    assert not dom.isActive()


def _desktop(conn, name: str, schedule: Schedule, ignores_acpi: bool = False):
    """A persistent test-driver domain with a schedule; on_poweroff=restart: it answers ACPI by running on."""
    dom = conn.defineXML(f"<domain type='test'><name>{name}</name><memory unit='MiB'>128</memory>"
                         f"<os><type>hvm</type></os>"
                         + ("<on_poweroff>restart</on_poweroff>" if ignores_acpi else "") + "</domain>")
    set_schedule(dom, schedule)
    return dom


def test_a_guest_ignoring_acpi_holds_no_turn(conn, tmp_path, caplog):
    """Two desktops stop at 20:00: both are asked in one turn that does not wait out the grace period; a start
    due during it is made on time; past it the deaf one is forced off (by a restarted service: it is in the state)."""
    caplog.set_level(logging.INFO, "vdesk.lifecycle")
    weekdays = Schedule(**WEEKDAYS)
    deaf, quick = _desktop(conn, "sched-deaf", weekdays, ignores_acpi=True), _desktop(conn, "sched-quick", weekdays)
    late = _desktop(conn, "sched-late", Schedule(days=["mon"], start="20:01", stop="23:00"))
    for dom in (deaf, quick):
        dom.create()
    actions.mark_off(late, "schedule")                     # off by its schedule until 20:01
    settings = LifecycleSettings(libvirt_uri=URI, poll=5, shutdown_timeout=60)
    lifecycle = Lifecycle(tmp_path, settings)
    lifecycle.turn(conn, at(7, 19, 59))
    stop_edge = at(7, 20) + 30

    began = time.monotonic()
    lifecycle.turn(conn, stop_edge)
    assert time.monotonic() - began < 10                 # not the 60 s grace period
    assert not quick.isActive() and actions.runtime_state(quick) == "schedule-off"
    assert deaf.isActive() and actions.off_by(deaf) is None
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved[deaf.UUIDString()]["stopping"]["deadline"] == stop_edge + 60
    assert lifecycle.next_turn_in(stop_edge + 58) == 2   # the grace period's end is not a poll late

    began = time.monotonic()
    lifecycle.turn(conn, at(7, 20, 1))                    # in the grace period: the late one's start is due
    assert time.monotonic() - began < 10
    assert late.isActive() and deaf.isActive()
    lines = [r.getMessage() for r in caplog.records]
    assert "start desktop=sched-late reason=its schedule (mon 20:01-23:00 UTC)" in lines
    said = "outside its schedule (mon,tue,wed,thu,fri 07:00-20:00 UTC)"
    assert f"stop desktop=sched-quick how=shut down reason={said}" in lines
    assert not any(line.startswith("stop desktop=sched-deaf") for line in lines)

    Lifecycle(tmp_path, settings).turn(conn, stop_edge + 60)
    assert not deaf.isActive() and actions.runtime_state(deaf) == "schedule-off"
    lines = [r.getMessage() for r in caplog.records]
    assert [line for line in lines if line.startswith("stop desktop=sched-deaf")] == \
        [f"stop desktop=sched-deaf how=forced off after 60s reason={said}"]
    assert late.isActive()
