"""The watcher that fails an unmarked test for starting a guest sees guest processes, and only those asked for."""
from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.guestwatch import GuestWatch, guest_processes


@pytest.fixture
def fake_guest():
    """A process that looks like QEMU (its name), with a chosen word on its command line.

    It lives outside pytest's temporary directory: the real watcher of this session must not take it for a guest."""
    where = Path(tempfile.mkdtemp(prefix="vdesk-guestwatch-"))
    program = where / "qemu-system-x86_64"
    shutil.copy("/bin/sleep", program)
    word = f"/state-{secrets.token_hex(4)}/"
    procs = []

    def start(arg_word=word):
        # argv[0] carries the word, as a guest's disk path would; `sleep 600` is what runs.
        proc = subprocess.Popen([f"qemu-system-x86_64 -name guest=fake -drive file={arg_word}disk.qcow2", "600"],
                                executable=program)
        procs.append(proc)
        return proc

    yield word, start
    for proc in procs:
        proc.kill()
        proc.wait()
    shutil.rmtree(where)


def _until(condition, deadline_s=10.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_guest_process_naming_the_directory_is_found(fake_guest):
    word, start = fake_guest
    proc = start()
    assert _until(lambda: any(p.startswith(f"{proc.pid} qemu-system") for p in guest_processes(word)))
    assert guest_processes(f"/state-{secrets.token_hex(4)}/") == []


def test_libvirts_capability_probe_is_no_guest(fake_guest):
    word, _ = fake_guest
    probe = Path(tempfile.mkdtemp(prefix="vdesk-guestwatch-")) / "qemu-system-i386"
    shutil.copy("/bin/sleep", probe)
    proc = subprocess.Popen([f"qemu-system-i386 -S -machine none -qmp unix:{word}capabilities.monitor.sock", "600"],
                            executable=probe)
    try:
        assert _until(lambda: Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(b"qemu-system-i386"))
        assert guest_processes(word) == []
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(probe.parent)


def test_the_watch_records_guests_only_while_a_test_is_watched(fake_guest):
    word, start = fake_guest
    watch = GuestWatch(word, poll_s=0.05)
    proc = start()
    watch.watch("tests/x.py::test_unmarked")
    assert _until(lambda: "tests/x.py::test_unmarked" in watch.seen)
    watch.watch(None)
    assert watch.take("tests/x.py::test_unmarked") == [f"{proc.pid} qemu-system-x86"]
    assert watch.take("tests/x.py::test_unmarked") == []
    watch.watch("tests/x.py::test_other")
    proc.kill()
    proc.wait()
    assert _until(lambda: not guest_processes(word))
    watch.watch(None)
    assert watch.take("tests/x.py::test_other") == []
