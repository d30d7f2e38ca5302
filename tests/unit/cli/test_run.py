"""The one-process front door: the stack and its last deployment read from a file backend, the run lock."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from components.cli import run

DEPLOYMENT = {"manifest": {}, "resources": [{"urn": "urn:pulumi:dev::vdesk::vdesk:index:Desktop::alice",
                                             "type": "vdesk:index:Desktop"}]}


@pytest.fixture
def backend(tmp_path, monkeypatch):
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path}")
    return tmp_path / ".pulumi" / "stacks"


def _write(path, data, gz=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(data).encode()
    path.write_bytes(gzip.compress(raw) if gz else raw)


@pytest.mark.parametrize("where, gz", [("vdesk/dev.json", False), ("vdesk/dev.json.gz", True), ("dev.json", False)])
def test_a_stack_and_its_deployment_are_read_from_the_backends_file(backend, where, gz):
    _write(backend / where, {"version": 3, "checkpoint": {"stack": "dev", "latest": DEPLOYMENT}}, gz)
    assert run.checkpoint_file("dev", "vdesk") == backend / where
    assert run.last_deployment("dev", "vdesk") == DEPLOYMENT


def test_a_new_stack_has_no_file_and_no_deployment(backend):
    assert run.checkpoint_file("dev", "vdesk") is None
    assert run.last_deployment("dev", "vdesk") is None


def test_a_stack_that_was_never_deployed_has_an_empty_deployment(backend):
    _write(backend / "vdesk" / "dev.json", {"version": 3, "checkpoint": {"stack": "dev"}})
    assert run.last_deployment("dev", "vdesk") == {}


def test_an_unreadable_checkpoint_is_left_to_the_engine(backend):
    (backend / "vdesk").mkdir(parents=True)
    (backend / "vdesk" / "dev.json").write_text("{not json")
    assert run.last_deployment("dev", "vdesk") is None


def test_other_backends_are_asked_of_the_engine(monkeypatch):
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://bucket")
    assert run.checkpoint_file("dev", "vdesk") is None and run.last_deployment("dev", "vdesk") is None


def test_an_existing_stack_starts_no_process(backend, monkeypatch):
    _write(backend / "vdesk" / "dev.json", {"version": 3, "checkpoint": {"stack": "dev"}})
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"started {a}"))
    run.ensure_stack("dev", "vdesk")


def test_the_run_lock_refuses_a_second_run_and_is_not_inherited(tmp_path, monkeypatch):
    monkeypatch.setenv("VDESK_STATE", str(tmp_path))
    fd = run.take_lock("dev", "up")
    try:
        assert fd is not None and not os.get_inheritable(fd)
        assert "`up` (pid" in (tmp_path / "locks" / "dev.holder").read_text()
        assert run.take_lock("dev", "destroy") is None
        # another process (what a second `tools/vdesk up` is) is refused too
        probe = subprocess.run([sys.executable, "-c", "import fcntl,os,sys; fd=os.open(sys.argv[1], os.O_WRONLY);"
                                "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)", str(tmp_path / "locks" / "dev.lock")],
                               capture_output=True, text=True)
        assert probe.returncode != 0 and "BlockingIOError" in probe.stderr
    finally:
        os.close(fd)
    second = run.take_lock("dev", "destroy")
    assert second is not None
    os.close(second)


def test_an_unknown_operation_is_refused_before_anything_runs(capsys):
    assert run.main(["deploy", "dev"]) == 2
    assert "usage: tools/vdesk up|preview|plan|refresh|destroy|outputs|access|console" in capsys.readouterr().err


def test_steps_are_traced_only_when_asked(monkeypatch, capsys):
    run._trace("pulumi up")
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("VDESK_TRACE_STEPS", "1")
    run._trace("pulumi up")
    assert capsys.readouterr().err.split(" ", 2)[::2] == ["+", "pulumi up\n"]


@pytest.mark.parametrize("op", ["preview", "plan"])
def test_a_preview_of_a_state_still_to_move_writes_nothing_and_says_how_to_move_it(op, tmp_path, monkeypatch, capsys):
    from components.cli import migrate
    asked = []
    monkeypatch.setenv("VDESK_STATE", str(tmp_path))
    monkeypatch.setattr(run.workdir, "sync", lambda stack, state: tmp_path)
    (tmp_path / "Pulumi.yaml").write_text("name: vdesk\n")
    monkeypatch.setattr(run, "ensure_stack", lambda stack, project: None)
    monkeypatch.setattr(migrate, "migrate", lambda stack, project, write=True: asked.append(write) or ["alice"])
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"started {a}"))
    monkeypatch.setattr(os, "execvp", lambda *a: pytest.fail(f"ran {a}"))
    assert run.run(op, "dev", []) == 1
    assert asked == [False], "asked what would move, and moved nothing"
    err = capsys.readouterr().err
    assert "alice" in err and "make up STACK=dev" in err
