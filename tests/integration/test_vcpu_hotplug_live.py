"""vCPU hot-plug on the project's own libvirtd (qemu, TCG): vcpus moves within max_vcpus without a restart.

Plugging a vCPU in needs nothing from the guest. Unplugging needs the guest's ACPI to eject it, so
what happens depends on the guest:

- no OS (firmware only): qemu refuses at once (the firmware never enables the CPU hot-unplug interface);
- a booted kernel: it ejects the vCPU, but this host's qemu 7.2 then announces only the vCPU's lapic as
  deleted, never the vCPU, so libvirt times out after 5 s (a qemu that does announce it unplugs live).

A refusal is not an error: the update falls back to restart_policy and logs why. The tests assert
which path ran (same domain id and qemu pid = live; a new id = restarted), never assume it.
"""
from __future__ import annotations

import logging
import os
import select
import time

import libvirt
import pytest

from components import xmlmodel
from components.resources.domain import DomainProvider
from components.images.golden import golden_image_dir
from tests.support.host import qemu_pid
from tests.support.providers import checked

pytestmark = [pytest.mark.integration, pytest.mark.guests]

LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE


def run_id(conn, name: str) -> int:
    """The running domain's id; a fresh lookup, since a virDomain handle keeps the id it was found with."""
    return conn.lookupByName(name).ID()


def config_vcpus(dom) -> tuple[int, int]:
    """(vCPUs at the next boot, maximum) as libvirt keeps them persistently."""
    live = xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    return live.vcpu_current or live.vcpus, live.vcpus


@pytest.fixture
def domain_log(caplog):
    caplog.set_level(logging.INFO, logger="components.resources.domain")
    return caplog


@pytest.mark.parametrize("policy", ["on-change", "never"])
def test_hot_plug_is_live_and_an_unplug_the_guest_cannot_do_follows_the_policy(own_host, domain_log, policy):
    """No OS: plugging in (with a memory decrease in the same update) is live; unplugging is refused."""
    dp = DomainProvider()
    name = f"live-hotplug-{'restart' if policy == 'on-change' else 'never'}"
    props = checked(dp, {"host_uri": own_host.uri, "name": name, "domain_type": "qemu", "boot": "bios",
                         "memory": 384 * 1024**2, "vcpus": 1, "max_vcpus": 2, "restart_policy": policy,
                         "shutdown_timeout_s": 2})
    created = dp.create(props)
    conn = libvirt.open(own_host.uri)
    try:
        dom = conn.lookupByName(name)
        boot = (run_id(conn, name), qemu_pid(own_host, name))

        up = dict(props, vcpus=2, memory=320 * 1024**2)
        outs = dp.update(created.id, created.outs, up).outs
        assert (run_id(conn, name), qemu_pid(own_host, name)) == boot, "restarted for a hot-plug"
        assert dom.UUIDString() == created.id and dom.vcpusFlags(LIVE) == 2 and config_vcpus(dom) == (2, 2)
        # both live, nothing refused (the balloon target is set; a guest without a balloon driver keeps its RAM)
        assert outs["pending_restart"] is False and "vCPUs set to 2 live" in domain_log.text
        assert "refused" not in domain_log.text and "restarted" not in domain_log.text
        assert dp.diff(created.id, dp.read(created.id, outs).outs, up).changes is False

        domain_log.clear()
        down = dict(up, vcpus=1)
        outs = dp.update(created.id, outs, down).outs
        assert "live vCPU change to 1 refused, falling back to restart_policy" in domain_log.text
        assert "unplug" in domain_log.text          # qemu's reason is in the log
        assert dom.UUIDString() == created.id and config_vcpus(dom) == (1, 2)
        if policy == "on-change":
            assert run_id(conn, name) != boot[0] and dom.vcpusFlags(LIVE) == 1
            assert outs["pending_restart"] is False and f"restarted {name}" in domain_log.text
        else:
            assert (run_id(conn, name), qemu_pid(own_host, name)) == boot and dom.vcpusFlags(LIVE) == 2
            assert outs["pending_restart"] is True
        # the refresh shows what was declared (the config, while a restart is pending): nothing left to do
        assert dp.diff(created.id, dp.read(created.id, outs).outs, down).changes is False
    finally:
        conn.close()
        dp.delete(created.id, created.outs)


class Console:
    """The guest's serial console (a pty on this host), read without blocking."""

    def __init__(self, dom):
        path = xmlmodel.Domain.from_xml(dom.XMLDesc(0)).serials[0].source_path
        self.fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        self.text = ""

    def wait_for(self, marker: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while marker not in self.text:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if select.select([self.fd], [], [], min(left, 1.0))[0]:
                try:
                    self.text += os.read(self.fd, 65536).decode(errors="replace")
                except (BlockingIOError, OSError):
                    pass
        return True

    def close(self):
        os.close(self.fd)


def test_a_booted_guest_gets_its_vcpu_live_and_unplug_is_live_or_a_logged_restart(own_host, domain_log,
                                                                                     record_property):
    folder = golden_image_dir()
    if not (folder / "vmlinuz").is_file():
        pytest.skip(f"the golden image is not built ({folder}); run `make image`")
    dp = DomainProvider()
    name = "live-hotplug-os"
    # No root=: the initramfs stops at its shell, with the kernel (and its ACPI) running: no disk needed.
    props = checked(dp, {"host_uri": own_host.uri, "name": name, "domain_type": "qemu", "boot": "kernel",
                         "kernel": str(folder / "vmlinuz"), "initrd": str(folder / "initrd.img"),
                         "cmdline": "console=ttyS0,115200n8", "memory": 512 * 1024**2, "vcpus": 1, "max_vcpus": 2,
                         "shutdown_timeout_s": 5})
    created = dp.create(props)
    conn = libvirt.open(own_host.uri)
    dom = conn.lookupByName(name)
    console = Console(dom)
    try:
        assert console.wait_for("(initramfs)", 240), f"guest did not boot to its shell:\n{console.text[-2000:]}"
        boot = (run_id(conn, name), qemu_pid(own_host, name))

        up = dict(props, vcpus=2)
        outs = dp.update(created.id, created.outs, up).outs
        assert (run_id(conn, name), qemu_pid(own_host, name)) == boot, "restarted for a hot-plug"
        assert dom.vcpusFlags(LIVE) == 2 and outs["pending_restart"] is False
        assert console.wait_for("CPU1 has been hot-added", 60), "the guest kernel never saw the new vCPU"

        domain_log.clear()
        down = dict(props, vcpus=1)
        outs = dp.update(created.id, outs, down).outs
        live = run_id(conn, name) == boot[0]
        record_property("vcpu_unplug", "live" if live else "restart")
        if live:
            assert qemu_pid(own_host, name) == boot[1] and "vCPUs set to 1 live" in domain_log.text
        else:
            assert "live vCPU change to 1 refused, falling back to restart_policy 'on-change'" in domain_log.text
            assert f"restarted {name}" in domain_log.text
        assert dom.UUIDString() == created.id and dom.vcpusFlags(LIVE) == 1 and config_vcpus(dom) == (1, 2)
        assert outs["pending_restart"] is False
        assert dp.diff(created.id, dp.read(created.id, outs).outs, down).changes is False
    finally:
        console.close()
        conn.close()
        dp.delete(created.id, created.outs)
