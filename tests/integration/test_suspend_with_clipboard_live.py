"""A graphical desktop's suspend on the project's own libvirtd: QEMU 7.2 will not save a guest that has the
qemu-vdagent channel (its clipboard), so the suspend unplugs that channel first and the wake plugs it back.

The guest is firmware only (no OS boots; it still runs QEMU, hence `guests`). Without the unplug, libvirt's
managed save fails with "The vdagent chardev doesn't yet support migration" (checked here too, so the test
notices the day QEMU learns it and the unplug is no longer needed).
"""
from __future__ import annotations

import libvirt
import pytest

from components.lifecycle import actions
from components.resources.domain import DomainProvider
from tests.support.providers import checked

pytestmark = [pytest.mark.integration, pytest.mark.guests]
DESKTOP = "clip-sleep"


@pytest.fixture
def desktop(own_host):
    provider = DomainProvider()
    inputs = checked(provider, {"host_uri": own_host.uri, "name": DESKTOP, "owner": "clip", "domain_type": "qemu",
                                "boot": "bios", "memory": 128 * 1024**2, "vcpus": 1, "vdagent": True,
                                "shutdown_timeout_s": 1})
    created = provider.create(inputs)
    conn = libvirt.open(own_host.uri)
    try:
        yield provider, created, conn, conn.lookupByName(DESKTOP)
    finally:
        conn.close()
        provider.delete(created.id, created.outs)


def _live_vdagents(dom) -> list[str]:
    return actions._vdagent_channels(dom.XMLDesc(0))


def test_qemu_here_refuses_to_save_a_guest_with_its_clipboard_channel(desktop):
    _, _, _, dom = desktop
    assert _live_vdagents(dom)
    with pytest.raises(libvirt.libvirtError, match="vdagent chardev doesn't yet support migration"):
        dom.managedSave(0)
    assert dom.isActive() and not dom.hasManagedSaveImage(0)


def test_a_desktop_with_a_clipboard_channel_sleeps_and_wakes_with_it_and_is_not_drift(desktop):
    provider, created, conn, dom = desktop
    how = actions.suspend(dom)
    assert how == "suspended (managed save, clipboard channel unplugged for it)"
    assert not dom.isActive() and dom.hasManagedSaveImage(0) and actions.asleep(dom)
    assert actions._vdagent_channels(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))   # the definition keeps it
    assert actions.wake(conn, DESKTOP) == "restored"
    assert dom.isActive() and len(_live_vdagents(dom)) == 1
    outs = provider.read(created.id, created.outs).outs
    assert outs["vdagent"] is True and provider.diff(created.id, created.outs, outs).changes is False


def test_a_desktop_restored_by_other_means_gets_its_clipboard_channel_at_the_services_next_turn(desktop, tmp_path,
                                                                                                  own_host):
    from components.lifecycle.service import Lifecycle
    from components.lifecycle.settings import LifecycleSettings
    _, _, conn, dom = desktop
    actions.suspend(dom)
    dom.create()                                     # virsh start: libvirt restores, nothing plugs the channel
    assert dom.isActive() and not _live_vdagents(dom)
    Lifecycle(tmp_path, LifecycleSettings(libvirt_uri=own_host.uri, poll=5)).turn(conn)
    assert len(_live_vdagents(dom)) == 1
