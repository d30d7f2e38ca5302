"""The host's lifecycle service is started by `up` only, beside the console gateway and the portal, and stopped
with the host: a preview (an unreviewed plan) starts nothing on the host.

A private libvirtd of this module's own (no guest runs): its host entry is resolved as a preview resolves it,
then as `up` does; `embedded.stop` then leaves no lifecycle process behind.
"""
from __future__ import annotations

import pytest
from pulumi.runtime import settings as pulumi_settings

from components.console import service as console
from components.host import embedded
from components.host.resolve import EMBEDDED, resolve_host
from components.lifecycle import LifecycleSettings, supervisor

pytestmark = pytest.mark.integration
NAME = "lctest"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    root = tmp_path_factory.mktemp("lc-state")
    made = embedded.embedded_host(NAME, state_root=root)
    embedded.ensure_running(made)
    yield root, made
    embedded.stop(made, purge=True)


def test_a_preview_starts_no_service_and_up_does(host, monkeypatch):
    root, made = host
    lifecycle_dir = made.state_dir / "lifecycle"
    monkeypatch.setenv("VDESK_STATE", str(root))
    monkeypatch.setattr(pulumi_settings.SETTINGS, "dry_run", True)
    resolve_host(NAME, EMBEDDED, "tcg", probe_kernel=None)
    assert supervisor.supervisor_pid(lifecycle_dir) is None and not (lifecycle_dir / "settings.json").exists()

    monkeypatch.setattr(pulumi_settings.SETTINGS, "dry_run", False)
    resolved = resolve_host(NAME, EMBEDDED, "tcg", probe_kernel=None)
    pid = supervisor.supervisor_pid(lifecycle_dir)
    assert pid is not None and console.supervisor_pid(made.state_dir / "console") is not None
    assert LifecycleSettings.read(lifecycle_dir).libvirt_uri == resolved.uri     # it watches this host
    resolve_host(NAME, EMBEDDED, "tcg", probe_kernel=None)                       # the next `up`: left running
    assert supervisor.supervisor_pid(lifecycle_dir) == pid

    embedded.stop(made)
    assert supervisor.supervisor_pid(lifecycle_dir) is None and supervisor.service_pid(lifecycle_dir) is None


def test_after_a_killed_run_embedded_stop_stops_the_services_no_record_names(host, monkeypatch):
    import os
    import signal

    from components import hostservice
    from components.portal import service as portal
    from components.processes import alive
    from components.waiting import wait_for
    root, made = host
    monkeypatch.setenv("VDESK_STATE", str(root))
    monkeypatch.setattr(pulumi_settings.SETTINGS, "dry_run", False)
    resolve_host(NAME, EMBEDDED, "tcg", probe_kernel=None)                       # `up`: the three services run
    state = made.state_dir.resolve()
    lifecycle_dir, console_dir, portal_dir = state / "lifecycle", state / "console", state / "portal"
    left = [wait_for(lambda: supervisor.service_pid(lifecycle_dir), 20, interval_s=0.1),
            console.runtime(console_dir)["pid"], portal.runtime(portal_dir)["pid"]]
    for pid in (supervisor.supervisor_pid(lifecycle_dir), console.supervisor_pid(console_dir)):
        os.kill(pid, signal.SIGKILL)                            # a killed run: the supervisors gone ...
        wait_for(lambda: not alive(pid), 15, interval_s=0.1)
    for record in (lifecycle_dir / supervisor.SERVICE_PID, console_dir / console.RUNTIME_FILE,
                   portal_dir / portal.RUNTIME_FILE):
        record.unlink(missing_ok=True)                          # ... and the records of what they started
    assert all(alive(pid) for pid in left)
    embedded.stop(made)
    assert wait_for(lambda: not any(alive(pid) for pid in left), 15, interval_s=0.1)
    assert hostservice.strays(lambda arg: arg.startswith(str(state) + os.sep)) == []
