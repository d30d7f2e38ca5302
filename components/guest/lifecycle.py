"""Whether a guest the gate waits for is still running, and if not, why, in a person's words.

Why: a guest that stopped while it booted (its QEMU process died, it powered
itself off, someone destroyed it) never gets an address or an sshd. Without
this the gate waited out its whole bound and then said only "timed out".
Libvirt knows at once, and knows the reason.
"""
from __future__ import annotations

import libvirt

from . import GuestError

_WHY_SHUT_OFF = {
    libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN: "the guest powered itself off",
    libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED: "it was destroyed (a hard power-off, such as `virsh destroy`)",
    libvirt.VIR_DOMAIN_SHUTOFF_CRASHED: "its emulator crashed (the QEMU process died; the host's QEMU log "
                                        "for this domain says why)",
    libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED: "it was migrated to another host",
    libvirt.VIR_DOMAIN_SHUTOFF_SAVED: "it was saved to a file",
    libvirt.VIR_DOMAIN_SHUTOFF_FAILED: "it failed to start",
    libvirt.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT: "a snapshot was reverted",
    libvirt.VIR_DOMAIN_SHUTOFF_DAEMON: "libvirtd stopped it",
}


class GuestStopped(GuestError):
    """The guest stopped while vdesk waited for it; `crashed` when the emulator died, not the guest's own doing."""

    def __init__(self, domain_name: str, why: str, crashed: bool):
        self.domain_name, self.why, self.crashed = domain_name, why, crashed
        super().__init__(f"the guest stopped: {why}")

    def __reduce__(self):
        return (type(self), (self.domain_name, self.why, self.crashed))


def stopped(domain_name: str, state: int, reason: int) -> GuestStopped | None:
    """Why the guest stopped, from libvirt's (state, reason) pair; None while it runs or boots.

    A pause by a person or a migration is not a stop: it may be resumed within the gate's bound.
    """
    if state == libvirt.VIR_DOMAIN_CRASHED:
        return GuestStopped(domain_name, "the guest crashed (a kernel panic reported to the host)", crashed=True)
    if state == libvirt.VIR_DOMAIN_PAUSED and reason == libvirt.VIR_DOMAIN_PAUSED_IOERROR:
        return GuestStopped(domain_name, "the host paused it on a disk I/O error (is its storage pool full?)",
                            crashed=False)
    if state != libvirt.VIR_DOMAIN_SHUTOFF:
        return None
    why = _WHY_SHUT_OFF.get(reason, f"libvirt gives no reason (shut-off reason {reason})")
    return GuestStopped(domain_name, f"libvirt says it is shut off: {why}",
                        crashed=reason == libvirt.VIR_DOMAIN_SHUTOFF_CRASHED)


def why_stopped(conn: libvirt.virConnect, domain_name: str) -> GuestStopped | None:
    """GuestStopped if the named domain is no longer running; None if it runs, or libvirt cannot tell now."""
    try:
        state, reason = conn.lookupByName(domain_name).state()
    except libvirt.libvirtError:
        return None
    return stopped(domain_name, state, reason)


def raise_if_stopped(conn: libvirt.virConnect, domain_name: str) -> None:
    """Raise GuestStopped if the domain stopped; quiet when libvirt cannot tell (the caller's deadline bounds it)."""
    found = why_stopped(conn, domain_name)
    if found is not None:
        raise found
