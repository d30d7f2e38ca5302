"""The boot part reads the guest's own timestamps: what one SSH command prints, parsed."""
from __future__ import annotations

import pytest

from bench.boot import _seconds, parse_timeline

PRINTED = """\
analyze Startup finished in 2.512s (kernel) + 3.004s (initrd) + 1min 4.250s (userspace) = 1min 9.766s
listening ssh 40.125
unit ssh 41250000
result 1765111000.500 1765111010.500 80.25
session 52500000 x11
proc xfwm4 6012
proc xfce4-panel 6150
proc xfdesktop 6230
hz 100
"""


def test_the_guest_timeline_is_in_seconds_after_its_kernel_started():
    t = parse_timeline(PRINTED)
    assert (t["kernel_s"], t["initrd_s"], t["userspace_s"]) == (2.51, 3.0, 64.25)
    assert t["ssh_active"] == 41.25 and t["ssh_listening"] == 40.125
    assert t["cloud_init_done"] == pytest.approx(70.25)      # result.json written 10 s before uptime 80.25
    assert t["sessions"] == [{"started": 52.5, "type": "x11"}]
    assert t["procs"] == {"xfwm4": 60.12, "xfce4-panel": 61.5, "xfdesktop": 62.3}


def test_a_guest_that_has_not_finished_booting_says_so_and_gives_no_spans():
    t = parse_timeline("analyze Bootup is not yet finished\nlistening ssh none\nunit ssh 0\nhz 100\n")
    assert "kernel_s" not in t and "ssh_active" not in t and "ssh_listening" not in t and "cloud_init_done" not in t
    assert t["systemd_analyze"] == "Bootup is not yet finished"


@pytest.mark.parametrize("text, seconds", [("850ms", 0.85), ("3.2s", 3.2), ("1min 2.5s", 62.5)])
def test_systemd_spans(text, seconds):
    assert _seconds(text) == pytest.approx(seconds)
