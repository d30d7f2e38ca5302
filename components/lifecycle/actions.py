"""What the lifecycle service does to a desktop: warn its person, suspend (managed save), shut down, wake."""
from __future__ import annotations

import logging
import shlex
import time
from pathlib import Path

import libvirt
from lxml import etree

from ..guest import agent
from . import quotas
from .sessions import Session

log = logging.getLogger(__name__)

DEFAULT_SHUTDOWN_TIMEOUT_S = 120
STATE_NS = "urn:vdesk:lifecycle-state:1"   # the domain's note that idleness shut it down (not the policy's element)
NOTIFY_TIMEOUT_MS = 0          # the warning stays until dismissed: a person away from the screen sees it back


def suspend(dom) -> str:
    """libvirt's managed save: memory to a file the host keeps, qemu gone; the next start restores it exactly.

    QEMU 7.2 refuses to save a guest with a qemu-vdagent channel (the clipboard of a graphical desktop: "The
    vdagent chardev doesn't yet support migration"), so that channel is unplugged from the running guest first
    and plugged in again when the save fails, or after the restore (`reattach_vdagent`)."""
    unplugged = _unplug_vdagent(dom)
    try:
        dom.managedSave(0)
    except libvirt.libvirtError:
        if unplugged:
            reattach_vdagent(dom)
        raise
    return "suspended (managed save" + (", clipboard channel unplugged for it)" if unplugged else ")")


def _vdagent_channels(xml: str) -> list[str]:
    """The qemu-vdagent channels of a domain XML, each as the device XML that attach and detach take."""
    devices = etree.fromstring(xml.encode()).find("devices")
    return [] if devices is None else [etree.tostring(c).decode() for c in devices.findall("channel")
                                       if c.get("type") == "qemu-vdagent"]


def _unplug_vdagent(dom) -> bool:
    channels = _vdagent_channels(dom.XMLDesc(0))
    for channel in channels:
        dom.detachDeviceFlags(channel, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    return bool(channels)


def reattach_vdagent(dom) -> bool:
    """Plug the definition's qemu-vdagent channel into a running guest that lacks it (restored from a managed
    save made without it, see `suspend`); the guest's spice-vdagentd finds its port again. True: plugged."""
    if not dom.isActive() or _vdagent_channels(dom.XMLDesc(0)):
        return False
    wanted = _vdagent_channels(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    for channel in wanted:
        dom.attachDeviceFlags(channel, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    return bool(wanted)


def shutdown(dom, timeout_s: float = DEFAULT_SHUTDOWN_TIMEOUT_S, by: str = "idle") -> str:
    """A clean ACPI power-off, forced after timeout_s (a guest that ignores ACPI must not keep the host's RAM).

    The domain is marked as shut down for idleness, so `up` can tell it from a desktop that stopped by itself.
    (Here, not through resources/, so that the domain provider and the console gateway can import this package.)"""
    how = _power_off(dom, timeout_s)
    mark_off(dom, by)
    return how


def _power_off(dom, timeout_s: float) -> str:
    ask_shutdown(dom)
    deadline = time.monotonic() + timeout_s
    while dom.isActive() and time.monotonic() < deadline:
        time.sleep(0.5)
    return force_off(dom, timeout_s)


def ask_shutdown(dom) -> None:
    """The clean ACPI power-off request alone, not waited for: the service comes back for it at later turns."""
    try:
        dom.shutdown()
    except libvirt.libvirtError as exc:
        log.info("ACPI shutdown of %s refused: %s", dom.name(), exc.get_error_message())


def force_off(dom, timeout_s: float) -> str:
    """Off for good once the guest had timeout_s to answer the ACPI request; returns how, for the log line."""
    if dom.isActive():
        try:
            dom.destroy()
            return f"forced off after {timeout_s:g}s"
        except libvirt.libvirtError:
            if dom.isActive():
                raise
    return "shut down"


def _element(tag: str, **attributes) -> str:
    """A metadata element of the service's own (through lxml, never formatted by hand)."""
    return etree.tostring(etree.Element(tag, **attributes)).decode()


def mark_off(dom, by: str | None) -> None:
    """The persistent config's note that the lifecycle service shut the domain down, for idleness or by its
    schedule (by=None: removed)."""
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                    _element("off", by=by, at=str(int(time.time()))) if by else None,
                    "lifecycle-state" if by else None, STATE_NS, flags)


HELD_NS = "urn:vdesk:lifecycle-held:1"     # changes `up` left for the lifecycle service to apply once it is idle


def hold(dom, changes: list[str]) -> None:
    """Note in the domain that these changes need a restart the lifecycle service makes once nobody uses it."""
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, _element("restart", changes=" ".join(sorted(changes))),
                    "lifecycle-held", HELD_NS, flags)


def held(dom) -> list[str]:
    """The changes held for an idle moment (none: []; a transient domain has no definition to hold them)."""
    if not dom.isPersistent():
        return []
    try:
        xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, HELD_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            return []
        raise
    return (etree.fromstring(xml.encode()).get("changes") or "").split()


def drop_held(dom) -> None:
    """The held changes are made: their note goes."""
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, HELD_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)


def start_held(dom) -> None:
    """Start a domain the service shut down for its held changes: it boots on the definition `up` wrote."""
    drop_held(dom)
    dom.create()


def started_again(dom) -> None:
    """A domain the service shut down that someone started another way: it is no longer off on purpose."""
    if off_by(dom):
        mark_off(dom, None)


def off_by(dom) -> str | None:
    """Why the persistent config says the lifecycle service shut it down: idle, schedule; None: it did not
    (a transient domain has no persistent config)."""
    if not dom.isPersistent():
        return None
    try:
        xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, STATE_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            return None
        raise
    return etree.fromstring(xml.encode()).get("by") or "idle"


def idle_off_marked(dom) -> bool:
    return off_by(dom) == "idle"


# Declared running, but off for idleness (a managed save, or shut down by the host's lifecycle service): not drift,
# and nothing vdesk does on `up` wakes it; opening it (the portal, the console) does.
SLEEPING = ("asleep", "idle-off")
# Also declared running and not drift, but not woken by opening it: stopped outside its schedule.
OFF_ON_PURPOSE = (*SLEEPING, "schedule-off")


def asleep(dom) -> bool:
    """Off with a managed save image: suspended, to be woken, not stopped."""
    return not dom.isActive() and bool(dom.hasManagedSaveImage(0))


def runtime_state(dom) -> str:
    """running; asleep (a managed save), idle-off (shut down for idleness) or schedule-off (outside its schedule):
    declared running, and not drift; else stopped. What outputs and plans show."""
    if dom.isActive():
        return "running"
    if dom.hasManagedSaveImage(0):
        return "asleep"
    by = off_by(dom)
    return f"{by}-off" if by in ("idle", "schedule") else "stopped"


def wake(conn, name: str, lifecycle_dir: Path | None = None) -> str:
    """Start a desktop that sleeps (libvirt restores its managed save), for the portal or the console gateway.

    Returns what was done; a desktop already running is left as it is. Stopped but not asleep: started,
    since opening a desktop means wanting it. The guest's clock is set from the host's afterwards. With the
    host's `lifecycle_dir`, its quotas are checked first (quotas.QuotaExceeded says which one it would exceed).
    """
    dom = conn.lookupByName(name)
    if dom.isActive():
        return "already running"
    quotas.check(conn, lifecycle_dir, name)
    restored = bool(dom.hasManagedSaveImage(0))
    dom.create()
    started_again(dom)
    log.info("woke desktop=%s how=%s", name, "restored from managed save" if restored else "started")
    if restored:
        _restored(dom)
    return "restored" if restored else "started"


def _restored(dom) -> None:
    """What a guest restored from a managed save needs: its clipboard channel back, its clock set."""
    replug_clipboard(dom, "restored from its managed save")
    _sync_clock(dom)


def replug_clipboard(dom, why: str) -> None:
    """`reattach_vdagent`, best effort and logged: the wake paths and the lifecycle service's first look at a
    start all call this one."""
    try:
        if reattach_vdagent(dom):
            log.info("plugged desktop=%s clipboard channel in again reason=%s", dom.name(), why)
    except libvirt.libvirtError as exc:
        log.warning("clipboard channel of desktop=%s not plugged in: %s", dom.name(), exc.get_error_message())


def _sync_clock(dom) -> None:
    """A restored guest's clock stands where it was at the suspend: the agent sets it (best effort)."""
    try:
        dom.setTime(None, libvirt.VIR_DOMAIN_TIME_SYNC)
    except libvirt.libvirtError as exc:
        log.info("clock of %s not synced after wake: %s", dom.name(), exc.get_error_message())


def _notify_argv(session: Session, uid: int, title: str, body: str) -> list[str]:
    """notify-send as the session's user, on its display and its session bus (systemd's user bus)."""
    env = [f"DISPLAY={session.display}", f"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{uid}/bus",
           f"XDG_RUNTIME_DIR=/run/user/{uid}"]
    command = ["runuser", "-u", session.user, "--", "env", *env, "notify-send", "--urgency=critical",
               f"--expire-time={NOTIFY_TIMEOUT_MS}", "--app-name=vdesk", title, body]
    return ["/bin/sh", "-c", " ".join(shlex.quote(part) for part in command)]


def warn(dom, sessions: list[Session], title: str, body: str) -> str:
    """A notification in every graphical session of the guest; returns what happened, for the log line."""
    graphical = [s for s in sessions if s.graphical and s.display and s.user]
    if not graphical:
        return "no graphical session to notify"
    outcomes = []
    for session in graphical:
        try:
            rc, out = agent.run(dom, ["/usr/bin/id", "-u", session.user], timeout_s=5)
            if rc != 0 or not out.strip().isdigit():
                outcomes.append(f"{session.user}: no uid ({out.strip()[:80]})")
                continue
            rc, out = agent.run(dom, _notify_argv(session, int(out.strip()), title, body), timeout_s=10)
        except libvirt.libvirtError as exc:
            outcomes.append(f"{session.user}: agent: {exc.get_error_message()}")
            continue
        outcomes.append(f"{session.user}: notified" if rc == 0 else f"{session.user}: notify-send rc={rc} "
                        f"{out.strip()[:120]}")
    return "; ".join(outcomes)

