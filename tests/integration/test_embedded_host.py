"""The private libvirt host: reachable from the root namespace, yet its networks and daemons stay in its own."""
from __future__ import annotations

import glob
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import libvirt
import pytest

from components.host import embedded
from components.host.embedded import EmbeddedHost, EmbeddedHostError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROOT_RUN_LIBVIRT = Path("/run/libvirt")

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def _snapshot(path: Path):
    """Everything observable about a directory tree (None when absent)."""
    if not path.exists():
        return None
    return sorted((str(p), p.lstat().st_mode, p.lstat().st_mtime_ns) for p in [path, *path.rglob("*")])


def _start_time(pid: int) -> str | None:
    """Process identity (pid + start time) that survives pid reuse; None once it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _netns_procs(host: EmbeddedHost) -> dict[int, str]:
    """pid -> comm of every live process in the host's network namespace."""
    target = os.stat(host.netns).st_ino
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino == target and _start_time(int(entry)):
                found[int(entry)] = _comm(int(entry))
        except OSError:
            continue
    return found


def _ip_link(dev: str, netns: str | None) -> subprocess.CompletedProcess:
    cmd = ["ip", "-br", "link", "show", "dev", dev]
    if netns:
        cmd = ["nsenter", f"--net={netns}", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10)


def _mounts_mentioning(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        return [line.strip() for line in fh if str(path) in line]


def _network_xml(name: str, bridge: str, octet: int) -> str:
    return f"""<network>
  <name>{name}</name>
  <forward mode='nat'/>
  <bridge name='{bridge}'/>
  <ip address='10.250.{octet}.1' netmask='255.255.255.0'>
    <dhcp><range start='10.250.{octet}.10' end='10.250.{octet}.20'/></dhcp>
  </ip>
</network>"""


def _lxc_xml(name: str) -> str:
    return f"""<domain type='lxc'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <os><type>exe</type><init>/bin/sleep</init><initarg>600</initarg></os>
  <devices><console type='pty'/></devices>
</domain>"""


def _qemu_xml(name: str) -> str:
    # No disk and no kernel: the firmware finds nothing to boot and the guest idles.
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices><memballoon model='none'/></devices>
</domain>"""


@pytest.fixture(scope="module")
def root_run_before():
    return _snapshot(ROOT_RUN_LIBVIRT)


@pytest.fixture(scope="module")
def host(root_run_before) -> EmbeddedHost:
    if os.geteuid() != 0:
        pytest.skip("the embedded libvirt host needs root")
    root = Path(tempfile.mkdtemp(prefix="vdt-", dir="/tmp"))  # short: unix socket paths are limited
    h = embedded.embedded_host(f"t{uuid.uuid4().hex[:8]}", root)
    try:
        started = time.monotonic()
        embedded.ensure_running(h, timeout_s=120)
        print(f"embedded host {h.name} up in {time.monotonic() - started:.1f}s")
        yield h
    finally:
        embedded.stop(h, purge=True)
        shutil.rmtree(root, ignore_errors=True)
        assert not os.path.exists(h.netns)
        assert not root.exists()


def test_paths_are_pure_and_private():
    h = embedded.embedded_host("alpha", Path("/nonexistent/state"))
    assert h.state_dir == Path("/nonexistent/state/hosts/alpha")
    assert h.netns.startswith("/run/netns/vdesk-alpha-")
    # the same host name under another state root gets its own namespace
    assert embedded.embedded_host("alpha", Path("/elsewhere")).netns != h.netns
    assert h.socket == Path("/nonexistent/state/hosts/alpha/run/libvirt/libvirt-sock")
    assert h.uri == "qemu:///system?socket=/nonexistent/state/hosts/alpha/run/libvirt/libvirt-sock"
    assert h.lxc_uri.startswith("lxc:///system?socket=")
    assert not Path("/nonexistent").exists()


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "-x", "x" * 41, "with space"])
def test_bad_host_name_is_a_user_error(bad):
    with pytest.raises(EmbeddedHostError, match="host name"):
        embedded.embedded_host(bad, Path("/tmp"))


def test_state_dir_defaults_follow_xdg(monkeypatch):
    monkeypatch.delenv("VDESK_STATE", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", "/x/state")
    assert embedded.embedded_host().state_dir == Path("/x/state/vdesk/hosts/default")
    monkeypatch.setenv("VDESK_STATE", "/y")
    assert embedded.embedded_host("b").state_dir == Path("/y/hosts/b")


def test_uri_answers_from_the_root_namespace(host):
    own = os.stat("/proc/self/ns/net").st_ino
    named = {os.stat(p).st_ino for p in glob.glob("/run/netns/*")}
    assert own not in named, "the client must run outside every named netns (the root one)"
    assert embedded.is_running(host)
    assert host.socket.is_socket()
    out = subprocess.run(["virsh", "-c", host.uri, "uri"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == host.uri
    conn = libvirt.open(host.uri)
    try:
        assert conn.getType() == "QEMU"
        assert conn.listAllNetworks() == [], "the system's default network must not be seeded"
    finally:
        conn.close()
    # The daemon runs in the host's netns, and its bind mounts are invisible here.
    pid = embedded.daemon_pid(host)
    assert pid is not None
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(host.netns).st_ino
    assert _mounts_mentioning(host.state_dir) == []
    assert (host.state_dir / "run" / "libvirtd.pid").is_file()
    assert (host.state_dir / "run" / "virtlogd.pid").is_file()


def test_nat_network_bridge_lives_only_in_the_netns(host):
    octet = random.randint(100, 199)
    bridge = f"vdt{uuid.uuid4().hex[:8]}"
    conn = libvirt.open(host.uri)
    net = conn.networkCreateXML(_network_xml(f"nat-{bridge}", bridge, octet))
    try:
        assert net.isActive()
        inside = _ip_link(bridge, host.netns)
        assert inside.returncode == 0 and bridge in inside.stdout, inside.stderr
        outside = _ip_link(bridge, None)
        assert outside.returncode != 0, f"bridge leaked into the root namespace: {outside.stdout}"
        routes = subprocess.run(["ip", "route"], capture_output=True, text=True, timeout=10).stdout
        assert f"10.250.{octet}." not in routes
        assert "dnsmasq" in _netns_procs(host).values()
    finally:
        net.destroy()
        conn.close()
    assert _ip_link(bridge, host.netns).returncode != 0


def test_lxc_driver_runs_a_container(host):
    conn = libvirt.open(host.lxc_uri)
    try:
        assert conn.getType() == "LXC"
        assert "<os_type>exe</os_type>" in conn.getCapabilities()
        dom = conn.createXML(_lxc_xml(f"lx-{uuid.uuid4().hex[:6]}"), 0)
        try:
            assert dom.isActive()
            assert "libvirt_lxc" in _netns_procs(host).values()
        finally:
            dom.destroy()
    finally:
        conn.close()
    log = (host.state_dir / "log" / "libvirtd.log").read_text(errors="replace")
    assert "no cgroup backend" not in log
    assert "/sys/fs/cgroup/unified" not in log


def test_qemu_guest_runs_inside_the_netns(host):
    conn = libvirt.open(host.uri)
    try:
        dom = conn.createXML(_qemu_xml(f"q-{uuid.uuid4().hex[:6]}"), 0)
        try:
            assert dom.isActive()
            assert any(c.startswith("qemu-system") for c in _netns_procs(host).values())
        finally:
            dom.destroy()
    finally:
        conn.close()


def test_ensure_running_is_idempotent(host):
    pid = embedded.daemon_pid(host)
    started = time.monotonic()
    assert embedded.ensure_running(host) == host
    assert time.monotonic() - started < 10
    assert embedded.daemon_pid(host) == pid


def test_cli_status_and_start(host):
    env = {**os.environ, "VDESK_PYTHON": sys.executable}
    for action in ("status", "start"):
        out = subprocess.run(
            [str(REPO / "tools" / "vdesk-host"), action, "--name", host.name,
             "--state-root", str(host.state_dir.parent.parent)],
            capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {
            "name": host.name, "uri": host.uri, "lxc_uri": host.lxc_uri, "netns": host.netns,
            "state_dir": str(host.state_dir), "running": True}


# Keep last: it stops the module's host.
def test_stop_leaves_nothing_behind(host, root_run_before):
    # Give stop() something to clean up: a NAT network, a container and a VM.
    qemu = libvirt.open(host.uri)
    lxc = libvirt.open(host.lxc_uri)
    try:
        qemu.networkCreateXML(_network_xml("busy", f"vdb{uuid.uuid4().hex[:8]}", random.randint(200, 250)))
        lxc.createXML(_lxc_xml("busy-lxc"), 0)
        qemu.createXML(_qemu_xml("busy-vm"), 0)
    finally:
        qemu.close()
        lxc.close()
    procs = _netns_procs(host)
    names = set(procs.values())
    assert {"libvirtd", "virtlogd", "dnsmasq", "libvirt_lxc"} <= names, names
    assert any(n.startswith("qemu-system") for n in names), names
    identities = {pid: _start_time(pid) for pid in procs}

    started = time.monotonic()
    embedded.stop(host)
    print(f"stopped in {time.monotonic() - started:.1f}s")

    assert not embedded.is_running(host)
    assert not os.path.exists(host.netns)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    assert host.netns_name not in listed
    survivors = {pid: procs[pid] for pid, ident in identities.items() if _start_time(pid) == ident}
    assert survivors == {}
    assert _snapshot(ROOT_RUN_LIBVIRT) == root_run_before
    assert _mounts_mentioning(host.state_dir) == []

    embedded.stop(host)  # safe when not running
    assert host.state_dir.is_dir()
    embedded.stop(host, purge=True)
    assert not host.state_dir.exists()


def test_start_failure_is_readable_and_cleanable():
    if os.geteuid() != 0:
        pytest.skip("the embedded libvirt host needs root")
    root = Path(tempfile.mkdtemp(prefix="vdf-", dir="/tmp"))
    h = embedded.embedded_host(f"f{uuid.uuid4().hex[:8]}", root)
    try:
        # A pre-seeded but broken configuration: libvirtd refuses to start.
        etc = h.state_dir / "etc"
        etc.mkdir(parents=True)
        (etc / ".seeded").write_text("test\n")
        (etc / "libvirtd.conf").write_text("this is = = not a libvirt config\n")
        with pytest.raises(EmbeddedHostError) as err:
            embedded.ensure_running(h, timeout_s=30)
        message = str(err.value)
        assert f"libvirtd for host {h.name!r} failed to start" in message
        assert "launch.log" in message and "libvirtd.conf" in message, message
        assert not embedded.is_running(h)
    finally:
        embedded.stop(h, purge=True)
        shutil.rmtree(root, ignore_errors=True)
    assert not os.path.exists(h.netns)
