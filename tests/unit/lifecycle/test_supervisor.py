"""The host's lifecycle service runs detached under a supervisor that restarts it, and stops on request."""
import os
import signal
import time
from pathlib import Path

import pytest

from components import rootexec
from components.lifecycle import supervisor
from components.lifecycle.settings import LifecycleSettings


def wait_for(condition, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() >= deadline:
            pytest.fail(f"not true within {timeout_s}s: {condition}")
        time.sleep(0.1)
    return value


def log_of(path):
    return (path / supervisor.LOG_FILE).read_text() if (path / supervisor.LOG_FILE).exists() else ""


REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def libexec(tmp_path_factory, monkeypatch):
    """Where the root-owned copy of vdesk's code goes that the service imports."""
    monkeypatch.setenv("VDESK_LIBEXEC", str(tmp_path_factory.mktemp("libexec")))


def test_supervised_restarted_and_stopped(tmp_path):
    settings = LifecycleSettings(libvirt_uri="test:///default", poll=2)
    pid = supervisor.ensure_running(tmp_path, settings)
    try:
        assert supervisor.ensure_running(tmp_path, settings) == pid          # already running: the same one
        # a root daemon: it imports a root-owned copy of vdesk's code, never the checkout
        environ = dict(e.split("=", 1) for e in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in e)
        assert environ["PYTHONPATH"].startswith(os.environ["VDESK_LIBEXEC"]) and str(REPO) not in environ["PYTHONPATH"]
        assert rootexec.owner_problem(Path(environ["PYTHONPATH"]) / "components" / "lifecycle" / "service.py") is None
        # A later caller (another stack's `up`) cannot change the host's settings, nor switch the service off.
        assert supervisor.ensure_running(tmp_path, settings.model_copy(update={"enabled": False})) == pid
        assert LifecycleSettings.read(tmp_path).enabled
        first = wait_for(lambda: supervisor.service_pid(tmp_path))
        wait_for(lambda: "connected to test:///default" in log_of(tmp_path))
        os.kill(first, signal.SIGKILL)                                       # the service dies
        second = wait_for(lambda: (p := supervisor.service_pid(tmp_path)) not in (None, first) and p)
        assert second != first and supervisor.supervisor_pid(tmp_path) == pid
        wait_for(lambda: "service exited (-9); restarting in" in log_of(tmp_path))
        wait_for(lambda: log_of(tmp_path).count("connected to test:///default") == 2)
    finally:
        supervisor.stop(tmp_path)
    assert supervisor.supervisor_pid(tmp_path) is None and supervisor.service_pid(tmp_path) is None


def test_settings_are_the_hosts_file(tmp_path):
    settings = LifecycleSettings(libvirt_uri="qemu:///system", poll="30s", enabled=False)
    settings.write(tmp_path)
    assert LifecycleSettings.read(tmp_path) == settings
    assert settings.poll == 30 and settings.shutdown_timeout == 120 and settings.default is None


@pytest.mark.parametrize("given, field", [({"poll": "1s"}, "poll"), ({"poll": "2h"}, "poll"),
                                          ({"default": {"after": "5m", "warn": "10m"}}, "default"),
                                          ({"switch_off": "other-stack"}, "switch_off")])
def test_bad_host_settings_name_the_field(given, field):
    from pydantic import ValidationError
    with pytest.raises(ValidationError) as caught:
        LifecycleSettings(libvirt_uri="qemu:///system", **given)
    assert caught.value.errors()[0]["loc"][0] == field
