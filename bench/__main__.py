"""`python -m bench`: what vdesk costs a user, measured against raw libvirt in the same run.

Parts (all by default; `--skip` or `--parts` choose):
  stack      whole-stack `up`, no-op `up`, `preview`, `refresh`, `destroy` of N stopped desktops through
             tools/vdesk, against a raw libvirt-python floor and against the peer, kcli (`kcli create plan` /
             `kcli delete plan` of the same N VMs, PyPI, a venv of its own: tools/kcli-venv.sh; see peer.py);
             peak RSS; allocation per desktop -> results/latest.json, latest.png
  boot       one running console desktop, then one graphical: `up` until the readiness gate passes vs the
             guest's own boot to ready (its systemd, cloud-init and session timestamps); the console desktop
             is then suspended and woken as idleness and opening do (memory given back, wake to usable)
             -> results/boot.json
  profile    `up`, no-op `up` and `destroy` of N=60 with the engine's pprof, a trace of the front door and
             py-spy (if installed) -> results/profile.json
  providers  the provider-level comparison (vdesk's providers vs raw calls, 10 desktops; see provider_level.py)
  image      a full image build from debootstrap, then the same recipe plus one package, in a cache of the
             bench's own (see imagebuild.py) -> results/image.json
  engines    (only when asked) the stack part again with other engines: the 3.274.1 toolchain, plain and with
             PULUMI_SKIP_CHECKPOINTS=true, and the pinned engine with PULUMI_SKIP_CHECKPOINTS=true (which 3.68
             reads only with PULUMI_EXPERIMENTAL=true) -> results/engines.json
results/profile.md is rendered from those JSON files.  Ratios are printed, and at the end the ones the
issue's Done-when names, each against a floor or peer measured in the same run; nothing is asserted.
Exit status: 1 if an operation failed, 2 on a set-up error.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import signal
import sys
import traceback
from pathlib import Path

from components.errors import VdeskError

from . import report, wholestack
from .wholestack import progress

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ("stack", "boot", "profile", "providers", "image", "engines")
DEFAULT_PARTS = ("stack", "boot", "profile", "providers", "image")


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers separated by commas, e.g. 1,10,30,60") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("every N must be at least 1")
    return values


def _parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown part(s) {', '.join(unknown)} (known: {', '.join(PARTS)})")
    return parts


def find_engine(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    cache = os.environ.get("VDESK_CACHE") or os.path.expanduser("~/.cache/vdesk")
    found = sorted(glob.glob(f"{cache}/toolchain/pulumi-v3.274.1-*/bin/pulumi"))
    return Path(found[-1]) if found else None


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", type=_parts, default=list(DEFAULT_PARTS),
                   help=f"comma-separated parts to run (default {','.join(DEFAULT_PARTS)})")
    p.add_argument("--skip", type=_parts, default=[], help="parts not to run, e.g. --skip boot,providers")
    p.add_argument("--engines", action="store_true", help="also run the engine variants (adds the 'engines' part)")
    p.add_argument("--ns", type=_ints, default=[1, 10, 30, 60],
                   help="stack sizes for the stack part (default %(default)s)")
    p.add_argument("--floor-rounds", type=int, default=3, help="raw floor rounds per N, median (default %(default)s)")
    p.add_argument("--kcli-rounds", type=int, default=2,
                   help="kcli rounds per N, half before vdesk's run and half after, median; 0: no kcli "
                        "(default %(default)s)")
    p.add_argument("--profile-n", type=int, default=60, help="stack size to profile (default %(default)s)")
    p.add_argument("--engine-bin", help="the other engine's `pulumi` (default: the 3.274.1 toolchain in the cache)")
    p.add_argument("--engine-ns", type=_ints, help="stack sizes for the engine variants (default: --ns)")
    p.add_argument("--results", type=Path, default=RESULTS, help="where results go (default bench/results)")
    p.add_argument("--replot", action="store_true",
                   help="measure nothing: redraw latest.png and rewrite profile.md from the JSON files in --results")
    g = p.add_argument_group("providers part (provider-level comparison)")
    g.add_argument("--count", type=int, default=10, help="desktops per phase (default %(default)s)")
    g.add_argument("--repeat", type=int, default=3, help="rounds; the median is reported (default %(default)s)")
    g.add_argument("--workers", type=int, default=8, help="parallel workers, like Pulumi's (default %(default)s)")
    p.add_argument("--slow-reaping", action="store_true",
                   help="leave qemu's zombies to PID 1, as `make up` does here (see bench/reaper.py)")
    args = p.parse_args(argv)
    args.parts = [x for x in PARTS if (x in args.parts or (x == "engines" and args.engines)) and x not in args.skip]
    if args.count < 1 or args.repeat < 1 or args.workers < 1 or args.floor_rounds < 1:
        p.error("--count, --repeat, --workers and --floor-rounds must be at least 1")
    if args.kcli_rounds < 0:
        p.error("--kcli-rounds must be 0 or more")
    return args


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def replot(results: Path) -> int:
    latest = results / "latest.json"
    if latest.exists():
        entries = json.loads(latest.read_text())
        report.plot(entries, results / "latest.png")
        print(report.table(entries))
    (results / "profile.md").write_text(report.profile_md(results))
    progress(f"redrew {results / 'latest.png'} and {results / 'profile.md'}")
    return 0


def run(args) -> int:
    if args.replot:
        return replot(args.results)
    results: Path = args.results
    logs = results / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    failed = 0
    entries = None
    measured: dict = {}

    def part(name, fn):
        """Run one part; a part that breaks is reported and the others still run."""
        nonlocal failed
        try:
            failed += fn()
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported, the run goes on
            if isinstance(exc, SystemExit) and exc.code == 143:
                raise
            failed += 1
            progress(f"part {name} failed: {type(exc).__name__}: {exc}\n{traceback.format_exc()[-2000:]}")

    def stack_part(b):
        nonlocal entries
        kcli = None
        if args.kcli_rounds:
            from . import peer
            kcli = peer.install()
        entries = [wholestack.run_n(b, n, floor_rounds=args.floor_rounds, keep_logs=logs, kcli=kcli,
                                    kcli_rounds=args.kcli_rounds) for n in args.ns]
        wholestack.add_noop_ratios(entries)
        _write(results / "latest.json", entries)
        report.plot(entries, results / "latest.png")
        print(report.table(entries), flush=True)
        return sum(len(e["failures"]) for e in entries)

    def profile_part(b):
        from . import profiling
        prof = profiling.measure(b, args.profile_n, logs / "profile", logs)
        _write(results / "profile.json", prof)
        for label, entry in prof["ops"].items():
            steps = ", ".join(f"{k} {v}" for k, v in entry["front_door"][:5])
            print(f"profile N={args.profile_n} {label}: {entry['seconds']} s; front door: {steps}", flush=True)
        return sum(e["rc"] != 0 for e in prof["ops"].values())

    def boot_part(b):
        from . import boot
        result = boot.measure(b, logs)
        _write(results / "boot.json", result)
        measured["boot"] = result
        for kind, one in result.items():
            print(f"\none running {kind} desktop (TCG): up {one['up_s']} s until the gate passed; "
                  f"provision {one.get('provision_s')} s, guest ready {one.get('guest_ready_s')} s after the domain "
                  f"started (sshd {one.get('ssh_ready_s')} s, cloud-init done {one.get('cloud_init_done_s')} s"
                  + (f", session {one.get('session_started_s')} s" if kind == "graphical" else "")
                  + f"), gate {one.get('gate_s')} s after that; destroy {one['destroy_s']} s", flush=True)
        return sum((one["up_rc"] != 0) + (one["destroy_rc"] != 0) for one in result.values())

    def image_part():
        from . import imagebuild
        result = imagebuild.measure(logs)
        _write(results / "image.json", result)
        measured["image"] = result
        print("\n" + imagebuild.line(result), flush=True)
        return 0

    def providers_part():
        from . import provider_level
        progress("provider-level comparison")
        return int(provider_level.run(args) != 0)

    if "stack" in args.parts:
        with wholestack.bed(reap=not args.slow_reaping) as b:
            progress(f"host ready ({b.root}); logs in {logs}")
            part("stack", lambda: stack_part(b))
    if "engines" in args.parts:
        part("engines", lambda: run_engines(args, entries, results, logs))
    if {"profile", "boot"} & set(args.parts):
        with wholestack.bed(reap=not args.slow_reaping) as b:
            progress(f"host ready ({b.root})")
            if "profile" in args.parts:
                part("profile", lambda: profile_part(b))
            if "boot" in args.parts:
                part("boot", lambda: boot_part(b))
    if {"stack", "boot", "profile", "engines"} & set(args.parts):
        (results / "profile.md").write_text(report.profile_md(results))
        progress(f"wrote {results / 'profile.md'}")
    if "providers" in args.parts:
        part("providers", providers_part)
    if "image" in args.parts:
        part("image", image_part)
    print("\n" + report.done_when(entries, measured.get("boot"), measured.get("image")), flush=True)
    return 1 if failed else 0


def run_engines(args, entries, results: Path, logs: Path) -> int:
    engine = find_engine(args.engine_bin)
    if engine is None or not engine.exists():
        progress("engines: no 3.274.1 toolchain in the cache (and no --engine-bin): skipped")
        return 0
    ns = args.engine_ns or args.ns
    variants = []
    pinned = entries if entries and [e["n"] for e in entries] == ns else None
    if pinned is None:
        progress(f"engines: the pinned engine, N={ns}")
        pinned = wholestack.workload(ns, floor_rounds=args.floor_rounds, reap=not args.slow_reaping, logs=logs)
    variants.append({"label": "pinned engine", "engine": pinned[0]["engine"], "entries": pinned})
    skip = {"PULUMI_SKIP_CHECKPOINTS": "true"}
    with wholestack.shadow_cache(engine) as other:
        # 3.68 reads PULUMI_SKIP_CHECKPOINTS only with PULUMI_EXPERIMENTAL set (env.Needs(Experimental)):
        # without it the variable is silently ignored, so the pinned engine is measured with both.
        for label, cache, env, tag in (
                ("3.274.1", other, {}, "e"),
                ("3.274.1 + PULUMI_SKIP_CHECKPOINTS=true", other, skip, "s"),
                ("pinned + PULUMI_SKIP_CHECKPOINTS=true + PULUMI_EXPERIMENTAL=true", None,
                 {**skip, "PULUMI_EXPERIMENTAL": "true"}, "x")):
            progress(f"engines: {label} ({engine if cache else 'the pinned engine'}), N={ns}")
            got = wholestack.workload(ns, floor_rounds=args.floor_rounds, cache=cache, env=env, tag=tag,
                                      reap=not args.slow_reaping, logs=logs)
            variants.append({"label": label, "engine": got[0]["engine"], "entries": got})
            print(f"\n[{label}]\n" + report.table(got), flush=True)
    _write(results / "engines.json", variants)
    return sum(len(e["failures"]) for v in variants for e in v["entries"])


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="bench: %(message)s", stream=sys.stderr)
    # A SIGTERM (make interrupted, CI timeout) must still run the hosts' stop + purge.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(143))
    try:
        return run(args)
    except VdeskError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
