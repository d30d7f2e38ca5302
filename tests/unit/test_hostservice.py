"""After a killed run, the host's services that no record names any more are found by their command line and
stopped: by the next `up` (ensure_running), by a stop (`embedded.stop`), and by the test session's tear-down."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from components import hostservice
from components.console import gateway, service as console
from components.console.settings import ConsoleSettings
from components.lifecycle import supervisor as lifecycle
from components.lifecycle.settings import LifecycleSettings
from components.portal import service as portal
from components.portal.settings import PortalSettings
from components.processes import alive
from components.waiting import wait_for

URI = "test:///default"


@pytest.fixture(autouse=True)
def libexec(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VDESK_LIBEXEC", str(tmp_path_factory.mktemp("libexec")))


def gone(pid: int) -> bool:
    return wait_for(lambda: not alive(pid), 15, interval_s=0.1)


def test_a_lifecycle_service_whose_supervisor_was_killed_is_reaped_by_up_and_by_stop(tmp_path):
    folder = (tmp_path / "lifecycle").resolve()
    settings = LifecycleSettings(libvirt_uri=URI, poll=2)
    first = lifecycle.ensure_running(folder, settings)
    orphan = wait_for(lambda: lifecycle.service_pid(folder), 20, interval_s=0.1)
    os.kill(first, signal.SIGKILL)                        # the run is killed: its service lives on, unsupervised
    gone(first)
    (folder / lifecycle.SERVICE_PID).write_text(f"{os.getpid()}\n")   # and its record names a process not ours
    try:
        assert lifecycle.supervisor_pid(folder) is None and lifecycle.service_pid(folder) is None
        second = lifecycle.ensure_running(folder, settings)            # the next `up`: the orphan is reaped
        assert gone(orphan) and second != first
        assert hostservice.strays(lambda arg: arg == str(folder)) == sorted(
            [second, wait_for(lambda: lifecycle.service_pid(folder), 20, interval_s=0.1)])
        os.kill(second, signal.SIGKILL)
        gone(second)
        survivor = lifecycle.service_pid(folder)
        (folder / lifecycle.SERVICE_PID).unlink()           # no record names it any more
    finally:
        lifecycle.stop(folder)                              # embedded.stop's call
    assert gone(survivor) and hostservice.strays(lambda arg: arg == str(folder)) == []
    assert alive(os.getpid())                               # the process the stale record named is not signalled


@pytest.mark.skipif(not os.path.isdir(gateway.NOVNC_DIR), reason="needs the novnc package")
def test_a_gateway_left_without_supervisor_nor_record_is_reaped_by_stop(tmp_path):
    folder = (tmp_path / "console").resolve()
    console.ensure_running(folder, ConsoleSettings(bind="127.0.0.1"), libvirt_uri=URI, netns=None)
    try:
        gateway_pid = console.runtime(folder)["pid"]
        supervisor_pid = console.supervisor_pid(folder)
        os.kill(supervisor_pid, signal.SIGKILL)
        gone(supervisor_pid)
        (folder / console.RUNTIME_FILE).unlink()
        assert console.runtime(folder) is None and console.supervisor_pid(folder) is None
    finally:
        console.stop(folder)
    assert gone(gateway_pid)


def test_a_portal_whose_record_was_lost_is_reaped_when_up_starts_the_next(tmp_path):
    folder = (tmp_path / "portal").resolve()
    portal.ensure_running(folder, PortalSettings(), libvirt_uri=URI, host="local", console_dir=None)
    try:
        old = portal.runtime(folder)["pid"]
        (folder / portal.RUNTIME_FILE).unlink()             # a killed run's record gone: this one runs unnamed
        portal.ensure_running(folder, PortalSettings(), libvirt_uri=URI, host="local", console_dir=None)
        assert gone(old) and portal.runtime(folder)["pid"] != old
    finally:
        portal.stop(folder)
    assert hostservice.strays(lambda arg: arg == str(folder)) == []


def test_the_test_sessions_tear_down_stops_every_service_below_its_folder(tmp_path):
    inside = (tmp_path / "host" / "lifecycle").resolve()
    outside_module = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(inside)])
    stray = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", hostservice.SERVICE_MODULES[-1],
                              "serve", str(inside)])
    try:
        assert hostservice.reap_under(tmp_path) == [stray.pid]       # a module of vdesk's and a folder below
        assert stray.wait(timeout=15) == -signal.SIGTERM
        assert outside_module.poll() is None                          # not a host service: left alone
    finally:
        for proc in (stray, outside_module):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
