"""The SDK's per-registration debug lines stay in the program unless VDESK_SDK_DEBUG=1."""
from __future__ import annotations

import pulumi.log

from components import sdk_quiet


def test_debug_lines_are_dropped_unless_asked(monkeypatch):
    original = pulumi.log.debug
    monkeypatch.setattr(pulumi.log, "debug", original)      # restored after the test
    monkeypatch.setenv("VDESK_SDK_DEBUG", "1")
    sdk_quiet.quiet_sdk_debug()
    assert pulumi.log.debug is original
    monkeypatch.delenv("VDESK_SDK_DEBUG")
    sdk_quiet.quiet_sdk_debug()
    assert pulumi.log.debug is sdk_quiet._dropped
    assert pulumi.log.info is not sdk_quiet._dropped     # info, warnings and errors still reach the engine
