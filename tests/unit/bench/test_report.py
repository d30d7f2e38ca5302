"""The bench's ratios against the floor and kcli, the table and the plot that show them."""
from __future__ import annotations

import pytest

from bench import report, wholestack
from bench.__main__ import parse

VDESK = {"up": 12.0, "noop_up": 10.0, "preview": 6.0, "refresh": 7.0, "destroy": 4.5}
FLOOR = {"up": 1.5, "destroy": 0.5}
KCLI = {"create": 4.0, "delete": 1.5, "version": "kcli 99.0 commit ec5eb9c", "rounds": [{}, {}]}


def test_ratios_against_the_floor_and_kcli():
    r = wholestack.ratios(VDESK, FLOOR, KCLI)
    assert (r["up"], r["destroy"]) == (8.0, 9.0)
    assert (r["up_vs_kcli_create"], r["destroy_vs_kcli_delete"]) == (3.0, 3.0)
    assert (r["kcli_create_vs_floor_up"], r["kcli_delete_vs_floor_destroy"]) == (2.67, 3.0)
    assert (r["noop_up_vs_floor_up"], r["preview_vs_floor_up"], r["refresh_vs_floor_up"]) == (6.67, 4.0, 4.67)


@pytest.mark.parametrize("kcli", [None, {"create": None, "delete": None}])
def test_ratios_without_kcli_are_none(kcli):
    r = wholestack.ratios(VDESK, FLOOR, kcli)
    assert [r[k] for k in ("up_vs_kcli_create", "destroy_vs_kcli_delete", "kcli_create_vs_floor_up",
                           "kcli_delete_vs_floor_destroy")] == [None] * 4
    assert r["up"] == 8.0


def test_a_failed_vdesk_operation_has_no_ratio():
    assert wholestack.ratios({**VDESK, "up": None}, FLOOR, KCLI)["up_vs_kcli_create"] is None


def _entry(n, kcli=KCLI):
    ratios = wholestack.ratios(VDESK, FLOOR, kcli)
    ratios["noop_up_vs_noop_up_1"] = 1.0
    rss = {c: 100.0 for c in ("engine", "program", "provider", "frontdoor")}
    return {"n": n, "vdesk": VDESK, "floor": FLOOR, "kcli": kcli, "ratios": ratios,
            "peak_rss_mib": {op: rss for op in report.OPS}, "allocation_kib": {}, "floor_rounds": [{}, {}, {}],
            "floor_workers": 8, "engine": "v3.68.0", "env": {}, "failures": [],
            "machine": {"cores": 2, "cpu": "x", "load_before": [1.0], "load_after": [2.0]}}


def test_table_shows_kcli_beside_vdesk_and_the_floor():
    text = report.table([_entry(1), _entry(60)])
    assert "the peer, kcli 99.0 commit ec5eb9c:" in text and "median of 2" in text
    row = next(line for line in text.splitlines() if line.startswith("  60 |") and "3.0x" in line)
    assert row.split() == ["60", "|", "4.0", "3.0x", "2.7x", "|", "1.5", "3.0x", "3.0x"]


def test_table_of_results_from_before_kcli_was_measured():
    old = _entry(1)
    del old["kcli"]
    assert "kcli: not measured" in report.table([old])


def test_plot_draws_kcli(tmp_path):
    out = tmp_path / "latest.png"
    report.plot([_entry(1), _entry(10, kcli=None), _entry(60)], out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kcli_rounds_option():
    assert parse([]).kcli_rounds == 2
    assert parse(["--kcli-rounds", "0"]).kcli_rounds == 0
    with pytest.raises(SystemExit):
        parse(["--kcli-rounds", "-1"])


def test_the_done_when_ratios_come_from_the_largest_n_the_boot_and_the_image_parts():
    boot = {"console": {"up_vs_guest_ready": 1.1}, "graphical": {"up_vs_guest_ready": 1.25}}
    image = {"ratio_one_package_vs_full": 0.08}
    text = report.done_when([_entry(1), _entry(60)], boot, image)
    assert "N=60 up / kcli create           3.0x" in text
    assert "N=60 destroy / raw floor        9.0x" in text
    assert "N=60 no-op up / no-op up N=1    1.0x" in text
    assert "one booted console desktop: up / its guest's own boot to ready 1.10x" in text
    assert "one booted graphical desktop: up / its guest's own boot to ready 1.25x" in text
    assert "one-package recipe change / full image build 0.08x" in text


def test_the_done_when_ratios_say_what_was_not_measured():
    text = report.done_when(None, None, None)
    assert text.count("not measured") == 5


def test_the_done_when_lines_say_what_a_sleep_gives_back_and_what_a_wake_costs():
    slept = {"emulator_rss_mib": 612.4, "host_available_gain_mib": 598.0, "wake_to_usable_s": 3.4}
    text = report.done_when(None, {"console": {"sleep_and_wake": slept}}, None)
    assert ("a suspended console desktop gives back 612.4 MiB (its emulator's resident set; host MemAvailable "
            "+598.0 MiB); wake request to usable (SSH, same boot) 3.4 s") in text
    failed = report.done_when(None, {"console": {"sleep_and_wake": {"error": "TimeoutError: no SSH"}}}, None)
    assert "sleep and wake: not measured (TimeoutError: no SSH)" in failed


def test_the_image_part_runs_by_default():
    assert "image" in parse([]).parts and "image" not in parse(["--skip", "image"]).parts
