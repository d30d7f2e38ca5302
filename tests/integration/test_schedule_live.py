"""A schedule on the project's own libvirtd, kept by the host's real lifecycle service, on the wall clock: the
desktop is shut down at the schedule's stop and started again at its start.

The schedule leaves out one whole minute, M, soon after the test begins (start M+1, stop M, every day, in a
time zone that is not UTC and has a half-hour offset): stopped at M:00, started at M+1:00, at most about two
minutes of waiting. The guest is firmware only (no OS boots; it still runs QEMU, hence `guests`), so it
ignores the ACPI power button and the service forces it off after the host's `shutdown_timeout`, set short.
A private libvirtd of this module's own, and the service under its supervisor, as `up` starts it.
"""
from __future__ import annotations

import datetime
import json
import time
from zoneinfo import ZoneInfo

import libvirt
import pytest

from components.host import embedded
from components.lifecycle import LifecycleSettings, actions, supervisor
from components.lifecycle.service import STATE_FILE
from components.resources.domain import DomainProvider
from components.waiting import wait_for
from tests.support.providers import checked

pytestmark = [pytest.mark.integration, pytest.mark.guests]
NAME = "lcsched"
DESKTOP = "sched-live"
ZONE = "Asia/Kolkata"            # UTC+05:30, no summer time: the service reads the clock in the schedule's zone
POLL_S, SHUTDOWN_TIMEOUT_S = 2, 2
SETUP_MARGIN_S = 20              # defining and starting the desktop, and the service's first look at it
# Past an edge the service acts at its next turn (at most POLL_S later), a stop also waits out the ignored ACPI
# request (SHUTDOWN_TIMEOUT_S) before forcing it off; 4 s more for the turn itself on a busy two-core machine.
EDGE_SLACK_S = POLL_S + SHUTDOWN_TIMEOUT_S + 4


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    made = embedded.embedded_host(NAME, state_root=tmp_path_factory.mktemp("sched-state"))
    embedded.ensure_running(made)
    lifecycle_dir = made.state_dir / "lifecycle"
    # The host's settings, the administrator's file: a short poll and a short forced shutdown.
    settings = LifecycleSettings(libvirt_uri=made.uri, poll=POLL_S, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    settings.write(lifecycle_dir)
    supervisor.ensure_running(lifecycle_dir, settings)
    yield made, lifecycle_dir
    try:
        supervisor.stop(lifecycle_dir)
    finally:
        embedded.stop(made, purge=True)


def the_minute_left_out(now: float) -> datetime.datetime:
    """The first whole minute that begins at least SETUP_MARGIN_S from now, in ZONE."""
    soon = datetime.datetime.fromtimestamp(now + SETUP_MARGIN_S, ZoneInfo(ZONE))
    return soon.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)


def schedule_without(minute: datetime.datetime) -> dict:
    """Every day, all but `minute`: stop at it, start at the next (23:59 gives 00:00-23:59, else overnight)."""
    after = minute + datetime.timedelta(minutes=1)
    return {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": after.strftime("%H:%M"),
            "stop": minute.strftime("%H:%M"), "timezone": ZONE}


def test_the_minute_left_out_rolls_over_the_hour_and_the_day():
    from components.lifecycle.schedule import Schedule
    late = datetime.datetime(2026, 12, 8, 23, 59, tzinfo=ZoneInfo(ZONE))
    assert (schedule_without(late)["start"], schedule_without(late)["stop"]) == ("00:00", "23:59")
    for minute in (late, datetime.datetime(2026, 12, 8, 9, 59, tzinfo=ZoneInfo(ZONE))):
        schedule = Schedule(**schedule_without(minute))
        edge = minute.timestamp()
        assert [schedule.running_at(edge + s) for s in (-1, 0, 59, 60)] == [True, False, False, True]


def _watched(lifecycle_dir) -> dict:
    """The running desktops the service has looked at (its state file; none before its first turn)."""
    try:
        return json.loads((lifecycle_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return {}


def _wait_edge(condition, edge: float, what: str) -> float:
    """Wait for `condition` until EDGE_SLACK_S past the edge; returns when it was first seen to hold."""
    wait_for(condition, edge + EDGE_SLACK_S - time.time(), interval_s=0.2, what=what)
    return time.time()


def test_a_schedule_stops_and_starts_a_desktop_at_its_edges(host):
    made, lifecycle_dir = host
    minute = the_minute_left_out(time.time())
    stop_at, start_at = minute.timestamp(), minute.timestamp() + 60
    schedule = schedule_without(minute)
    said = f"mon,tue,wed,thu,fri,sat,sun {schedule['start']}-{schedule['stop']} {ZONE}"
    log = lifecycle_dir / supervisor.LOG_FILE
    provider = DomainProvider()
    inputs = checked(provider, {"host_uri": made.uri, "name": DESKTOP, "owner": "sched", "domain_type": "qemu",
                                "boot": "bios", "memory": 128 * 1024**2, "vcpus": 1, "schedule": schedule,
                                "shutdown_timeout_s": SHUTDOWN_TIMEOUT_S})
    created = provider.create(inputs)
    conn = libvirt.open(made.uri)
    try:
        dom = conn.lookupByName(DESKTOP)
        assert dom.isActive()
        uuid = dom.UUIDString()
        wait_for(lambda: uuid in _watched(lifecycle_dir), stop_at - time.time() - 1,
                 what="the service to see the desktop running before the stop")
        assert dom.isActive() and time.time() < stop_at, log.read_text()

        # 1. At the stop: shut down (forced: no OS answers ACPI), noted as the schedule's, logged with it.
        off_seen = _wait_edge(lambda: not dom.isActive(), stop_at, "the schedule's stop")
        assert stop_at <= off_seen, f"stopped {stop_at - off_seen:.1f} s before its stop"
        assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
        wait_for(lambda: actions.runtime_state(dom) == "schedule-off", 5, what="the note that the schedule stopped it")
        assert actions.off_by(dom) == "schedule"
        wait_for(lambda: f"stop desktop={DESKTOP} how=forced off after {SHUTDOWN_TIMEOUT_S}s reason=outside its "
                         f"schedule ({said})" in log.read_text(), 5, what="the stop's log line")

        # 2. Outside its hours, refresh and `up` leave it off: declared running, no drift; an update keeps it off.
        read = provider.read(created.id, created.outs)
        assert (read.outs["state"], read.outs["running"]) == ("schedule-off", True)
        assert not provider.diff(created.id, read.outs, inputs).changes
        updated = provider.update(created.id, read.outs, checked(provider, inputs | {"autostart": True}, read.outs))
        assert updated.outs["state"] == "schedule-off" and not dom.isActive() and time.time() < start_at

        # 3. At the start: started again by its schedule, the note gone.
        on_seen = _wait_edge(lambda: dom.isActive(), start_at, "the schedule's start")
        assert start_at <= on_seen, f"started {start_at - on_seen:.1f} s before its start"
        wait_for(lambda: actions.off_by(dom) is None, 5, what="the schedule's note dropped once it runs")
        assert actions.runtime_state(dom) == "running"
        wait_for(lambda: f"start desktop={DESKTOP} reason=its schedule ({said})" in log.read_text(), 5,
                 what="the start's log line")
        print(f"stopped {off_seen - stop_at:.1f} s after its stop, started {on_seen - start_at:.1f} s after its "
              f"start (slack {EDGE_SLACK_S} s)")
    finally:
        conn.close()
        provider.delete(created.id, created.outs)
