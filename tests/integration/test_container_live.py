"""Containers on the project's own libvirtd (LXC driver), from the golden image's root tree.

A system container boots the image's systemd with user namespaces on, takes an
address from a vdesk network's DHCP and passes the same declarative checks as a
desktop; an application container runs its command. Updates are applied in
place or by replacement as the property table says, refresh sees out-of-band
changes, and delete leaves no domain, no root tree and no cgroup behind.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import libvirt
import pytest

from components.images import rootfs
from components.errors import VdeskError
from components.resources.container import ContainerExec, ContainerProvider, cgroup_name, init_pid
from components.guest import checkrun, checkspec
from components.guest.address import wait_for_address
from components.guest.netns import connect_tcp
from components.images.golden import golden_image_dir
from components.resources.network import NetworkProvider
from tests.support.providers import checked

pytestmark = pytest.mark.integration

NET = "ct-lan"
CIDR = "10.203.0.0/24"
BOOT_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def image() -> str:
    folder = golden_image_dir()
    if not (folder / "manifest.json").is_file():
        pytest.skip(f"the golden image is not built ({folder}); run `make image`")
    return str(folder)


def wait_for(condition, timeout_s: float, what: str, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g} s waiting for {what}"
        time.sleep(poll_s)


def virsh(host, *args):
    return subprocess.run(["virsh", "-c", host.lxc_uri, *args], check=True, capture_output=True, text=True,
                          timeout=60).stdout


def host_ids(pid: int) -> tuple[int, int]:
    """The real uid and gid of a process as the host sees them."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def cgroup_file(pid: int, controller: str, name: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _n, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup") / controller / path.lstrip("/") / name
    raise AssertionError(f"process {pid} has no {controller} cgroup")


def domain_names(host) -> list[str]:
    conn = libvirt.open(host.lxc_uri)
    try:
        return [d.name() for d in conn.listAllDomains(0)]
    finally:
        conn.close()


def assert_gone(host, outs) -> None:
    assert outs["name"] not in domain_names(host)
    assert not (Path(outs["containers_dir"]) / outs["name"]).exists()
    assert not (Path("/sys/fs/cgroup/systemd") / cgroup_name(outs)).exists()


def system_ready(backend: ContainerExec) -> None:
    """systemd inside has finished booting and nothing failed (waits inside, bounded)."""
    def state():   # empty until systemd's private socket is up, then the final state
        said = backend.run("systemctl is-system-running --wait", timeout_s=BOOT_TIMEOUT_S).stdout.strip()
        # "offline": asked before the restarted init made /run/systemd/system (a loaded host widens
        # that moment); it is not yet booting, so ask again.
        return "" if said == "offline" else said

    final = wait_for(state, BOOT_TIMEOUT_S, "systemd inside the container to finish booting", poll_s=0.5)
    failed = backend.run("systemctl --failed --no-legend").stdout
    assert final == "running", f"{final}; failed units: {failed}"


@pytest.fixture(scope="module")
def net(own_host):
    provider = NetworkProvider()
    created = provider.create(checked(provider, {"host_uri": own_host.uri, "name": NET, "cidr": CIDR}))
    yield created.outs
    provider.delete(created.id, created.outs)


@pytest.fixture(scope="module")
def ct_root():
    """Containers' trees and mounts live where the containers' unprivileged root users can pass
    (pytest's own temp dirs are under a 0700 directory)."""
    folder = Path(tempfile.mkdtemp(prefix="vdesk-itest-ct-", dir="/var/tmp"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.fixture(scope="module")
def containers_dir(ct_root) -> str:
    return str(ct_root / "containers")


@pytest.fixture(scope="module")
def shared_dir(ct_root):
    folder = ct_root / "shared"
    folder.mkdir()
    (folder / "motd").write_text("from the host\n")
    return folder


@pytest.fixture(scope="module")
def system_box(own_host, net, image, shared_dir, containers_dir):
    """One system container shared by the tests below, in file order (the last one removes it)."""
    cp = ContainerProvider()
    props = checked(cp, {"host_uri": own_host.lxc_uri, "name": "ct-sys", "image": image,
                         "containers_dir": containers_dir, "memory": 512 * 1024**2,
                         "cpu_shares": 512, "networks": [{"network": NET}],
                         "mounts": [{"source": str(shared_dir), "target": "/mnt/shared"}],
                         "shutdown_timeout_s": 20})
    started = time.monotonic()
    created = cp.create(props)
    box = {"id": created.id, "outs": created.outs, "props": props, "create_s": time.monotonic() - started}
    yield box
    cp.delete(box["id"], box["outs"])
    assert_gone(own_host, box["outs"])


def test_system_container_boots_gets_an_address_and_passes_checks(own_host, system_box):
    outs = system_box["outs"]
    assert (outs["state"], outs["kind"], outs["warnings"]) == ("running", "system", [])
    backend = ContainerExec(own_host.lxc_uri, "ct-sys")
    conn = libvirt.open(own_host.lxc_uri)
    mac = outs["networks"][0]["mac"]
    ip = wait_for_address(conn, "ct-sys", mac, sources=("lease",), timeout_s=BOOT_TIMEOUT_S)
    conn.close()
    system_ready(backend)
    checks = checkspec.parse_checks([
        {"service": "systemd-networkd", "enabled": True},
        {"service": "ssh"},
        {"package": "openssh-server"},
        {"file": "/etc/hostname", "contains": "ct-sys"},
        {"file": "/mnt/shared/motd", "contains": "from the host"},
        {"port": 22},
        {"user": "root"},
        {"command": "ip -4 -o addr show dev eth0", "output_matches": ip.replace(".", r"\.")},
        {"command": "id -u", "output_matches": "^0$"},
    ])
    outcomes = checkrun.run_checks(backend, checks)
    assert all(o.passed for o in outcomes), checkrun.report("ct-sys", outcomes)
    # a failing check fails, with the reason (the backend really runs commands inside)
    bad = checkrun.run_checks(backend, checkspec.parse_checks([{"file": "/etc/hostname", "contains": "nope"}]))
    assert not bad[0].passed and "not found" in bad[0].reason

    # the network works both ways: the host's namespace reaches the container's sshd,
    # the container reaches the network's gateway (dnsmasq's DNS port)
    with connect_tcp(ip, 22, netns=own_host.netns, timeout_s=10) as sock:
        assert sock.recv(64).startswith(b"SSH-2.0-OpenSSH")
    gateway = net_gateway()
    reach = backend.run(f"timeout 5 bash -c 'echo > /dev/tcp/{gateway}/53' && echo reached")
    assert reach.stdout.strip() == "reached", reach


def net_gateway() -> str:
    return CIDR.replace("0/24", "1")


def test_root_inside_is_an_unprivileged_uid_on_the_host(own_host, system_box):
    outs = system_box["outs"]
    base = outs["uid_base"]
    assert base >= 100000
    conn = libvirt.open(own_host.lxc_uri)
    pid = init_pid(conn, "ct-sys")
    conn.close()
    assert host_ids(pid) == (base, base)                    # systemd, root inside
    assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", str(base), "65536"]
    backend = ContainerExec(own_host.lxc_uri, "ct-sys")
    # a process started inside as root ...
    started = backend.run("setsid sleep 600 </dev/null >/dev/null 2>&1 & echo started")
    assert started.stdout.strip() == "started"
    pidns = os.stat(f"/proc/{pid}/ns/pid").st_ino

    def sleeper():
        for entry in os.listdir("/proc"):
            try:
                if (entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().strip() == "sleep"
                        and os.stat(f"/proc/{entry}/ns/pid").st_ino == pidns):
                    return int(entry)
            except OSError:
                continue
        return None

    sleep_pid = wait_for(sleeper, 10, "the sleep started inside the container")
    assert host_ids(sleep_pid) == (base, base)              # ... is an unprivileged uid on the host
    os.kill(sleep_pid, 15)
    # files created inside belong to the shifted uid on the host
    assert backend.run("echo made inside > /root/made-inside").rc == 0
    made = os.stat(Path(outs["rootfs"]) / "root" / "made-inside")
    assert (made.st_uid, made.st_gid) == (base, base)
    # every file of the copied tree was shifted, set-uid bits kept
    sudo = os.stat(Path(outs["rootfs"]) / "usr/bin/sudo")
    assert sudo.st_uid == base and sudo.st_mode & 0o4000
    # inside, the host's own files are nobody's
    assert backend.run("stat -c %U /mnt/shared/motd").stdout.strip() == "nobody"


def test_host_mounts_are_read_only_unless_written_otherwise(own_host, system_box, shared_dir):
    backend = ContainerExec(own_host.lxc_uri, "ct-sys")
    result = backend.run("echo changed > /mnt/shared/motd")
    assert result.rc != 0 and "Read-only file system" in result.stderr
    assert (shared_dir / "motd").read_text() == "from the host\n"


def test_application_container_runs_its_command(own_host, image, ct_root, containers_dir, system_box):
    out = ct_root / "app-out"
    out.mkdir()
    os.chmod(out, 0o1777)    # the container's root is an unprivileged uid: let it write here
    cp = ContainerProvider()
    props = checked(cp, {"host_uri": own_host.lxc_uri, "name": "ct-app", "image": image,
                         "containers_dir": containers_dir, "memory": 128 * 1024**2,
                         "command": ["/bin/sh", "-c", 'echo "$GREETING from $(id -u)" > /out/result; '
                                                      "exec sleep infinity"],
                         "env": ["GREETING=hello"],
                         "mounts": [{"source": str(out), "target": "/out", "readonly": False}],
                         "shutdown_timeout_s": 3})
    created = cp.create(props)
    try:
        outs = created.outs
        assert (outs["kind"], outs["state"]) == ("application", "running")
        result = wait_for(lambda: (out / "result").exists() and (out / "result").read_text(), 30,
                          "the application's output file")
        assert result == "hello from 0\n"
        assert os.stat(out / "result").st_uid == outs["uid_base"]
        # two containers, two id ranges that do not overlap
        other = system_box["outs"]["uid_base"]
        assert abs(outs["uid_base"] - other) >= 65536
        marker = json.loads((Path(outs["containers_dir"]) / "ct-app" / rootfs.MARKER).read_text())
        assert marker["uid_base"] == outs["uid_base"] and marker["rootfs_bytes"] > 0
        # the app ignores SIGTERM (sh -c ... sleep as pid 1): delete forces it off after the bounded wait
        started = time.monotonic()
        cp.delete(created.id, outs)
        assert time.monotonic() - started < 30
        assert_gone(own_host, outs)
    finally:
        cp.delete(created.id, created.outs)


def test_memory_cpu_and_power_state_change_in_place(own_host, system_box):
    cp = ContainerProvider()
    box = system_box
    conn = libvirt.open(own_host.lxc_uri)
    uuid = conn.lookupByName("ct-sys").UUIDString()
    pid = init_pid(conn, "ct-sys")
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text()) == 512 * 2**20

    # lower memory and more CPU: live, same container, same init (no restart)
    smaller = checked(cp, dict(box["props"], memory=256 * 1024**2, vcpus=2, cpu_shares=300))
    diff = cp.diff(box["id"], box["outs"], smaller)
    assert diff.changes and diff.replaces == []
    outs = cp.update(box["id"], box["outs"], smaller).outs
    assert init_pid(conn, "ct-sys") == pid and conn.lookupByName("ct-sys").UUIDString() == uuid
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes").read_text()) == 256 * 2**20
    assert int(cgroup_file(pid, "cpu", "cpu.cfs_quota_us").read_text()) == 200000
    assert int(cgroup_file(pid, "cpu", "cpu.shares").read_text()) == 300
    assert outs["pending_restart"] is False

    # more memory than it was started with: applied by restarting it (restart_policy on-change)
    bigger = checked(cp, dict(smaller, memory=768 * 1024**2))
    outs = cp.update(box["id"], outs, bigger).outs
    new_pid = init_pid(conn, "ct-sys")
    assert new_pid != pid and conn.lookupByName("ct-sys").UUIDString() == uuid
    assert int(cgroup_file(new_pid, "memory", "memory.limit_in_bytes").read_text()) == 768 * 2**20
    assert (outs["state"], outs["pending_restart"]) == ("running", False)

    # power state
    stopped = cp.update(box["id"], outs, dict(bigger, running=False)).outs
    assert stopped["state"] == "stopped" and not conn.lookupByName("ct-sys").isActive()
    started = cp.update(box["id"], stopped, bigger).outs
    assert started["state"] == "running" and conn.lookupByName("ct-sys").isActive()
    assert cp.read(box["id"], started).outs["memory"] == 768 * 1024**2
    assert cp.diff(box["id"], cp.read(box["id"], started).outs, bigger).changes is False
    conn.close()
    box.update(outs=started, props=bigger)
    system_ready(ContainerExec(own_host.lxc_uri, "ct-sys"))   # it boots again after the restarts


def test_rootfs_and_userns_changes_replace(own_host, image, containers_dir):
    cp = ContainerProvider()
    props = checked(cp, {"host_uri": own_host.lxc_uri, "name": "ct-repl", "image": image,
                         "containers_dir": containers_dir, "memory": 256 * 1024**2,
                         "shutdown_timeout_s": 20})
    first = cp.create(props)
    privileged = checked(cp, dict(props, userns=False))
    for change in (privileged, dict(props, image=image + "/disk.qcow2")):
        diff = cp.diff(first.id, first.outs, change)
        assert diff.replaces and diff.delete_before_replace
    assert cp.diff(first.id, first.outs, privileged).replaces == ["userns"]
    # the replacement, as the engine runs it: delete the old one, create the new one
    cp.delete(first.id, first.outs)
    second = cp.create(privileged)
    try:
        outs = second.outs
        assert second.id != first.id and outs["uid_base"] is None
        assert outs["warnings"] and "root on the host" in outs["warnings"][0]
        assert os.stat(outs["rootfs"]).st_uid == 0
        conn = libvirt.open(own_host.lxc_uri)
        assert host_ids(init_pid(conn, "ct-repl")) == (0, 0)
        assert b"<idmap" not in conn.lookupByName("ct-repl").XMLDesc(0).encode()
        conn.close()
        assert cp.read(second.id, outs).outs["userns"] is False
    finally:
        cp.delete(second.id, second.outs)
    assert_gone(own_host, second.outs)


def test_a_tree_the_containers_root_cannot_reach_is_refused_up_front(own_host, image, tmp_path):
    cp = ContainerProvider()
    hidden = tmp_path / "containers"          # pytest's temp dirs sit under a 0700 directory
    props = checked(cp, {"host_uri": own_host.lxc_uri, "name": "ct-hidden", "image": image,
                         "containers_dir": str(hidden), "memory": 128 * 1024**2})
    with pytest.raises(VdeskError, match=r"containers_dir: .* cannot be entered by the container's root"):
        cp.create(props)
    assert "ct-hidden" not in domain_names(own_host) and not (hidden / "ct-hidden").exists()


def test_refresh_sees_out_of_band_destroy_and_undefine(own_host, system_box):
    cp = ContainerProvider()
    box = system_box
    virsh(own_host, "destroy", "ct-sys")
    drifted = cp.read(box["id"], box["outs"]).outs
    assert (drifted["state"], drifted["running"]) == ("stopped", False)
    diff = cp.diff(box["id"], drifted, box["props"])
    assert diff.changes and diff.replaces == []
    assert cp.update(box["id"], drifted, box["props"]).outs["state"] == "running"

    # memory changed behind vdesk's back shows up as drift
    virsh(own_host, "setmaxmem", "ct-sys", "1G", "--config")
    assert cp.read(box["id"], box["outs"]).outs["memory"] == 1024 * 1024**2

    virsh(own_host, "destroy", "ct-sys")
    virsh(own_host, "undefine", "ct-sys")
    assert cp.read(box["id"], box["outs"]).id == ""      # gone: the engine will create it again
    cp.delete(box["id"], box["outs"])                      # quiet, and still removes the root tree
    assert_gone(own_host, box["outs"])
