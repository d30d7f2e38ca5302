"""Power and removal of a libvirt domain, VM or container alike: start or leave nothing, shut down, undefine.

Their own module so the container and volume providers need not import the VM's provider to stop a guest.
"""
from __future__ import annotations

import logging
import time

import libvirt

log = logging.getLogger(__name__)

_UNDEFINE_FLAGS = (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                   | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_TPM)


def undefine(dom) -> None:
    """Undefine with NVRAM, TPM state, managed save and snapshot metadata, so nothing is left behind.

    Drivers that do not know a flag (libvirt's test driver has no NVRAM or TPM) get the
    strongest subset they accept. (Without VIR_DOMAIN_UNDEFINE_TPM, libvirt removes an
    emulated TPM's state anyway unless it is declared persistent.)
    """
    no_tpm = _UNDEFINE_FLAGS & ~libvirt.VIR_DOMAIN_UNDEFINE_TPM
    for flags in (_UNDEFINE_FLAGS, no_tpm, no_tpm & ~libvirt.VIR_DOMAIN_UNDEFINE_NVRAM, 0):
        try:
            dom.undefineFlags(flags)
            return
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT) or flags == 0:
                raise


def start_or_undefine(dom, *, autostart: bool, running: bool) -> None:
    """Finish a create transactionally: if the new domain cannot start, it does not stay defined."""
    try:
        dom.setAutostart(1 if autostart else 0)
        if running:
            dom.create()
    except libvirt.libvirtError:
        if dom.isActive():
            dom.destroy()
        undefine(dom)
        raise


def wait_until(condition, timeout_s: float, poll_s: float = 0.5) -> bool:
    """Poll condition until it holds (True) or timeout_s passes (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


def shut_down(dom, timeout_s: float) -> str:
    """Ask the guest to power off; force it after timeout_s. Returns how it stopped."""
    if not dom.isActive():
        return "already off"
    try:
        dom.shutdown()
    except libvirt.libvirtError as exc:
        log.info("graceful shutdown of %s refused: %s", dom.name(), exc.get_error_message())
    if wait_until(lambda: not dom.isActive(), timeout_s):
        return "shut down"
    return force_off(dom)


def force_off(dom) -> str:
    """Pull the plug, unless the guest went down by itself meanwhile."""
    try:
        dom.destroy()
    except libvirt.libvirtError:
        if dom.isActive():
            raise
    return "forced off"
