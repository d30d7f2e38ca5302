"""A project-private libvirtd, so `make up` needs no system libvirtd and never disturbs one.

The daemon runs in its own network namespace (`vdesk-<name>`) and a private
mount namespace in which per-host directories under
`<state>/hosts/<name>/` are bind-mounted over /etc/libvirt, /var/lib/libvirt,
/var/cache/libvirt, /var/log/libvirt and /run.  Binding the whole of /run
(not just /run/libvirt) means the daemon's pid files and sockets land in the
host dir and nothing is ever created under the root namespace's /run; the
client socket is `<state>/hosts/<name>/run/libvirt/libvirt-sock`, reachable
from the root namespace, while bridges, dnsmasq and guest addresses stay
inside the network namespace.

Over 500 lines on purpose: the namespaces, the bind-mount layout, the daemon's start, readiness and stop all
follow one per-host directory layout, and `python -m components.host.embedded` drives them in that order.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import libvirt
import psutil

from .. import xmlmodel
from ..errors import VdeskError
from .. import paths
from ..processes import alive, executable
from ..waiting import WaitTimeout, wait_for

log = logging.getLogger(__name__)

SYSTEM_CONFIG_DIR = Path("/etc/libvirt")
# Where each host sub-directory is bind-mounted inside the daemon's mount namespace.
_BINDS = (
    ("etc", "/etc/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("cache", "/var/cache/libvirt"),
    ("log", "/var/log/libvirt"),
    # swtpm (a desktop's TPM): libvirt keeps its state under /var/lib/libvirt/swtpm/<uuid> (the host's lib/),
    # its log under /var/log/swtpm/libvirt/qemu, and swtpm_setup's local CA (the TPM's EK certificates) in
    # /var/lib/swtpm-localca: all of them the host's, none of them the system's.
    ("swtpm-log", "/var/log/swtpm"),
    ("swtpm-localca", "/var/lib/swtpm-localca"),
    ("run", "/run"),
)
# qemu and swtpm run as root: images live under the user's home (libvirt-qemu and tss cannot traverse it)
# and /dev/kvm may be root-only.
_QEMU_CONF = {"user": '"root"', "group": '"root"', "security_driver": '"none"',
              "swtpm_user": '"root"', "swtpm_group": '"root"'}
_DAEMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
_SOCKET_MAX = 107  # sun_path is 108 bytes including the NUL
_MARKER = "vdesk-host.json"
_POLL_S = 0.1


class EmbeddedHostError(VdeskError):
    """The project's own libvirt host could not be started, reached or stopped."""


@dataclass(frozen=True)
class EmbeddedHost:
    name: str
    state_dir: Path
    netns: str
    socket: Path

    @property
    def uri(self) -> str:
        return f"qemu:///system?socket={self.socket}"

    @property
    def lxc_uri(self) -> str:
        return f"lxc:///system?socket={self.socket}"

    @property
    def netns_name(self) -> str:
        return os.path.basename(self.netns)

    def describe(self, running: bool) -> dict:
        return {
            "name": self.name, "uri": self.uri, "lxc_uri": self.lxc_uri, "netns": self.netns,
            "state_dir": str(self.state_dir), "running": running,
        }


def embedded_host(name: str = "default", state_root: Path | None = None) -> EmbeddedHost:
    """Compute the paths of host `name`; touches nothing."""
    if not _NAME_RE.match(name):
        raise EmbeddedHostError(
            f"host name {name!r} is invalid: use 1-40 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    root = Path(state_root) if state_root is not None else paths.state_dir()
    state_dir = Path(os.path.abspath(root)) / "hosts" / name
    # The namespace name carries a digest of the state dir: the same host name under
    # two state roots (a user's dev host and a test run's) must never share a netns.
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:8]
    return EmbeddedHost(
        name=name, state_dir=state_dir, netns=f"/run/netns/vdesk-{name}-{digest}",
        socket=state_dir / "run" / "libvirt" / "libvirt-sock")


# --- small helpers -----------------------------------------------------------

_quiet = False


def _open(uri: str) -> libvirt.virConnect:
    global _quiet
    if not _quiet:
        # libvirt prints every error to stderr by default; callers report them instead.
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        _quiet = True
    return libvirt.open(uri)


def _pid_file(host: EmbeddedHost, daemon: str) -> Path:
    return host.state_dir / "run" / f"{daemon}.pid"


def _log_file(host: EmbeddedHost, daemon: str) -> Path:
    return host.state_dir / "log" / f"{daemon}.log"


def _launch_log(host: EmbeddedHost) -> Path:
    return host.state_dir / "log" / "launch.log"


def _ns_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _netns_pids(host: EmbeddedHost) -> list[int]:
    """Live processes whose network namespace is this host's."""
    target = _ns_id(host.netns)
    if target is None:
        return []
    pids = []
    for pid in psutil.pids():
        if pid != os.getpid() and _ns_id(f"/proc/{pid}/ns/net") == target and alive(pid):
            pids.append(pid)
    return pids


def _daemon_pid(host: EmbeddedHost, daemon: str) -> int | None:
    """Pid of this host's `daemon` (libvirtd/virtlogd) from its pid file, if it is really ours."""
    try:
        pid = int(_pid_file(host, daemon).read_text().strip())
    except (OSError, ValueError):
        return None
    if not alive(pid):
        return None
    if os.path.basename(executable(pid) or "") != daemon:
        return None
    proc_net = _ns_id(f"/proc/{pid}/ns/net")
    wanted = _ns_id(host.netns)
    if wanted is not None:
        return pid if proc_net == wanted else None
    # Netns already gone: never mistake a daemon of the caller's (root) namespace for ours.
    return pid if proc_net != _ns_id("/proc/self/ns/net") else None


def daemon_pid(host: EmbeddedHost) -> int | None:
    """Pid of the host's libvirtd, or None when it is not running."""
    return _daemon_pid(host, "libvirtd")


def _wait_dead(pids: list[int], deadline: float) -> list[int]:
    try:
        wait_for(lambda: not any(alive(p) for p in pids), deadline - time.monotonic(), interval_s=_POLL_S)
    except WaitTimeout:
        pass
    return [p for p in pids if alive(p)]


def _terminate(pids: list[int], deadline: float, what: str) -> None:
    """SIGTERM, then SIGKILL what is still alive at `deadline`."""
    if not pids:
        return
    log.debug("terminating %s: %s", what, pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    left = _wait_dead(pids, deadline)
    if left:
        log.warning("%s did not exit on SIGTERM, killing %s", what, left)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        left = _wait_dead(left, time.monotonic() + 5)
        if left:
            raise EmbeddedHostError(f"could not stop {what} (pids {left})")


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    # The nodedev driver sees the root namespace's /sys and complains about every NIC.
    text = [line for line in text if "ethtool ioctl error" not in line]
    return "\n".join(text[-lines:])


def _diagnostics(host: EmbeddedHost) -> str:
    parts = []
    for path in (_launch_log(host), _log_file(host, "libvirtd"), _log_file(host, "virtlogd")):
        tail = _tail(path)
        if tail:
            parts.append(f"--- {path} (tail) ---\n{tail}")
    return "\n".join(parts) if parts else "(no daemon log was written)"


@contextlib.contextmanager
def _locked(host: EmbeddedHost) -> Iterator[None]:
    """Serialise start/stop of one host across processes."""
    host.state_dir.mkdir(parents=True, exist_ok=True)
    with open(host.state_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise EmbeddedHostError(
            "the embedded libvirt host needs root (network and mount namespaces, bind mounts); "
            "run `make up` / tools/vdesk-host as root")


def _tool(name: str, package: str) -> str:
    path = shutil.which(name, path=_DAEMON_PATH)
    if path is None:
        raise EmbeddedHostError(f"{name} not found: install the Debian package {package}")
    return path


# --- configuration -------------------------------------------------------------

def _set_conf(path: Path, settings: dict[str, str]) -> None:
    """Set libvirt-style `key = value` lines: libvirt reads the first occurrence, so
    comment out existing ones and append ours."""
    lines = path.read_text().splitlines() if path.exists() else []
    pattern = re.compile(r"^\s*(" + "|".join(map(re.escape, settings)) + r")\s*=")
    out = [f"#{line}" if pattern.match(line) else line for line in lines]
    out.append("")
    out.append("# --- set by vdesk (components/embedded.py) ---")
    out.extend(f"{key} = {value}" for key, value in settings.items())
    path.write_text("\n".join(out) + "\n")


def _seed_config(host: EmbeddedHost) -> None:
    """Create the host's private /etc/libvirt once, from the system's configuration files.

    Only the *.conf files and the stock nwfilters are copied: no domains, storage,
    secrets or hooks of a system libvirtd, and no (autostarted) `default` network.
    """
    etc = host.state_dir / "etc"
    if (etc / ".seeded").exists():
        return
    if not SYSTEM_CONFIG_DIR.is_dir():
        raise EmbeddedHostError(
            f"{SYSTEM_CONFIG_DIR} is missing: install libvirt-daemon-system (and libvirt-daemon-driver-lxc)")
    shutil.rmtree(etc, ignore_errors=True)
    etc.mkdir(parents=True)
    for src in SYSTEM_CONFIG_DIR.iterdir():
        if src.is_file() and src.suffix == ".conf":
            shutil.copy2(src, etc / src.name)
    if (SYSTEM_CONFIG_DIR / "nwfilter").is_dir():
        shutil.copytree(SYSTEM_CONFIG_DIR / "nwfilter", etc / "nwfilter")
    for sub in ("qemu/networks/autostart", "lxc", "storage", "secrets", "hooks"):
        (etc / sub).mkdir(parents=True, exist_ok=True)
    # Images live under the user's home (libvirt-qemu cannot traverse it) and
    # /dev/kvm may be root-only: qemu runs as root, unconfined.
    _set_conf(etc / "qemu.conf", _QEMU_CONF)
    _set_conf(etc / "libvirtd.conf", {"log_outputs": '"3:file:/var/log/libvirt/libvirtd.log"'})
    _set_conf(etc / "virtlogd.conf", {"log_outputs": '"3:file:/var/log/libvirt/virtlogd.log"'})
    (etc / ".seeded").write_text("seeded from /etc/libvirt by vdesk\n")


def _prepare_dirs(host: EmbeddedHost) -> None:
    for sub, _target in _BINDS:
        (host.state_dir / sub).mkdir(parents=True, exist_ok=True)
    marker = host.state_dir / _MARKER
    if not marker.exists():
        marker.write_text(json.dumps({"name": host.name, "netns": host.netns}) + "\n")
    _seed_config(host)
    # A host seeded before vdesk ran swtpm as root gets those settings now.
    qemu_conf = host.state_dir / "etc" / "qemu.conf"
    if qemu_conf.exists() and "\nswtpm_user = " not in qemu_conf.read_text():
        _set_conf(qemu_conf, _QEMU_CONF)


def _ensure_netns(host: EmbeddedHost) -> None:
    ip = _tool("ip", "iproute2")
    if not os.path.exists(host.netns):
        log.info("creating network namespace %s", host.netns_name)
        _run([ip, "netns", "add", host.netns_name])
    _run([ip, "-n", host.netns_name, "link", "set", "lo", "up"])


def _run(cmd: list[str], timeout: float = 30) -> None:
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise EmbeddedHostError(
            f"`{shlex.join(cmd)}` failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")


_REAPER_PID_INSIDE = "/run/vdesk-reaper.pid"   # the host's run/ dir is bound over /run


def _reaper_alive(host: EmbeddedHost) -> bool:
    try:
        return alive(int((host.state_dir / "run" / "vdesk-reaper.pid").read_text().strip()))
    except (OSError, ValueError):
        return False


def _launch_script(host: EmbeddedHost, start_virtlogd: bool) -> str:
    """Shell run inside the new (private) mount namespace and the host's netns."""
    q = shlex.quote
    lines = [
        "set -eu",
        # Copies of other namespaces' /run/netns mounts would pin those namespaces.
        "for m in $(awk '$5 ~ \"^/run/netns(/|$)\" {print $5}' /proc/self/mountinfo | sort -r); do",
        "  umount -l \"$m\" 2>/dev/null || true",
        "done",
        # A hybrid v1 + unified cgroup layout makes libvirt (LXC) try to create
        # directories in the read-only unified hierarchy.
        "if mountpoint -q /sys/fs/cgroup/unified && mountpoint -q /sys/fs/cgroup/memory; then",
        "  umount /sys/fs/cgroup/unified",
        "fi",
    ]
    for sub, target in _BINDS:
        lines.append(f"mkdir -p {q(target)}")
        lines.append(f"mount --bind {q(str(host.state_dir / sub))} {q(target)}")
    if start_virtlogd:
        lines.append("virtlogd -d")
    # libvirtd runs in the foreground below a subreaper (components/reaper.py), which
    # itself detaches; ensure_running waits for the socket to answer.
    reaper = str(Path(__file__).with_name("reaper.py"))
    # Its output goes to launch.log (the host's log/ dir is bound over /var/log/libvirt).
    lines.append(f"setsid {q(sys.executable)} {q(reaper)} libvirtd </dev/null >>/var/log/libvirt/launch.log 2>&1 &")
    lines.append(f"echo $! > {q(_REAPER_PID_INSIDE)}")
    return "\n".join(lines) + "\n"


def _launch(host: EmbeddedHost, deadline: float) -> None:
    start_virtlogd = _daemon_pid(host, "virtlogd") is None
    cmd = [
        _tool("unshare", "util-linux"), "-m", "--propagation", "private",
        _tool("nsenter", "util-linux"), f"--net={host.netns}",
        "/bin/sh", "-c", _launch_script(host, start_virtlogd),
    ]
    env = {"PATH": _DAEMON_PATH, "LANG": "C.UTF-8", "HOME": "/root"}
    log.info("starting libvirtd for host %s (netns %s)", host.name, host.netns_name)
    with open(_launch_log(host), "a") as out:
        out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting (virtlogd: {start_virtlogd})\n")
        out.flush()
        try:
            # The daemons detach themselves (-d); the script returns once libvirtd has initialised.
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  env=env, start_new_session=True,
                                  timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise EmbeddedHostError(
                f"libvirtd for host {host.name!r} did not finish starting in time\n{_diagnostics(host)}") from None
    if proc.returncode != 0:
        raise EmbeddedHostError(
            f"libvirtd for host {host.name!r} failed to start (exit {proc.returncode})\n{_diagnostics(host)}")


# --- public API -------------------------------------------------------------

def is_running(host: EmbeddedHost) -> bool:
    """True when a libvirt daemon answers on the host's socket."""
    if not host.socket.exists():
        return False
    try:
        conn = _open(host.uri)
    except libvirt.libvirtError:
        return False
    try:
        conn.getLibVersion()
        return True
    except libvirt.libvirtError:
        return False
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


def _drivers_ready(host: EmbeddedHost) -> str | None:
    """None when both the qemu and the lxc driver answer; else what is wrong."""
    for uri, os_type in ((host.uri, "hvm"), (host.lxc_uri, "exe")):
        try:
            conn = _open(uri)
        except libvirt.libvirtError as exc:
            return f"{uri}: {exc.get_error_message()}"
        try:
            caps = xmlmodel.HostCapabilities.of(conn)
        except libvirt.libvirtError as exc:
            return f"{uri}: {exc.get_error_message()}"
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
        if not caps.offers(os_type):
            return f"{uri}: capabilities offer no {os_type!r} guests"
    return None


def ensure_running(host: EmbeddedHost, timeout_s: float = 60) -> EmbeddedHost:
    """Start the host's libvirtd unless it already answers; wait until qemu and lxc are usable."""
    _require_root()
    if len(str(host.socket)) > _SOCKET_MAX:
        raise EmbeddedHostError(
            f"socket path {host.socket} is {len(str(host.socket))} bytes, longer than a unix socket "
            f"allows ({_SOCKET_MAX}); use a shorter state dir (VDESK_STATE or --state-root)")
    deadline = time.monotonic() + timeout_s
    with _locked(host):
        if not is_running(host):
            _tool("libvirtd", "libvirt-daemon-system")
            _tool("virtlogd", "libvirt-daemon-system")
            _prepare_dirs(host)
            stale = _daemon_pid(host, "libvirtd")
            if stale is not None:
                log.warning("libvirtd %d of host %s does not answer; restarting it", stale, host.name)
                _terminate([stale], min(deadline, time.monotonic() + 10), "unresponsive libvirtd")
            _ensure_netns(host)
            _launch(host, deadline)
        problem = "libvirtd does not answer"

        def ready() -> EmbeddedHost | None:
            nonlocal problem
            if is_running(host):
                problem = _drivers_ready(host)
                if problem is None:
                    return host
            if daemon_pid(host) is None and not is_running(host) and not _reaper_alive(host):
                raise EmbeddedHostError(
                    f"libvirtd for host {host.name!r} failed to start: it exited during startup\n"
                    f"{_diagnostics(host)}")
            return None

        return wait_for(ready, deadline - time.monotonic(), interval_s=_POLL_S, timeout_error=lambda: EmbeddedHostError(
            f"libvirt host {host.name!r} not ready after {timeout_s:g}s ({problem})\n{_diagnostics(host)}"))


def _destroy_guests(host: EmbeddedHost) -> None:
    """Destroy every active domain (qemu and lxc) and network through libvirt."""
    for uri in (host.uri, host.lxc_uri):
        try:
            conn = _open(uri)
        except libvirt.libvirtError as exc:
            log.warning("cannot connect to %s to destroy guests: %s", uri, exc.get_error_message())
            continue
        try:
            for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                log.info("destroying guest %s (%s)", dom.name(), uri.split(":", 1)[0])
                try:
                    dom.destroy()
                except libvirt.libvirtError as exc:
                    log.warning("destroying %s failed: %s", dom.name(), exc.get_error_message())
            if uri == host.uri:
                for net in conn.listAllNetworks(libvirt.VIR_CONNECT_LIST_NETWORKS_ACTIVE):
                    log.info("stopping network %s", net.name())
                    try:
                        net.destroy()
                    except libvirt.libvirtError as exc:
                        log.warning("stopping network %s failed: %s", net.name(), exc.get_error_message())
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == str(path) or point.startswith(prefix):
                found.append(point)
    return found


def stop(host: EmbeddedHost, *, purge: bool = False, timeout_s: float = 30) -> None:
    """Destroy the host's guests, stop its daemons, delete its netns; `purge` also deletes its state."""
    _require_root()
    deadline = time.monotonic() + timeout_s
    if host.state_dir.exists() or os.path.exists(host.netns):
        with _locked(host) if host.state_dir.exists() else contextlib.nullcontext():
            from ..console import service as console   # its sessions end before their displays go
            console.stop(host.state_dir / "console", timeout_s=max(1.0, deadline - time.monotonic()))
            from ..portal import service as portal
            portal.stop(host.state_dir / "portal", timeout_s=max(1.0, deadline - time.monotonic()))
            from ..lifecycle import supervisor as lifecycle   # before the guests, so it acts on none of them
            lifecycle.stop(host.state_dir / "lifecycle", timeout_s=max(1.0, deadline - time.monotonic()))
            if is_running(host):
                _destroy_guests(host)
            for daemon in ("libvirtd", "virtlogd"):
                pid = _daemon_pid(host, daemon)
                if pid is not None:
                    _terminate([pid], deadline, f"{daemon} of host {host.name!r}")
            # Whatever still lives in the namespace (dnsmasq, qemu, libvirt_lxc after
            # a crashed daemon) belongs to this host.
            _terminate(_netns_pids(host), deadline, f"processes in {host.netns_name}")
            if os.path.exists(host.netns):
                log.info("deleting network namespace %s", host.netns_name)
                _run([_tool("ip", "iproute2"), "netns", "delete", host.netns_name])
    if purge and host.state_dir.exists():
        if host.state_dir.name != host.name or not (host.state_dir / _MARKER).exists():
            raise EmbeddedHostError(
                f"refusing to purge {host.state_dir}: it is not a vdesk host directory")
        mounts = _mounts_under(host.state_dir)
        if mounts:
            raise EmbeddedHostError(f"refusing to purge {host.state_dir}: still mounted: {mounts}")
        log.info("removing %s", host.state_dir)
        shutil.rmtree(host.state_dir)


# --- CLI -------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vdesk-host", description="Manage vdesk's private libvirt host.")
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--name", default="default", help="host name (default: %(default)s)")
    parser.add_argument("--state-root", type=Path, default=None,
                        help="state dir (default: $VDESK_STATE or $XDG_STATE_HOME/vdesk)")
    parser.add_argument("--purge", action="store_true", help="stop: also delete the host's state")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="vdesk-host: %(message)s", stream=sys.stderr)
    try:
        host = embedded_host(args.name, args.state_root)
        if args.action == "start":
            ensure_running(host, timeout_s=args.timeout or 60)
        elif args.action == "stop":
            stop(host, purge=args.purge, timeout_s=args.timeout or 30)
        print(json.dumps(host.describe(is_running(host)), indent=2))
    except VdeskError as exc:
        print(f"vdesk-host: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
