"""One booted desktop: `up` until the readiness gate passes, against the guest's own boot to ready.

Two desktops are brought up through the front door, one after the other: the `ci` stack's (the
console image, its checks, 768 MiB, TCG) and the `dev` stack's (the Xfce image, its user logged in
at boot, its checks, the gate's screenshot of the desktop).  Each figure comes from clocks that say
when a thing happened, not from when someone looked:

    domain start     the QEMU process's start time (the host's process table)
    kernel start     the host's time of a guest /proc/uptime read over SSH, less that uptime
    in the guest     systemd's own timestamps (`systemd-analyze`: kernel, initrd, userspace; a unit's
                     ActiveEnterTimestampMonotonic: ssh.service), cloud-init's result.json (written when
                     its last stage ends), and for the graphical desktop logind's session start and the
                     start of the session's last component (xfwm4, xfce4-panel, xfdesktop)
    up               the front door's wall time

    provision   = start of `up` -> domain start (engine, program, providers, libvirt)
    guest ready = domain start -> cloud-init done (and, graphical, the session started): the guest's own time
    gate        = guest ready -> `up` returns (address, SSH, cloud-init status, checks, screenshot, state
                  write, the front door's access step)
    up / guest ready is what issue 25 holds against 1.1.

While `up` runs, a thread reads the domain's serial console (virDomainOpenConsole) into
boot-console-<kind>.log, stamped with the host's clock: the guest's story when a figure looks wrong.
"""
from __future__ import annotations

import contextlib
import re
import threading
import time
from pathlib import Path

import libvirt
import psutil
import yaml

from components.guest.ssh import SshTarget, connect

from . import wake
from .wholestack import REPO, Bed, FrontDoor, progress

_UP = re.compile(r"Cloud-init v\. \S+ finished at .*Up ([0-9.]+) seconds")
_ANALYZE = re.compile(r"(?P<s>[0-9.]+(?:min|ms|s)(?: [0-9.]+(?:ms|s))?) \((?P<part>firmware|loader|kernel|initrd|userspace)\)")
# The session's components whose start says the graphical session is up (Xfce; LXQt's would be others).
SESSION_PARTS = ("xfwm4", "xfce4-panel", "xfdesktop")
# One SSH command: the guest's own timestamps (monotonic seconds since its kernel started).
_TIMELINE = r"""
u=$1
echo "analyze $(systemd-analyze time 2>&1 | head -n 1)"
# sshd first listening (the journal; a restart later moves ActiveEnterTimestamp, not this), else the unit's start
l=$(sudo -n journalctl -b -u ssh.service -o short-monotonic --no-pager 2>/dev/null |
    sed -n 's/^\[ *\([0-9.]*\)\].*Server listening.*/\1/p' | head -n 1)
echo "listening ssh ${l:-none}"
echo "unit ssh $(systemctl show ssh.service -p ActiveEnterTimestampMonotonic --value)"
r=/run/cloud-init/result.json
[ -e "$r" ] && echo "result $(stat -c %.3Y "$r") $(date +%s.%N) $(cut -d' ' -f1 /proc/uptime)"
for id in $(loginctl show-user "$u" -p Sessions --value 2>/dev/null); do
    echo "session $(loginctl show-session "$id" -p TimestampMonotonic --value) $(loginctl show-session "$id" -p Type --value)"
done
for p in $2; do pid=$(pgrep -o -x "$p") && echo "proc $p $(cut -d' ' -f22 "/proc/$pid/stat")"; done
echo "hz $(getconf CLK_TCK)"
"""
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Console:
    """Host-stamped lines (seconds after t0) of a domain's serial console, from the moment it is active."""

    def __init__(self, uri: str, domain: str, t0: float):
        self.uri, self.domain, self.t0 = uri, domain, t0
        self.lines: list[tuple[float, str]] = []
        self.active_at: float | None = None
        self.console_at: float | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        stream = getattr(self, "_stream", None)
        if stream is not None:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()          # ends a recv() that is waiting for the next line
        self._thread.join(timeout=10)

    def _open_console(self, conn, dom):
        """The console stream, once qemu has its pty (an active domain may still be starting up)."""
        deadline = time.monotonic() + 60
        while not self._stop.is_set():
            # Blocking: a non-blocking stream needs a client event loop to be fed, and without one it
            # never drains, so the guest's serial console (and its kernel, whose printk waits on
            # it) stalls. This thread does nothing but read.
            stream = conn.newStream(0)
            try:
                dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
                self.console_at = time.time() - self.t0
                self._stream = stream
                return stream
            except libvirt.libvirtError as exc:
                with contextlib.suppress(libvirt.libvirtError):
                    stream.abort()
                if time.monotonic() > deadline:
                    self.error = str(exc)
                    return None
                time.sleep(0.05)
        return None

    def _run(self) -> None:
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            self.error = str(exc)
            return
        try:
            dom = None
            while not self._stop.is_set():
                with contextlib.suppress(libvirt.libvirtError):
                    dom = dom or conn.lookupByName(self.domain)
                    if dom.isActive():
                        self.active_at = time.time() - self.t0
                        break
                time.sleep(0.05)
            if dom is None or self.active_at is None:
                return
            stream = self._open_console(conn, dom)
            if stream is None:
                return
            buf = b""
            while not self._stop.is_set():
                try:
                    data = stream.recv(65536)
                except libvirt.libvirtError:
                    break          # the domain went away
                if not data:
                    break
                now = time.time() - self.t0
                buf += data
                *complete, buf = buf.split(b"\n")
                self.lines += [(now, _ANSI.sub("", line.decode(errors="replace")).rstrip("\r")) for line in complete]
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
        except libvirt.libvirtError as exc:
            self.error = str(exc)
        finally:
            conn.close()


def _seconds(text: str) -> float:
    """systemd's span, e.g. '1min 2.5s', '850ms', '3.2s'."""
    total = 0.0
    for value, unit in re.findall(r"([0-9.]+)(min|ms|s)", text):
        total += float(value) * {"min": 60, "s": 1, "ms": 0.001}[unit]
    return total


def qemu_started_at(vm: str) -> float | None:
    """Epoch seconds at which the domain's QEMU process started (its `-name guest=<vm>,...`)."""
    for proc in psutil.process_iter(["name", "cmdline", "create_time"]):
        if (proc.info["name"] or "").startswith("qemu-system") and f"guest={vm}," in " ".join(proc.info["cmdline"] or []):
            return proc.info["create_time"]
    return None


def guest_timeline(target: SshTarget, user: str, graphical: bool) -> dict:
    """The guest's own timestamps, as seconds after its kernel started, and that start on the host's clock."""
    with connect(target, timeout_s=120) as session:
        rtts = []
        for _ in range(3):            # the read nearest in time to its answer bounds the clock's error best
            sent = time.time()
            uptime = float(session.run("cut -d' ' -f1 /proc/uptime").stdout)
            back = time.time()
            rtts.append((back - sent, (sent + back) / 2 - uptime))
        rtt, kernel_at = min(rtts)
        out = session.run(["sh", "-c", _TIMELINE, "timeline", user, " ".join(SESSION_PARTS) if graphical else ""])
    return {**parse_timeline(out.stdout), "kernel_started_at": kernel_at, "clock_error_s": round(rtt / 2, 3)}


def parse_timeline(text: str) -> dict:
    """_TIMELINE's lines as seconds after the guest's kernel started (systemd-analyze's parts as spans)."""
    found: dict = {"procs": {}, "sessions": []}
    ticks, hz = {}, 100
    for line in text.splitlines():
        word, _, rest = line.partition(" ")
        fields = rest.split()
        if word == "analyze":
            found["systemd_analyze"] = rest
            for m in _ANALYZE.finditer(rest):
                found[f"{m.group('part')}_s"] = round(_seconds(m.group("s")), 2)
        elif word == "unit" and len(fields) == 2 and fields[1].isdigit() and int(fields[1]):
            found[f"{fields[0]}_active"] = int(fields[1]) / 1e6
        elif word == "listening" and len(fields) == 2 and fields[1] != "none":
            found[f"{fields[0]}_listening"] = float(fields[1])
        elif word == "result" and len(fields) == 3:
            mtime, now, uptime = (float(x) for x in fields)
            found["cloud_init_done"] = uptime - (now - mtime)
        elif word == "session" and fields and fields[0].isdigit():
            found["sessions"].append({"started": int(fields[0]) / 1e6, "type": " ".join(fields[1:])})
        elif word == "proc" and len(fields) == 2:
            ticks[fields[0]] = int(fields[1])
        elif word == "hz" and fields:
            hz = int(fields[0])
    found["procs"] = {name: n / hz for name, n in ticks.items()}
    return found


def boot_one(b: Bed, logs: Path, kind: str, stack: str, config: dict, desktop: str, user: str,
             graphical: bool) -> dict:
    vm = f"{stack}-{desktop}"
    front = FrontDoor(b.root, stack, config, logs=logs)
    front.run("outputs", label="init")
    # libvirt locks a pty console with a file in /var/lock (-> /run/lock); the embedded host's /run is a
    # directory of its own without one, so the console would be refused ("Couldn't create lock file").
    (b.host.state_dir / "run" / "lock").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    console = Console(b.uri, vm, t0)
    progress(f"boot: `up` of one running {kind} desktop ({vm}, TCG) until its readiness gate passes (1-4 min) ...")
    up = front.run("up", during=lambda _proc: console.start(), timeout=1800)
    up_end = t0 + up.seconds
    qemu_at = qemu_started_at(vm)
    guest: dict = {}
    slept: dict | None = None
    if up.rc == 0:
        keyfile = b.root / "ssh" / stack / f"{desktop}.key"
        ip, host_key = keyfile.with_suffix(".known_hosts").read_text().split(None, 1)
        target = SshTarget(host=ip, user=user, private_key=keyfile.read_text(), host_public_key=host_key.strip(),
                           netns=b.host.netns)
        try:
            guest = guest_timeline(target, user, graphical)
        except Exception as exc:                  # the bench reports what it could not read, and goes on
            guest = {"error": f"{type(exc).__name__}: {exc}"}
        if not graphical:                         # issue 24: what a sleep gives back, and a wake costs
            progress(f"boot: suspending {vm} as idleness would, then waking it as opening it would ...")
            try:
                slept = wake.measure(b.uri, vm, target)
            except Exception as exc:
                slept = {"error": f"{type(exc).__name__}: {exc}"}
            progress(f"boot: sleep and wake: {slept}")
    time.sleep(0.5)
    console.stop()
    (logs / f"boot-console-{kind}.log").write_text("".join(f"[host +{t:8.3f}s] {line}\n" for t, line in console.lines))
    progress(f"boot: up {up.seconds:.1f}s rc {up.rc}; destroying ...")
    destroy = front.run("destroy", timeout=600)

    finished = next(((t, float(m.group(1))) for t, line in console.lines if (m := _UP.search(line))), None)
    result = {
        "desktop": f"{stack} stack's {desktop} ({'Xfce, logged in at boot' if graphical else 'console image'}), "
                   "running, its checks",
        "up_s": round(up.seconds, 2), "up_rc": up.rc, "destroy_s": round(destroy.seconds, 2),
        "destroy_rc": destroy.rc,
        "console_lines": len(console.lines), "console_error": console.error,
        "guest_uptime_at_cloud_init_final_message_s": finished[1] if finished else None,
        "peak_rss_mib": {k: round(v / 1024, 1) for k, v in up.peaks_kib.items()},
        "up_output_tail": up.output_tail[-800:] if up.rc else "",
        **({"sleep_and_wake": slept} if slept is not None else {}),
    }
    for part in ("firmware", "loader", "kernel", "initrd", "userspace"):
        if f"{part}_s" in guest:
            result[f"systemd_{part}_s"] = guest[f"{part}_s"]
    result["systemd_analyze"] = guest.get("systemd_analyze")
    result["guest_error"] = guest.get("error")
    kernel_at = guest.get("kernel_started_at")
    if qemu_at is not None and kernel_at is not None:
        def since_start(mono):              # guest monotonic -> seconds after the domain started
            return None if mono is None else round(kernel_at + mono - qemu_at, 2)
        session = max((guest["procs"][p] for p in SESSION_PARTS if p in guest["procs"]), default=None)
        ready = [guest.get("cloud_init_done")] + ([session] if graphical else [])
        result.update({
            "provision_s": round(qemu_at - t0, 2),
            "domain_start_to_kernel_s": round(kernel_at - qemu_at, 2),
            "clock_error_s": guest["clock_error_s"],
            "ssh_ready_s": since_start(guest.get("ssh_listening", guest.get("ssh_active"))),
            "cloud_init_done_s": since_start(guest.get("cloud_init_done")),
            "session_login_s": since_start(min((x["started"] for x in guest["sessions"]
                                                if x["type"] in ("x11", "wayland")), default=None)),
            "session_started_s": since_start(session),
        })
        if None not in ready:
            guest_ready = since_start(max(ready))
            result["guest_ready_s"] = guest_ready
            result["gate_s"] = round(up_end - (qemu_at + guest_ready), 2)
            result["vdesk_s"] = round(up.seconds - guest_ready, 2)
            result["up_vs_guest_ready"] = round(up.seconds / guest_ready, 3)
    progress(f"boot {kind}: {result}")
    return result


def measure(b: Bed, logs: Path) -> dict:
    """The console desktop, then the graphical one (the dev stack's profile: its image is built if missing)."""
    ci = yaml.safe_load((REPO / "stacks" / "Pulumi.ci.yaml").read_text())["config"]
    dev = yaml.safe_load((REPO / "stacks" / "Pulumi.dev.yaml").read_text())["config"]
    user = dev["vdesk:users"][0]["name"]
    return {
        "console": boot_one(b, logs, "console", "boot", ci, next(iter(ci["vdesk:desktops"])),
                            ci["vdesk:desktops"][next(iter(ci["vdesk:desktops"]))]["users"][0]["name"], False),
        "graphical": boot_one(b, logs, "graphical", "bootx", dev, user, user, True),
    }
