"""Tests for parsing `cloud-init status --format json` across releases and waiting for it."""

import json
import os
import subprocess
import textwrap
import time

import pytest

from components.guest import GuestError, GuestTimeout
from components.guest.cloudinit_status import (
    CloudInitStatus,
    module_from_error,
    parse_status,
    wait_for_cloud_init,
)
from components.guest.ssh import CommandResult, render_command

LOCALE_ERROR = (
    "('locale', ProcessExecutionError(\"Unexpected error while running command.\\n"
    "Command: ['update-locale', '--locale-file=/etc/default/locale', 'LANG=xx_XX.UTF-8']\\n"
    "Exit code: 1\\nReason: -\\nStdout: \\nStderr: *** update-locale: Error: invalid locale "
    "settings:  LANG=xx_XX.UTF-8\"))"
)
SCRIPTS_ERROR = "('scripts_user', RuntimeError('Runparts: 1 failures (part-001) in 1 attempted commands'))"


def _v22(status, errors=(), detail="DataSourceNoCloud [seed=/dev/sr0][dsmode=net]", boot="enabled-by-generator"):
    """cloud-init 22.4 shape: flat keys plus a "schemas" copy."""
    body = {
        "boot_status_code": boot,
        "datasource": "nocloud",
        "detail": "\n".join(errors) if errors else detail,
        "errors": list(errors),
        "last_update": "Tue, 05 Mar 2024 10:01:02 +0000",
        "status": status,
    }
    return json.dumps({**body, "schemas": {"1": dict(body)}, "_schema_version": "1"}, indent=2, sort_keys=True)


def _stage(errors=(), recoverable=None, finished=1709632862.5):
    return {
        "errors": list(errors),
        "finished": finished,
        "recoverable_errors": recoverable or {},
        "start": 1709632860.1,
    }


def _v24(status, extended, errors=(), recoverable=None, final_errors=(), running=False):
    """cloud-init 23.4/24.x shape: status, extended_status, recoverable_errors and per-stage dicts."""
    return json.dumps(
        {
            "boot_status_code": "enabled-by-generator",
            "datasource": "nocloud",
            "detail": "DataSourceNoCloud [seed=/dev/vdb][dsmode=net]",
            "errors": list(errors),
            "extended_status": extended,
            "init": _stage(recoverable=recoverable),
            "init-local": _stage(),
            "last_update": "Tue, 05 Mar 2024 10:01:02 +0000",
            "modules-config": _stage(),
            "modules-final": _stage(errors=final_errors, finished=None if running else 1709632870.0),
            "recoverable_errors": recoverable or {},
            "stage": "modules-final" if running else None,
            "status": status,
        },
        indent=2,
        sort_keys=True,
    )


WARNINGS = {
    "DEPRECATED": ["Deprecated cloud-config provided: chpasswd.list: Deprecated in version 22.2."],
    "WARNING": ["Failed to write boot finished file /var/lib/cloud/instance/boot-finished"],
}


@pytest.mark.parametrize(
    "output, state, ok, modules, n_errors",
    [
        pytest.param(_v22("done"), "done", True, [], 0, id="22.4-done"),
        pytest.param(_v22("error", [LOCALE_ERROR]), "error", False, ["locale"], 1, id="22.4-locale-error"),
        pytest.param(_v22("running", detail="Running in stage: modules-config"), "running", False, [], 0, id="22.4-running"),
        pytest.param(_v22("not run", detail=""), "not started", False, [], 0, id="22.4-not-run"),
        pytest.param(
            _v22("disabled", detail="Cloud-init disabled by /etc/cloud/cloud-init.disabled", boot="disabled-by-marker-file"),
            "disabled", False, [], 0, id="disabled",
        ),
        pytest.param(_v24("done", "done"), "done", True, [], 0, id="24-done"),
        pytest.param(_v24("done", "degraded done", recoverable=WARNINGS), "degraded done", False, [], 0, id="24-degraded"),
        pytest.param(
            _v24("error", "error - done", errors=[SCRIPTS_ERROR, LOCALE_ERROR], final_errors=[SCRIPTS_ERROR]),
            "error", False, ["scripts_user", "locale"], 2, id="24-error-dedup",
        ),
        pytest.param(_v24("running", "degraded running", recoverable=WARNINGS, running=True), "degraded running", False, [], 0, id="24-degraded-running"),
        pytest.param(_v24("not started", "not started"), "not started", False, [], 0, id="24-not-started"),
        # "status" claims done but a stage recorded an error: the errors win.
        pytest.param(_v24("done", "done", final_errors=[LOCALE_ERROR]), "error", False, ["locale"], 1, id="done-with-stage-errors"),
        # 23.x before extended_status: recoverable errors alone mean degraded.
        pytest.param(
            json.dumps({"status": "done", "errors": [], "recoverable_errors": WARNINGS, "detail": "x"}),
            "degraded done", False, [], 0, id="23-recoverable-no-extended",
        ),
        # Some releases print progress dots before the JSON when waiting.
        pytest.param("....\n" + _v22("done"), "done", True, [], 0, id="leading-dots"),
    ],
)
def test_parse_status_table(output, state, ok, modules, n_errors):
    status = parse_status(output)
    assert status.state == state
    assert status.ok is ok
    assert status.failing_modules == modules
    assert len(status.errors) == n_errors


def test_parse_keeps_detail_and_recoverable_errors():
    status = parse_status(_v24("done", "degraded done", recoverable=WARNINGS))
    assert status.detail == "DataSourceNoCloud [seed=/dev/vdb][dsmode=net]"
    assert status.extended_status == "degraded done"
    assert status.recoverable_errors == WARNINGS  # merged from top level and "init", not duplicated
    assert status.finished
    assert "1 DEPRECATED" in status.describe()


def test_error_status_describe_names_module():
    status = parse_status(_v22("error", [LOCALE_ERROR]))
    assert "failing module(s): locale" in status.describe()
    assert "update-locale" in status.errors[0]


@pytest.mark.parametrize(
    "garbage, message",
    [
        ("", "no output"),
        ("Usage: cloud-init [-h] {status,...}\ncloud-init: error: unrecognized arguments", "expected JSON"),
        ('{"status": "done", ', "not valid JSON"),
        ('{"foo": 1}', "no 'status' field"),
        ('{"status": 3}', "no 'status' field"),
    ],
)
def test_parse_garbage_is_a_clear_error(garbage, message):
    with pytest.raises(GuestError, match=message):
        parse_status(garbage)


@pytest.mark.parametrize(
    "message, module",
    [
        (LOCALE_ERROR, "locale"),
        (SCRIPTS_ERROR, "scripts_user"),
        ('("cc_apt_configure", Exception("x"))', "apt_configure"),
        ("Failed to find datasource", None),
    ],
)
def test_module_from_error(message, module):
    assert module_from_error(message) == module


class LocalBackend:
    """Runs commands on this machine with sh (we are root, so sudo is not needed)."""

    def __init__(self, path_prefix):
        self.env = dict(os.environ, PATH=f"{path_prefix}:{os.environ.get('PATH', '/usr/bin:/bin')}")
        self.commands = []

    def run(self, command, *, timeout_s=120, sudo=False):
        line = render_command(command, sudo=sudo and os.geteuid() != 0)
        self.commands.append(line)
        try:
            proc = subprocess.run(["sh", "-c", line], capture_output=True, text=True, timeout=timeout_s, env=self.env)
        except subprocess.TimeoutExpired:
            raise GuestTimeout(f"command {line!r}", timeout_s) from None
        return CommandResult(line, proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def guest_bin(tmp_path):
    """A directory put first on PATH, where a test installs its `cloud-init` program."""
    return tmp_path


def _install_cloud_init(bin_dir, script):
    path = bin_dir / "cloud-init"
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    path.chmod(0o755)


def test_wait_returns_error_status_even_when_exit_code_is_zero(guest_bin):
    (guest_bin / "out.json").write_text(_v22("error", [LOCALE_ERROR]))
    _install_cloud_init(guest_bin, f'cat "{guest_bin}/out.json"\nexit 0\n')
    backend = LocalBackend(guest_bin)
    status = wait_for_cloud_init(backend, timeout_s=10)
    assert isinstance(status, CloudInitStatus)
    assert status.state == "error"
    assert status.failing_modules == ["locale"]
    assert backend.commands[0].endswith("cloud-init status --wait --format json")
    assert backend.commands[0].startswith("timeout ")


def test_wait_returns_done_despite_degraded_exit_code(guest_bin):
    (guest_bin / "out.json").write_text(_v24("done", "done"))
    _install_cloud_init(guest_bin, f'cat "{guest_bin}/out.json"\nexit 2\n')
    assert wait_for_cloud_init(LocalBackend(guest_bin), timeout_s=10).ok


def test_wait_times_out_with_current_state(guest_bin):
    (guest_bin / "running.json").write_text(_v24("running", "running", running=True))
    _install_cloud_init(
        guest_bin,
        f"""\
        case "$*" in
          *--wait*) exec sleep 60 ;;
          *) cat "{guest_bin}/running.json" ;;
        esac
        """,
    )
    start = time.monotonic()
    with pytest.raises(GuestTimeout) as info:
        wait_for_cloud_init(LocalBackend(guest_bin), timeout_s=1)
    assert time.monotonic() - start < 15  # bounded by the 1 s timeout plus grace, not hanging
    message = str(info.value)
    assert "cloud-init to finish" in message
    assert "1 s" in message
    assert "still cloud-init running" in message


def test_wait_without_cloud_init_is_a_readable_error(guest_bin):
    backend = LocalBackend(guest_bin)
    backend.env["PATH"] = str(guest_bin) + ":/usr/bin:/bin"
    if any(os.access(os.path.join(d, "cloud-init"), os.X_OK) for d in ("/usr/bin", "/bin")):
        pytest.skip("cloud-init is installed on this machine")
    with pytest.raises(GuestError, match="exit status 127"):
        wait_for_cloud_init(backend, timeout_s=5)
