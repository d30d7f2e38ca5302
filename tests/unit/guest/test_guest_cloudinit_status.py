"""Tests for parsing `cloud-init status --format json` across releases and waiting for it (run files or CLI)."""

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
    parse_run_files,
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


@pytest.fixture
def no_run_dir(tmp_path):
    """A run directory without the generator's marker: the wait must ask the CLI."""
    return str(tmp_path / "run-cloud-init")


def _install_cloud_init(bin_dir, script):
    path = bin_dir / "cloud-init"
    path.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    path.chmod(0o755)


def test_wait_returns_error_status_even_when_exit_code_is_zero(guest_bin, no_run_dir):
    (guest_bin / "out.json").write_text(_v22("error", [LOCALE_ERROR]))
    _install_cloud_init(guest_bin, f'cat "{guest_bin}/out.json"\nexit 0\n')
    backend = LocalBackend(guest_bin)
    status = wait_for_cloud_init(backend, timeout_s=10, run_dir=no_run_dir)
    assert isinstance(status, CloudInitStatus)
    assert status.state == "error"
    assert status.failing_modules == ["locale"]
    assert backend.commands[-1].endswith("cloud-init status --wait --format json")
    assert backend.commands[-1].startswith("timeout ")


def test_wait_returns_done_despite_degraded_exit_code(guest_bin, no_run_dir):
    (guest_bin / "out.json").write_text(_v24("done", "done"))
    _install_cloud_init(guest_bin, f'cat "{guest_bin}/out.json"\nexit 2\n')
    assert wait_for_cloud_init(LocalBackend(guest_bin), timeout_s=10, run_dir=no_run_dir).ok


def test_wait_times_out_with_current_state(guest_bin, no_run_dir):
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
        wait_for_cloud_init(LocalBackend(guest_bin), timeout_s=1, run_dir=no_run_dir)
    assert time.monotonic() - start < 15  # bounded by the 1 s timeout plus grace, not hanging
    message = str(info.value)
    assert "cloud-init to finish" in message
    assert "1 s" in message
    assert "still cloud-init running" in message


def test_wait_without_cloud_init_is_a_readable_error(guest_bin, no_run_dir):
    backend = LocalBackend(guest_bin)
    backend.env["PATH"] = str(guest_bin) + ":/usr/bin:/bin"
    if any(os.access(os.path.join(d, "cloud-init"), os.X_OK) for d in ("/usr/bin", "/bin")):
        pytest.skip("cloud-init is installed on this machine")
    with pytest.raises(GuestError, match="exit status 127"):
        wait_for_cloud_init(backend, timeout_s=5, run_dir=no_run_dir)


# --- the run files: what a booted guest's /run/cloud-init holds ------------------------------------------

def _status_json(stage=None, errors_in=None, recoverable=None):
    """status.json as cloud-init 22.4 writes it (recoverable_errors per stage from 23.4 on)."""
    v1 = {"datasource": "DataSourceNoCloud [seed=/dev/vdb][dsmode=net]", "stage": stage}
    for name in ("init-local", "init", "modules-init", "modules-config", "modules-final"):
        v1[name] = {"errors": [], "finished": 1796050828.5, "start": 1796050825.1}
        if recoverable is not None:
            v1[name]["recoverable_errors"] = {}
    if errors_in:
        v1[errors_in[0]]["errors"] = [errors_in[1]]
    if recoverable:
        v1["init"]["recoverable_errors"] = recoverable
    return json.dumps({"v1": v1}, indent=1)


def _result_json(errors=()):
    return json.dumps({"v1": {"datasource": "DataSourceNoCloud [seed=/dev/vdb][dsmode=net]",
                              "errors": list(errors)}}, indent=1)


@pytest.fixture
def run_dir(tmp_path):
    """A run directory where the generator said cloud-init is enabled this boot."""
    path = tmp_path / "run-cloud-init"
    path.mkdir()
    (path / "enabled").write_text("")
    return path


def _forbid_cli(bin_dir):
    """A `cloud-init` that fails the test if called: the files alone must do."""
    _install_cloud_init(bin_dir, 'echo "cloud-init CLI called: $*" >&2\nexit 99\n')


def test_a_finished_boot_is_read_from_the_run_files_without_the_cli(guest_bin, run_dir):
    (run_dir / "status.json").write_text(_status_json())
    (run_dir / "result.json").write_text(_result_json())
    _forbid_cli(guest_bin)
    backend = LocalBackend(guest_bin)
    status = wait_for_cloud_init(backend, timeout_s=10, run_dir=str(run_dir))
    assert status.ok and status.state == "done"
    assert status.detail == "DataSourceNoCloud [seed=/dev/vdb][dsmode=net]"
    assert len(backend.commands) == 1 and "cloud-init status" not in backend.commands[0]


def test_the_wait_polls_until_the_final_stage_writes_its_result(guest_bin, run_dir):
    # The guest's `sleep` is where the final stage "finishes": the first poll finds no result.json,
    # the fake sleep writes it, the second poll finds it. No wall-clock timing involved.
    (run_dir / "status.json").write_text(_status_json())
    (guest_bin / "result.json").write_text(_result_json())
    (guest_bin / "sleep").write_text(f'#!/bin/sh\necho polled >>"{guest_bin}/polls"\n'
                                     f'cp "{guest_bin}/result.json" "{run_dir}/result.json"\n')
    (guest_bin / "sleep").chmod(0o755)
    _forbid_cli(guest_bin)
    status = wait_for_cloud_init(LocalBackend(guest_bin), timeout_s=10, run_dir=str(run_dir))
    assert status.ok
    assert (guest_bin / "polls").read_text().splitlines() == ["polled"]


@pytest.mark.parametrize(
    "status_file, result_file, state, modules",
    [
        (_status_json(errors_in=("modules-config", LOCALE_ERROR)), _result_json([LOCALE_ERROR]), "error", ["locale"]),
        (_status_json(errors_in=("modules-final", SCRIPTS_ERROR)), _result_json(), "error", ["scripts_user"]),
        (_status_json(recoverable={"WARNING": ["deprecated key"]}), _result_json(), "degraded done", []),
    ],
    ids=["failed-module", "error-only-in-a-stage", "recoverable-warnings"],
)
def test_run_files_report_failures_like_the_cli(guest_bin, run_dir, status_file, result_file, state, modules):
    (run_dir / "status.json").write_text(status_file)
    (run_dir / "result.json").write_text(result_file)
    _forbid_cli(guest_bin)
    status = wait_for_cloud_init(LocalBackend(guest_bin), timeout_s=10, run_dir=str(run_dir))
    assert status.state == state
    assert status.failing_modules == modules
    assert not status.ok


def test_a_boot_that_never_finishes_times_out_naming_what_cloud_init_says(guest_bin, run_dir):
    (run_dir / "status.json").write_text(_status_json(stage="modules-config"))
    (guest_bin / "running.json").write_text(_v24("running", "running", running=True))
    _install_cloud_init(guest_bin, f'cat "{guest_bin}/running.json"\n')
    start = time.monotonic()
    with pytest.raises(GuestTimeout, match="still cloud-init running"):
        wait_for_cloud_init(LocalBackend(guest_bin), timeout_s=1, run_dir=str(run_dir))
    assert time.monotonic() - start < 15


def test_a_disabled_cloud_init_is_left_to_the_cli(guest_bin, run_dir):
    (run_dir / "disabled").write_text("")
    (guest_bin / "out.json").write_text(_v22("disabled", boot="disabled-by-marker-file"))
    _install_cloud_init(guest_bin, f'cat "{guest_bin}/out.json"\n')
    backend = LocalBackend(guest_bin)
    status = wait_for_cloud_init(backend, timeout_s=10, run_dir=str(run_dir))
    assert status.state == "disabled" and status.finished
    assert backend.commands[-1].endswith("cloud-init status --wait --format json")


@pytest.mark.parametrize("garbage", ["", "--- status.json\n{}\n--- result.json\n{}", "--- status.json\nnope"])
def test_run_files_that_are_not_cloud_inits_are_a_clear_error(garbage):
    with pytest.raises(GuestError, match="status.json/result.json"):
        parse_run_files(garbage)
