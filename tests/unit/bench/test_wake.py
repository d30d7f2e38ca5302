"""The bench's sleep-and-wake reading on libvirt's test driver: the lifecycle's own suspend and wake."""
from __future__ import annotations

import libvirt

from bench import wake


def test_a_suspend_leaves_a_managed_save_and_a_wake_restores_it(monkeypatch):
    ids = iter(["boot-1", "boot-1"])
    monkeypatch.setattr(wake, "_boot_id", lambda target, timeout_s: next(ids))
    conn = libvirt.open("test:///default")          # the test driver's state lives as long as a connection
    try:
        got = wake.measure("test:///default", "test", target=None)
        assert got["managed_save_present"] and got["wake"] == "restored" and got["same_boot_after_wake"]
        assert got["wake_to_usable_s"] >= 0 and got["suspend_s"] >= 0
        assert conn.lookupByName("test").isActive(), "woken: running again"
    finally:
        conn.close()


def test_another_boot_after_the_wake_is_reported_as_such(monkeypatch):
    ids = iter(["boot-1", "boot-2"])
    monkeypatch.setattr(wake, "_boot_id", lambda target, timeout_s: next(ids))
    assert wake.measure("test:///default", "test", target=None)["same_boot_after_wake"] is False
