"""The whole-stack results as a table on stdout, a plot (PNG), and profile.md."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

OPS = ("up", "noop_up", "preview", "refresh", "destroy")
LABELS = {"up": "up", "noop_up": "no-op up", "preview": "preview", "refresh": "refresh", "destroy": "destroy"}


def _s(v) -> str:
    return f"{v:.1f}" if isinstance(v, (int, float)) else "-"


def _x(v) -> str:
    return f"{v:.1f}x" if isinstance(v, (int, float)) else "-"


def table(entries: list[dict]) -> str:
    """Times and ratios, then memory and allocation, one row per N."""
    if not entries:
        return "(no whole-stack results)"
    e0 = entries[0]
    lines = [f"whole stack: N stopped desktops through tools/vdesk; engine {e0.get('engine')}"
             f"{' ' + str(e0['env']) if e0.get('env') else ''}; floor = raw libvirt-python, "
             f"{e0.get('floor_workers')} threads, median of {len(e0.get('floor_rounds') or [])}",
             "seconds (ratio: up and destroy to the floor's; no-op up, preview, refresh to the floor's up; "
             "no-op up also to no-op up of N=1)",
             f"{'N':>4} | {'up':>5} {'floor':>5} {'ratio':>6} | {'destroy':>7} {'floor':>5} {'ratio':>6} | "
             f"{'no-op up':>8} {'/floor':>6} {'/N=1':>5} | {'preview':>7} {'/floor':>6} | {'refresh':>7} {'/floor':>6}"]
    lines.append("-" * len(lines[-1]))
    for e in entries:
        v, f, r = e["vdesk"], e["floor"], e["ratios"]
        lines.append(f"{e['n']:>4} | {_s(v['up']):>5} {_s(f['up']):>5} {_x(r['up']):>6} | "
                     f"{_s(v['destroy']):>7} {_s(f['destroy']):>5} {_x(r['destroy']):>6} | "
                     f"{_s(v['noop_up']):>8} {_x(r['noop_up_vs_floor_up']):>6} "
                     f"{_x(r.get('noop_up_vs_noop_up_1')):>5} | "
                     f"{_s(v['preview']):>7} {_x(r['preview_vs_floor_up']):>6} | "
                     f"{_s(v['refresh']):>7} {_x(r['refresh_vs_floor_up']):>6}")
    lines += [""] + peer_table(entries)
    lines += ["", "peak RSS in MiB during each operation: engine / program / provider server (front door's helpers)",
              f"{'N':>4} | " + " | ".join(f"{LABELS[op]:^23}" for op in OPS)]
    lines.append("-" * len(lines[-1]))
    for e in entries:
        cells = []
        for op in OPS:
            p = e["peak_rss_mib"].get(op)
            cells.append(f"{p['engine']:>5.0f}/{p['program']:>4.0f}/{p['provider']:>4.0f} ({p['frontdoor']:>3.0f})"
                         if p else f"{'-':^23}")
        lines.append(f"{e['n']:>4} | " + " | ".join(cells))
    lines += ["", "allocation per desktop right after creation, KiB (median; libvirt volume info): disk + seed",
              f"{'N':>4} | {'vdesk disk':>10} {'seed':>6} {'max disk':>8} | {'floor disk':>10} {'seed':>6}"]
    for e in entries:
        a = e.get("allocation_kib") or {}
        vd, fl = a.get("vdesk") or {}, a.get("floor") or {}
        lines.append(f"{e['n']:>4} | {vd.get('disk_median', '-'):>10} {vd.get('seed_median', '-'):>6} "
                     f"{vd.get('disk_max', '-'):>8} | {fl.get('disk_median', '-'):>10} {fl.get('seed_median', '-'):>6}")
    failures = [f"N={e['n']}: {f}" for e in entries for f in e.get("failures") or []]
    loads = ", ".join(f"N={e['n']}: {e['machine']['load_before'][0]}->{e['machine']['load_after'][0]}"
                      for e in entries)
    lines += ["", f"machine: {e0['machine']['cores']} cores ({e0['machine']['cpu']}); 1-min load before->after: {loads}",
              f"failures: {len(failures)}"] + [f"  {f[:300]}" for f in failures]
    return "\n".join(lines)


def peer_table(entries: list[dict]) -> list[str]:
    """kcli's create and delete beside vdesk's up and destroy and the floor's, one row per N."""
    measured = [e for e in entries if e.get("kcli")]
    if not measured:
        return ["kcli: not measured"]
    k0 = measured[0]["kcli"]
    lines = [f"the peer, {k0.get('version')}: `kcli create plan` / `kcli delete plan` (+ its pool and network) "
             f"of the same N stopped VMs, median of {len(k0.get('rounds') or [])} (half before vdesk, half after)",
             f"{'N':>4} | {'kcli create':>11} {'vdesk up/':>9} {'/floor':>6} | "
             f"{'kcli delete':>11} {'vdesk destroy/':>14} {'/floor':>6}"]
    lines.append("-" * len(lines[-1]))
    for e in measured:
        k, r = e["kcli"], e["ratios"]
        lines.append(f"{e['n']:>4} | {_s(k['create']):>11} {_x(r.get('up_vs_kcli_create')):>9} "
                     f"{_x(r.get('kcli_create_vs_floor_up')):>6} | {_s(k['delete']):>11} "
                     f"{_x(r.get('destroy_vs_kcli_delete')):>14} {_x(r.get('kcli_delete_vs_floor_destroy')):>6}")
    return lines


def done_when(entries: list[dict] | None, boot: dict | None, image: dict | None) -> str:
    """The ratios issue 25's Done-when names, from this run (each against a floor or peer of the same run)."""
    lines = ["done-when ratios (this run; targets in brackets):"]
    top = max(entries or [], key=lambda e: e["n"], default=None)
    if top:
        r, n = top["ratios"], top["n"]
        lines += [f"  N={n} up / kcli create        {_x(r.get('up_vs_kcli_create')):>7}   [<= 1.0x]",
                  f"  N={n} destroy / kcli delete   {_x(r.get('destroy_vs_kcli_delete')):>7}   [<= 1.0x]",
                  f"  N={n} up / raw floor          {_x(r.get('up')):>7}   [<= 3.0x]",
                  f"  N={n} destroy / raw floor     {_x(r.get('destroy')):>7}   [<= 3.0x]",
                  f"  N={n} no-op up / no-op up N=1 {_x(r.get('noop_up_vs_noop_up_1')):>7}   [<= 1.5x]"]
    else:
        lines.append("  whole stack: not measured")
    for kind in ("console", "graphical"):
        one = (boot or {}).get(kind) or {}
        if one.get("up_vs_guest_ready"):
            lines.append(f"  one booted {kind} desktop: up / its guest's own boot to ready "
                         f"{one['up_vs_guest_ready']:.2f}x   [<= 1.1x]")
        else:
            lines.append(f"  one booted {kind} desktop: not measured")
    slept = ((boot or {}).get("console") or {}).get("sleep_and_wake") or {}
    if slept.get("wake_to_usable_s") is not None:
        lines.append(f"  a suspended console desktop gives back {slept['emulator_rss_mib']} MiB (its emulator's "
                     f"resident set; host MemAvailable +{slept['host_available_gain_mib']} MiB); wake request to "
                     f"usable (SSH, same boot) {slept['wake_to_usable_s']:.1f} s")
    else:
        lines.append("  sleep and wake: not measured" + (f" ({slept['error']})" if slept.get("error") else ""))
    if image:
        lines.append(f"  one-package recipe change / full image build {image['ratio_one_package_vs_full']:.2f}x   "
                     "[< 0.33x]")
    else:
        lines.append("  one-package recipe change: not measured")
    return "\n".join(lines)


def plot(entries: list[dict], path: Path, title_extra: str = "") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [e["n"] for e in entries]
    fig, (ax, rx) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [3, 2]})
    styles = {"up": ("tab:blue", "o"), "noop_up": ("tab:green", "s"), "preview": ("tab:olive", "^"),
              "refresh": ("tab:purple", "v"), "destroy": ("tab:red", "D")}
    for op in OPS:
        ys = [e["vdesk"][op] for e in entries]
        color, marker = styles[op]
        ax.plot(ns, ys, marker=marker, color=color, label=f"vdesk {LABELS[op]}")
    for op, color in (("up", "tab:blue"), ("destroy", "tab:red")):
        ax.plot(ns, [e["floor"][op] for e in entries], linestyle="--", marker="x", color=color,
                label=f"raw libvirt floor {op}")
    peer = [e for e in entries if e.get("kcli")]
    for op, color in (("create", "tab:blue"), ("delete", "tab:red")):
        if peer:
            ax.plot([e["n"] for e in peer], [e["kcli"][op] for e in peer], linestyle="-.", marker="+",
                    color=color, alpha=0.7, label=f"kcli {op} plan")
    ax.set_xlabel("desktops in the stack, N (declared stopped, no boot; 6 resources each, 6N+7 in all)")
    ax.set_ylabel("wall time, seconds")
    ax.set_title("Whole-stack wall time: what a user waits for")
    ax.set_xticks(ns)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8.5)

    for key, label, color in (("up", "up / floor up", "tab:blue"), ("destroy", "destroy / floor destroy", "tab:red"),
                              ("noop_up_vs_floor_up", "no-op up / floor up", "tab:green")):
        rx.plot(ns, [e["ratios"][key] for e in entries], marker="o", color=color, label=label)
    for key, label, color in (("up_vs_kcli_create", "up / kcli create", "tab:blue"),
                              ("destroy_vs_kcli_delete", "destroy / kcli delete", "tab:red")):
        if peer:
            rx.plot([e["n"] for e in peer], [e["ratios"].get(key) for e in peer], marker="+", linestyle="-.",
                    color=color, label=label)
    rx.axhline(1, color="grey", linestyle=":", linewidth=1)
    rx.set_xlabel("desktops in the stack, N")
    rx.set_ylabel("ratio (1 = the same time)")
    rx.set_title("vdesk / raw libvirt floor" + (" and vdesk / kcli" if peer else ""))
    rx.set_xticks(ns)
    rx.set_ylim(bottom=0)
    rx.grid(True, alpha=0.3)
    rx.legend(loc="upper left", fontsize=8.5)
    e0 = entries[0]
    fig.suptitle(f"vdesk whole stack vs raw libvirt{' and kcli' if peer else ''}, embedded host, TCG; "
                 f"engine {e0.get('engine')}{title_extra}; "
                 f"{e0['machine']['cores']} cores, load {e0['machine']['load_before'][0]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- profile.md --------------------------------------------------------------------------------

NOTES_BEGIN, NOTES_END = "<!-- notes: kept when the file is regenerated -->", "<!-- /notes -->"


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def _kept_notes(path: Path) -> str:
    if path.exists():
        text = path.read_text()
        if NOTES_BEGIN in text and NOTES_END in text:
            return text.split(NOTES_BEGIN, 1)[1].split(NOTES_END, 1)[0].strip("\n")
    return "(findings and recommendation: write them here; regenerating keeps this block)"


def profile_md(results: Path) -> str:
    out = results / "profile.md"
    prof, engines, boot, latest = (_load(results / f) for f in ("profile.json", "engines.json", "boot.json",
                                                               "latest.json"))
    md = ["# Where the time of a whole-stack `up` goes",
          "",
          f"Generated by `python -m bench` (bench/report.py) on {datetime.date.today().isoformat()}, from "
          "profile.json, engines.json, boot.json and latest.json in this folder.",
          "",
          NOTES_BEGIN, _kept_notes(out), NOTES_END, ""]
    if latest:
        md += ["## The whole-stack run (latest.json)", "", "```", table(latest), "```", ""]
    if engines:
        md += ["## Engine variants (the same workload, one after the other, each on a fresh host)", "",
               "| engine | N | up s | destroy s | no-op up s | preview s | refresh s | floor up / destroy s | "
               "up / floor | destroy / floor | engine peak RSS in up, MiB |",
               "|---|---|---|---|---|---|---|---|---|---|---|"]
        for v in engines:
            for e in v["entries"]:
                t, r = e["vdesk"], e["ratios"]
                md.append(f"| {v['label']} ({v['engine']}) | {e['n']} | {_s(t['up'])} | {_s(t['destroy'])} | "
                          f"{_s(t['noop_up'])} | {_s(t['preview'])} | {_s(t['refresh'])} | "
                          f"{_s(e['floor']['up'])} / {_s(e['floor']['destroy'])} | {_x(r['up'])} | "
                          f"{_x(r['destroy'])} | {e['peak_rss_mib'].get('up', {}).get('engine', '-')} |")
        md += ["", "Full tables per variant:", ""]
        for v in engines:
            md += [f"### {v['label']}", "", "```", table(v["entries"]), "```", ""]
    if prof:
        md += [f"## Profile of N={prof['n']} (engine binary {prof['engine_binary']})", ""]
        for label, entry in prof["ops"].items():
            md += [f"### `{label}`: {entry['seconds']} s wall (rc {entry['rc']}; the engine reports "
                   f"{entry.get('engine_reported_s')} s)", "",
                   "Front door (tools/vdesk traced with timestamps), seconds:", "",
                   "| step | s |", "|---|---|"]
            md += [f"| {k} | {v} |" for k, v in entry["front_door"]]
            md.append("")
            for kind, title in (("engine_flat", "Engine CPU (pprof), by flat time"),
                                ("engine_subsystems", "Engine CPU (pprof), Pulumi's own functions and the libraries "
                                                      "they spend in, by cumulative time"),
                                ("engine_cum", "Engine CPU (pprof), by cumulative time")):
                top = entry.get(kind)
                if not top:
                    continue
                if top.get("error"):
                    md += [f"{title}: {top['error']}", ""]
                    continue
                md += [f"{title}. " + " ".join(h.strip() for h in top["header"] if "Showing" in h or "Duration" in h),
                       "", "| flat | flat% | cum | cum% | function |", "|---|---|---|---|---|"]
                md += [f"| {r['flat']} | {r['flat%']} | {r['cum']} | {r['cum%']} | `{r['function']}` |"
                       for r in top["rows"][:15]]
                md.append("")
            for cls in ("program", "provider"):
                spy = entry.get(f"py_spy_{cls}")
                if not spy or not spy["samples"]:
                    continue
                secs = spy["samples"] / spy["rate_hz"]
                md += [f"py-spy of the {cls}: {spy['samples']} samples at {spy['rate_hz']} Hz = {secs:.1f} s of "
                       "non-idle thread time, all threads (py-spy counts a thread blocked inside gRPC's C core as "
                       "non-idle: `_blocking` is waiting for the engine), inclusive (self):", "",
                       "| function | inclusive s | self s |", "|---|---|---|"]
                own = dict(spy["self"])
                md += [f"| `{f}` | {c / spy['rate_hz']:.2f} | {own.get(f, 0) / spy['rate_hz']:.2f} |"
                       for f, c in spy["inclusive"][:15]]
                md += ["", "Top self time: " + "; ".join(f"`{f}` {c / spy['rate_hz']:.2f} s"
                                                         for f, c in spy["self"][:8]), ""]
    for kind, one in ((k, (boot or {}).get(k)) for k in ("console", "graphical")):
        if not one:
            continue
        md += [f"## One booted {kind} desktop: `up` until the readiness gate passes", "",
               f"{one.get('desktop')}. Seconds; the guest's figures are its own timestamps (systemd's, "
               "cloud-init's result.json, the session's processes), placed on the host's clock by the domain's "
               f"QEMU start and one /proc/uptime read (error {one.get('clock_error_s')} s).", "",
               "| part | s |", "|---|---|",
               f"| whole `up` (front door) | {one.get('up_s')} |",
               f"| provision: start of `up` -> domain start | {one.get('provision_s')} |",
               f"| domain start -> guest kernel start (firmware, kernel load) | {one.get('domain_start_to_kernel_s')} |",
               f"| systemd-analyze: kernel / initrd / userspace | {one.get('systemd_kernel_s')} / "
               f"{one.get('systemd_initrd_s')} / {one.get('systemd_userspace_s')} |",
               f"| domain start -> sshd running | {one.get('ssh_ready_s')} |",
               f"| domain start -> cloud-init done (result.json) | {one.get('cloud_init_done_s')} |",
               *([f"| domain start -> session's components started (logind session at "
                  f"{one.get('session_login_s')}) | {one.get('session_started_s')} |"] if kind == "graphical" else []),
               f"| guest ready: domain start -> all of the above | {one.get('guest_ready_s')} |",
               f"| gate: guest ready -> `up` returns | {one.get('gate_s')} |",
               f"| vdesk's own: `up` - guest ready | {one.get('vdesk_s')} ({_x(one.get('up_vs_guest_ready'))}) |",
               f"| destroy of the running desktop | {one.get('destroy_s')} |", ""]
    return "\n".join(md) + "\n"
