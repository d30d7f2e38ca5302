"""Restarting the console gateway when its old process ignores SIGTERM (seen once in a full run)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from components.console import service
from components.console.settings import ConsoleSettings

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"


class Launched(Exception):
    def __init__(self, seconds_left: float):
        self.seconds_left = seconds_left


def test_an_old_gateway_that_ignores_sigterm_is_killed_and_the_new_one_gets_its_whole_timeout(tmp_path, monkeypatch):
    console_dir = tmp_path.resolve()
    # The supervisor as the service finds it: its command line names the module and this host's folder.
    old = subprocess.Popen([sys.executable, "-c", STUBBORN, "components.console.service", str(console_dir)],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert old.stdout.readline().strip() == "ready"
        (console_dir / service.SUPERVISOR_PID).write_text(f"{old.pid}\n")
        assert service.supervisor_pid(console_dir) == old.pid

        def launch(_dir, deadline):
            raise Launched(deadline - time.monotonic())
        monkeypatch.setattr(service, "_launch", launch)
        monkeypatch.setattr(service, "NOVNC_DIR", str(tmp_path))

        started = time.monotonic()
        with pytest.raises(Launched) as launched:
            service.ensure_running(console_dir, ConsoleSettings(), libvirt_uri="test:///default", netns=None,
                                   timeout_s=20)
        assert old.wait(timeout=30) == -9, "killed after the grace, not left running"
        assert time.monotonic() - started < 20, "the grace is short, not the whole timeout"
        assert launched.value.seconds_left > 19, "the new gateway gets its whole timeout to start"
    finally:
        if old.poll() is None:
            old.kill()
            old.wait()


def test_a_stale_gateway_record_naming_someone_elses_process_is_not_signalled(tmp_path):
    console_dir = tmp_path.resolve()
    # gateway.json left by a gateway that died; its pid now belongs to an unrelated process
    other = subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(600)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        (console_dir / service.RUNTIME_FILE).write_text(f'{{"pid": {other.pid}, "port": 1, "url": "x"}}\n')
        assert service.runtime(console_dir) is None
        service.stop(console_dir, timeout_s=2)
        assert other.poll() is None, "root signalled a process that is not this host's gateway"
        assert not (console_dir / service.RUNTIME_FILE).exists()
    finally:
        other.kill()
        other.wait()
