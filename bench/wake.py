"""Sleep and wake of one booted desktop, as issue 24's Done-when asks `make bench` to report: the host memory a
suspended desktop gives back, and the time from a wake request to a usable desktop.

The suspend and the wake are the lifecycle service's own (components.lifecycle.actions: libvirt's managed
save, then a start that restores it); "usable" is the guest answering a command over SSH with the same boot
id as before the sleep (restored, not booted again). Memory is read on the host: the emulator's resident set
just before the suspend, and MemAvailable before and after it.
"""
from __future__ import annotations

import time
from pathlib import Path

import libvirt
import psutil

from components.guest.ssh import SshTarget, connect
from components.lifecycle import actions

MIB = 1024 * 1024


def _available() -> int:
    """The host's MemAvailable, in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def emulator_rss(vm: str) -> int | None:
    """The resident set of the QEMU process that runs `vm` (None when there is none)."""
    for proc in psutil.process_iter(["cmdline", "memory_info"]):
        argv = proc.info.get("cmdline") or []
        if argv and "qemu-system" in argv[0] and f"guest={vm}" in " ".join(argv):
            return proc.info["memory_info"].rss
    return None


def _boot_id(target: SshTarget, timeout_s: float) -> str:
    with connect(target, timeout_s=timeout_s) as session:
        return session.run("cat /proc/sys/kernel/random/boot_id").stdout.strip()


def measure(uri: str, vm: str, target: SshTarget, *, timeout_s: float = 300) -> dict:
    """Suspend `vm` the way idleness does, then wake it the way opening it does; what each cost."""
    before_id = _boot_id(target, 120)
    conn = libvirt.open(uri)
    try:
        dom = conn.lookupByName(vm)
        rss = emulator_rss(vm)
        available_before = _available()
        t = time.monotonic()
        actions.suspend(dom)
        suspend_s = time.monotonic() - t
        gone = emulator_rss(vm) is None
        available_after = _available()
        saved = bool(dom.hasManagedSaveImage(0))
        t = time.monotonic()
        how = actions.wake(conn, vm)
        after_id = _boot_id(target, timeout_s)
        wake_s = time.monotonic() - t
    finally:
        conn.close()
    return {
        "suspend_s": round(suspend_s, 2),
        "emulator_rss_mib": round(rss / MIB, 1) if rss else None,
        "emulator_gone_after_suspend": gone,
        "managed_save_present": saved,
        "host_available_gain_mib": round((available_after - available_before) / MIB, 1),
        "wake": how,
        "wake_to_usable_s": round(wake_s, 2),
        "same_boot_after_wake": after_id == before_id,
    }
