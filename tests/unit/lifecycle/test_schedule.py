"""Schedules: declared like the stack file's other settings, carried by the domain, and kept by the host's
lifecycle service on libvirt's test driver (shut down outside the hours, started again when they begin)."""
import datetime
import logging

import pytest
from pydantic import ValidationError

from components.lifecycle import actions
from components.lifecycle.schedule import Schedule, schedule_of
from components.lifecycle.service import Lifecycle
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
