"""One booted desktop: `up` until the readiness gate passes, against the guest's own boot time.

The `ci` stack's desktop (its checks, 768 MiB, 2 vCPUs, TCG) is brought up
through the front door.  While `up` runs, a thread waits for the domain to
become active and then reads its serial console (virDomainOpenConsole),
stamping each line with the host's clock; the kernel prints its own
timestamps and cloud-init's final message says "Up N seconds" (guest uptime).
The domain's console is also what libvirt's qemu log of the domain
(log/qemu/<domain>.log under the host's state dir) would hold if the serial
device logged to a file; in vdesk's domains it is a pty, so the bench reads
the console itself and keeps the lines in boot-console.log.

    provision   = start of `up` -> domain active (engine, program, providers, libvirt)
    guest boot  = domain active -> cloud-init's final message arrives (firmware, kernel, userspace, cloud-init)
    gate        = cloud-init finished -> `up` returns (address, SSH, cloud-init status, checks, screenshot,
                  state write, the front door's access step)
"""
from __future__ import annotations

import contextlib
import re
import threading
import time
from pathlib import Path

import libvirt
import yaml

from .wholestack import REPO, Bed, FrontDoor, progress

_UP = re.compile(r"Cloud-init v\. \S+ finished at .*Up ([0-9.]+) seconds")
_KERNEL = re.compile(r"^\[\s*([0-9]+\.[0-9]+)\]")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Console:
    """Host-stamped lines of a domain's serial console, from the moment it is active."""

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
                self.console_at = time.monotonic() - self.t0
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
                        self.active_at = time.monotonic() - self.t0
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
                now = time.monotonic() - self.t0
                buf += data
                *complete, buf = buf.split(b"\n")
                self.lines += [(now, _ANSI.sub("", line.decode(errors="replace")).rstrip("\r")) for line in complete]
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
        except libvirt.libvirtError as exc:
            self.error = str(exc)
        finally:
            conn.close()


def measure(b: Bed, logs: Path) -> dict:
    config = yaml.safe_load((REPO / "stacks" / "Pulumi.ci.yaml").read_text())["config"]
    desktop = next(iter(config["vdesk:desktops"]))
    stack = "boot"
    vm = f"{stack}-{desktop}"
    front = FrontDoor(b.root, stack, config, logs=logs)
    front.run("outputs", label="init")
    # libvirt locks a pty console with a file in /var/lock (-> /run/lock); the embedded host's /run is a
    # directory of its own without one, so the console would be refused ("Couldn't create lock file").
    (b.host.state_dir / "run" / "lock").mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    console = Console(b.uri, vm, t0)
    progress(f"boot: `up` of one running desktop ({vm}, TCG) until its readiness gate passes (1-3 min) ...")
    up = front.run("up", during=lambda _proc: console.start(), timeout=1800)
    time.sleep(0.5)
    console.stop()
    (logs / "boot-console.log").write_text("".join(f"[host +{t:8.3f}s] {line}\n" for t, line in console.lines))
    qemu_log = b.host.state_dir / "log" / "qemu" / f"{vm}.log"
    with contextlib.suppress(OSError):
        (logs / "boot-qemu.log").write_text(qemu_log.read_text(errors="replace"))
    progress(f"boot: up {up.seconds:.1f}s rc {up.rc}; destroying ...")
    destroy = front.run("destroy", timeout=600)

    first_kernel = next((t for t, line in console.lines if _KERNEL.match(line)), None)
    last_kernel = max((float(_KERNEL.match(line).group(1)) for _t, line in console.lines if _KERNEL.match(line)),
                      default=None)
    finished = next(((t, float(m.group(1))) for t, line in console.lines if (m := _UP.search(line))), None)
    result = {
        "stack": "ci (1 desktop, running, its checks)",
        "up_s": round(up.seconds, 2), "up_rc": up.rc, "destroy_s": round(destroy.seconds, 2),
        "destroy_rc": destroy.rc,
        "domain_active_at_s": round(console.active_at, 2) if console.active_at is not None else None,
        "console_attached_at_s": round(console.console_at, 2) if console.console_at is not None else None,
        "first_kernel_line_at_s": round(first_kernel, 2) if first_kernel is not None else None,
        "last_kernel_timestamp_s": last_kernel,
        "cloud_init_finished_at_s": round(finished[0], 2) if finished else None,
        "guest_uptime_at_cloud_init_finished_s": finished[1] if finished else None,
        "console_lines": len(console.lines), "console_error": console.error,
        "peak_rss_mib": {k: round(v / 1024, 1) for k, v in up.peaks_kib.items()},
        "up_output_tail": up.output_tail[-800:] if up.rc else "",
    }
    if finished and console.active_at is not None:
        result["provision_s"] = round(console.active_at, 2)
        result["guest_boot_s"] = round(finished[0] - console.active_at, 2)
        result["gate_s"] = round(up.seconds - finished[0], 2)
        result["gate_share_of_up"] = round((up.seconds - finished[0]) / up.seconds, 3)
    progress(f"boot: {result}")
    return result
