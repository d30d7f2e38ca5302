"""vdesk's virtiofsd wrappers, run as libvirt runs them (root, --fd=N, -o source=...), with qemu 7.2's virtiofsd.

No guest: what is under test is how virtiofsd is set up before it serves one: its user namespace
(writable shares map the guest's ids away from the host's), the nosuid, nodev (and read-only)
mount it serves, a path holding commas (libvirt writes them ',,'), and that virtiofsd's own
sandbox still comes up once a vhost-user peer connects.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from components import rootexec

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/lib/qemu/virtiofsd"),
                                 reason="libvirt runs virtiofsd as root: so does this test")]
SHARE_ID_BASE = 1 << 29


def _until(condition, what: str, timeout_s: float = 20):
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return result


@pytest.fixture
def serve(tmp_path, monkeypatch):
    """Start an installed wrapper on `source` the way libvirt does; yields (process, vhost-user socket path)."""
    monkeypatch.setenv("VDESK_LIBEXEC", str(tmp_path / "libexec"))
    started = []

    def start(name, source):
        listener = socket.socket(socket.AF_UNIX)
        path = str(tmp_path / f"{name}.sock")
        listener.bind(path)
        listener.listen(1)
        log = tmp_path / f"{name}.log"
        option = "source=" + str(source).replace(",", ",,") + ",cache=always,xattr"
        proc = subprocess.Popen([rootexec.install(name), f"--fd={listener.fileno()}", "-o", option],
                                pass_fds=[listener.fileno()], stdin=subprocess.DEVNULL, stdout=log.open("w"),
                                stderr=subprocess.STDOUT)
        listener.close()
        started.append(proc)
        return proc, path, log

    yield start
    for proc in started:
        proc.kill()
        proc.wait(timeout=10)


def _served(pid: int) -> list[str]:
    """The served mount's line in the process's mountinfo, once virtiofsd (not the wrapper) runs."""
    def ready():
        try:
            if "/usr/lib/qemu/virtiofsd" not in open(f"/proc/{pid}/cmdline").read():
                return None
            return [line.split() for line in open(f"/proc/{pid}/mountinfo") if " /tmp/vdesk-share " in line]
        except OSError:
            return None
    return _until(ready, "virtiofsd to start")[0]


def test_a_writable_share_maps_the_guests_ids_and_serves_nosuid_nodev(serve, tmp_path):
    source = tmp_path / "team, with commas,,and more"
    source.mkdir()
    proc, path, log = serve("virtiofsd-rw", source)
    mount = _served(proc.pid)
    assert mount[3] == str(source).replace(" ", "\\040")          # the whole path, commas and all
    assert {"rw", "nosuid", "nodev"} <= set(mount[5].split(","))
    for name in ("uid_map", "gid_map"):                           # guest root is no one on the host
        assert open(f"/proc/{proc.pid}/{name}").read().split() == ["0", str(SHARE_ID_BASE), "65536"]
    assert "source=/tmp/vdesk-share," in open(f"/proc/{proc.pid}/cmdline").read()
    with socket.socket(socket.AF_UNIX) as peer:                  # qemu's end: virtiofsd sandboxes itself now
        peer.connect(path)
        _until(lambda: "virtio_loop: Entry" in log.read_text(), "virtiofsd's loop")
        assert proc.poll() is None, log.read_text()


def test_a_read_only_share_serves_a_read_only_nosuid_nodev_mount(serve, tmp_path):
    source = tmp_path / "docs,ro"
    source.mkdir()
    proc, path, log = serve("virtiofsd-ro", source)
    mount = _served(proc.pid)
    assert mount[3] == str(source) and {"ro", "nosuid", "nodev"} <= set(mount[5].split(","))
    with socket.socket(socket.AF_UNIX) as peer:
        peer.connect(path)
        _until(lambda: "virtio_loop: Entry" in log.read_text(), "virtiofsd's loop")
        assert proc.poll() is None, log.read_text()


@pytest.mark.parametrize("name", ["virtiofsd-rw", "virtiofsd-ro"])
def test_a_source_that_became_a_symlink_is_refused_when_the_guest_starts(serve, tmp_path, name):
    (tmp_path / "etc-like").mkdir()
    (tmp_path / "team").symlink_to(tmp_path / "etc-like")      # libvirt was given the resolved path; swapped since
    proc, _, log = serve(name, tmp_path / "team")
    assert proc.wait(timeout=20) == 2
    assert "is not the path it resolves to" in log.read_text()
