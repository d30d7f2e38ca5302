"""Recovery after a killed run: which Pulumi locks are stale (this machine's, of a dead process)."""
import json
import os
import socket
import subprocess
import sys

from components.cli.recover import stale_locks


def _lock(folder, name, **holder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({"username": "root", "timestamp": "2026-11-30T05:41:44Z",
                                                     **holder}))


def test_only_locks_of_dead_processes_on_this_machine_are_stale(tmp_path, monkeypatch):
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path}")
    folder = tmp_path / ".pulumi" / "locks" / "organization" / "vdesk" / "dev"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    _lock(folder, "a", pid=int(dead), hostname=socket.gethostname())
    _lock(folder, "b", pid=os.getpid(), hostname=socket.gethostname())        # alive: a run in progress
    _lock(folder, "c", pid=int(dead), hostname="another-runner")              # another machine's
    assert [h["pid"] for h in stale_locks("dev", "vdesk")] == [int(dead)]


def test_locks_of_other_backends_are_never_touched(monkeypatch):
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://team-state")
    assert stale_locks("dev", "vdesk") == []


def test_a_clean_file_checkpoint_is_read_without_starting_the_engine(tmp_path, monkeypatch):
    from components.cli import recover
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path}")
    monkeypatch.setattr(recover, "_pulumi", lambda *a, **k: (_ for _ in ()).throw(AssertionError("engine started")))
    stacks = tmp_path / ".pulumi" / "stacks" / "vdesk"
    stacks.mkdir(parents=True)
    (stacks / "dev.json").write_text(json.dumps({"checkpoint": {"latest": {"resources": []}}}))
    assert recover.recover("dev", "vdesk") == []
    (stacks / "dev.json").write_text(json.dumps({"checkpoint": {"latest": {"pending_operations": [{}]}}}))
    assert recover._clean_checkpoint("dev", "vdesk") is False
