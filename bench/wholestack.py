"""What a user waits for: whole `up`, no-op `up`, `preview`, `refresh` and `destroy` of N stopped desktops.

Each operation runs through vdesk's front door (`tools/vdesk OP STACK`, as
`make up` does) with a state dir of the bench's own (its own embedded libvirtd,
Pulumi backend and passphrase) and a stack file the bench writes: N desktops
declared `running: false`, so what is timed is provisioning through the
engine, the program, the dynamic-provider server and the state writes, not TCG
boots.  The host is started before the clock (under the bench's subreaper, see
reaper.py) and each stack is initialised untimed (`tools/vdesk outputs`).  The
raw floor (floor.py) and the peer, kcli (peer.py), are measured on the same
host, around vdesk's run.

While each operation runs, a thread samples the process tree (procwatch.py):
peak RSS of the engine, the program and the provider server.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import libvirt
import yaml

from components.host import embedded
from components.images import golden

from . import floor, peer
from .procwatch import CLASSES, ProcWatcher
from .reaper import start_under_reaper

REPO = Path(__file__).resolve().parents[1]
VDESK = REPO / "tools" / "vdesk"
OPERATIONS = ("up", "noop_up", "preview", "refresh", "destroy")
HOST = "local"
CIDR, FLOOR_CIDR, PEER_CIDR = "10.79.0.0/24", "10.79.1.0/24", "10.79.2.0/24"
DESKTOP = {"memory": "768MiB", "vcpus": 1, "disk": "4GiB"}
FLOOR_WORKERS = 8


def progress(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def stack_config(n: int, *, running: bool = False, cidr: str = CIDR, checks: list | None = None) -> dict:
    """The stack file's `config:` for n desktops d00.. on the embedded host (one user each)."""
    desktops = {}
    for i in range(n):
        d = {"pool": "main", "network": "lan", "image": "debian12", **DESKTOP, "users": [{"name": f"u{i:02d}"}],
             "running": running}
        if checks is not None:
            d["checks"] = checks
        desktops[f"d{i:02d}"] = d
    return {
        "vdesk:hosts": {HOST: {"uri": "embedded", "accelerator": "tcg"}},
        "vdesk:pools": {"main": {"host": HOST}},
        "vdesk:networks": {"lan": {"host": HOST, "cidr": cidr}},
        "vdesk:images": {"debian12": {"golden": "debian12"}},
        "vdesk:desktops": desktops,
        "vdesk:timeouts": {"address": 300, "ssh": 300, "cloud_init": 600, "shutdown": 20},
    }


# --- the front door --------------------------------------------------------------------------

_DURATION = re.compile(r"Duration:\s*((?:\d+(?:\.\d+)?(?:h|m|s|ms))+)")


def go_duration_s(text: str) -> float | None:
    """Seconds of a Go duration such as 1m2.5s."""
    total = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total if text else None


@dataclass
class OpResult:
    op: str
    seconds: float
    rc: int
    peaks_kib: dict
    engine_duration_s: float | None
    summary: str                      # the engine's "Resources:" lines, flattened
    output_tail: str
    extra: dict = field(default_factory=dict)


class FrontDoor:
    """tools/vdesk for one stack file, with the bench's state dir; optional other cache (another engine)."""

    def __init__(self, state: Path, stack: str, config: dict, *, cache: Path | None = None,
                 env: dict | None = None, logs: Path | None = None):
        self.state, self.stack = state, stack
        self.file = state / f"Pulumi.{stack}.yaml"
        self.file.write_text(yaml.safe_dump({"config": config}, sort_keys=False))
        self.logs = logs or state / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items()
                if not k.startswith("PULUMI_") and k not in ("VDESK_STATE", "VDESK_STACK_FILE")}
        self.env = {**base, "VDESK_STATE": str(state), "VDESK_STACK_FILE": str(self.file),
                    "PULUMI_BACKEND_URL": f"file://{state / 'backend'}", "PULUMI_HOME": str(state / "pulumi-home"),
                    "PULUMI_CONFIG_PASSPHRASE": "vdesk-bench", "PULUMI_SKIP_UPDATE_CHECK": "true",
                    **({"VDESK_CACHE": str(cache)} if cache else {}), **(env or {})}
        (state / "backend").mkdir(parents=True, exist_ok=True)

    def run(self, op: str, *args: str, label: str | None = None, timeout: float = 3600,
            on_new: Callable | None = None, during: Callable | None = None) -> OpResult:
        """Run `tools/vdesk op stack args...`; wall time, exit code, peaks by process class."""
        label = label or op
        log = self.logs / f"{self.stack}-{label}.log"
        with open(log, "w") as out:
            started = time.perf_counter()
            proc = subprocess.Popen([str(VDESK), op, self.stack, *args], env=self.env, cwd=REPO,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            with ProcWatcher(proc.pid, on_new=on_new) as watch:
                if during:
                    during(proc)
                try:
                    rc = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    rc = proc.wait()
            seconds = time.perf_counter() - started
            t_end_epoch = time.time()
        text = log.read_text(errors="replace")
        match = _DURATION.search(text)
        summary = ""
        if "Resources:" in text:
            block = text.rsplit("Resources:", 1)[1].split("Duration:", 1)[0]
            summary = ", ".join(" ".join(line.split()) for line in block.strip().splitlines() if line.strip())
        return OpResult(label, seconds, rc, watch.peaks_kib(), go_duration_s(match.group(1)) if match else None,
                        summary, text[-2500:], {"processes": len(watch.procs), "t_end_epoch": t_end_epoch})


# --- another engine: a cache dir whose toolchain entry is that engine -------------------------

@contextlib.contextmanager
def shadow_cache(engine_bin: Path) -> Iterator[Path]:
    """A VDESK_CACHE that is the user's cache, except that the toolchain the front door finds
    (tools/build-pulumi.sh --print-path) is `engine_bin`'s directory: tools/ stay unchanged."""
    real = Path(os.environ.get("VDESK_CACHE") or Path.home() / ".cache" / "vdesk")
    want = subprocess.run([str(REPO / "tools" / "build-pulumi.sh"), "--print-path"], check=True,
                          capture_output=True, text=True).stdout.strip().splitlines()[-1]
    toolchain_entry = Path(want).parent.name          # pulumi-v<pinned>-<recipe>
    root = Path(tempfile.mkdtemp(prefix="vdesk-bench-cache-"))
    try:
        for entry in real.iterdir():
            if entry.name != "toolchain":
                (root / entry.name).symlink_to(entry)
        (root / "toolchain").mkdir()
        (root / "toolchain" / toolchain_entry).symlink_to(engine_bin.parent.parent)   # <toolchain>/bin/pulumi
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- one host for the whole workload --------------------------------------------------------

@dataclass
class Bed:
    root: Path
    host: embedded.EmbeddedHost

    @property
    def uri(self) -> str:
        return self.host.uri


@contextlib.contextmanager
def bed(reap: bool = True) -> Iterator[Bed]:
    """A state root of the bench's own with its embedded host `local` running; stopped and purged after."""
    root = Path(tempfile.mkdtemp(prefix="vdb-", dir="/tmp"))   # short: the host's socket path must fit
    host = embedded.embedded_host(HOST, state_root=root)
    reaper = None
    try:
        if reap:
            reaper = start_under_reaper(host)
        else:
            embedded.ensure_running(host)
        yield Bed(root, host)
    finally:
        try:
            embedded.stop(host, purge=True)
        finally:
            if reaper is not None:
                reaper.close()
            shutil.rmtree(root, ignore_errors=True)


def counts(uri: str) -> dict:
    with contextlib.closing(libvirt.open(uri)) as conn:
        return {"domains": len(conn.listAllDomains(0)), "networks": len(conn.listAllNetworks(0)),
                "pools": len(conn.listAllStoragePools(0))}


# --- the workload ------------------------------------------------------------------------------

def _mib(kib: float) -> float:
    return round(kib / 1024, 1)


def _ratio(a, b):
    return round(a / b, 2) if a and b else None


def machine() -> dict:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cores": os.cpu_count(), "cpu": model}


def engine_version(front: FrontDoor) -> str:
    out = subprocess.run(["bash", "-c", f". {REPO}/tools/env.sh && pulumi version"], env=front.env,
                         capture_output=True, text=True)
    return out.stdout.strip() or out.stderr.strip()[-200:]


def ratios(vd: dict, fl: dict, kc: dict | None) -> dict:
    """vdesk against the floor and against kcli, and kcli against the floor (None where a side is missing)."""
    kc = kc or {}
    return {
        "up": _ratio(vd["up"], fl["up"]), "destroy": _ratio(vd["destroy"], fl["destroy"]),
        "noop_up_vs_floor_up": _ratio(vd["noop_up"], fl["up"]),
        "preview_vs_floor_up": _ratio(vd["preview"], fl["up"]),
        "refresh_vs_floor_up": _ratio(vd["refresh"], fl["up"]),
        "up_vs_kcli_create": _ratio(vd["up"], kc.get("create")),
        "destroy_vs_kcli_delete": _ratio(vd["destroy"], kc.get("delete")),
        "kcli_create_vs_floor_up": _ratio(kc.get("create"), fl["up"]),
        "kcli_delete_vs_floor_destroy": _ratio(kc.get("delete"), fl["destroy"]),
    }


def run_n(b: Bed, n: int, *, floor_rounds: int = 3, cache: Path | None = None, env: dict | None = None,
          tag: str = "", keep_logs: Path | None = None, kcli: Path | None = None, kcli_rounds: int = 2) -> dict:
    """One N: the floor and kcli (rounds around vdesk's run) and vdesk's five operations; one JSON entry."""
    stack = f"b{n}{tag}"
    front = FrontDoor(b.root, stack, stack_config(n), cache=cache, env=env, logs=keep_logs)
    image = golden.resolve(golden.ImageSource("debian12", "debian12", None, "kernel"))
    host_dir = b.host.state_dir
    fp = floor.plan(b.uri, pool_root=str(host_dir / "pools"), image=image, n=n,
                    disk_bytes=4 * 1024**3, memory_mib=768, vcpus=1, domain_type="qemu", cidr=FLOOR_CIDR,
                    display_dir=str(host_dir / "displays"), qemu_log_dir=str(host_dir / "log" / "qemu"))
    failures: list[str] = []
    floor_runs: list[floor.FloorRun] = []
    kcli_runs: list[peer.PeerRound] = []
    kcli_side = None
    if kcli is not None and kcli_rounds > 0:
        pp = peer.plan(n, disk=image.disk, pool_root=str(host_dir / "pools"), cidr=PEER_CIDR,
                       memory_mib=768, vcpus=1, disk_gib=4, name=f"b{n}{tag}")
        kcli_side = peer.Kcli(kcli, b.uri, pp, home=b.root / f"kcli-home-{n}{tag}", logs=keep_logs or b.root / "logs")

    def kcli_round(i: int) -> None:
        r = kcli_side.round()
        kcli_runs.append(r)
        for f in r.failures:
            failures.append(f"kcli round {i + 1}: {f}")
            progress(f"N={n}{tag}: KCLI FAILED: {f[:400]}")
        progress(f"N={n}{tag}: kcli round {i + 1}/{kcli_rounds}: create {r.create_s}s, delete {r.delete_s}s")

    def floor_round(i: int) -> None:
        try:
            r = floor.run_bounded(fp, FLOOR_WORKERS)
        except (libvirt.libvirtError, floor.FloorError) as exc:
            failures.append(f"floor round {i}: {exc}")
            return
        floor_runs.append(r)
        progress(f"N={n}{tag}: floor round {i + 1}/{floor_rounds}: up {r.up_s:.2f}s, destroy {r.destroy_s:.2f}s")

    load_before = os.getloadavg()
    init = front.run("outputs", label="init")       # `pulumi stack init` of a new stack, untimed
    if init.rc != 0:
        failures.append(f"init: rc {init.rc}: {init.output_tail[-300:]}")
    floor_round(0)
    kcli_before = (kcli_rounds + 1) // 2 if kcli_side else 0
    for i in range(kcli_before):
        kcli_round(i)

    results: dict[str, OpResult] = {}
    plan_ops = [("up", ("up",)), ("noop_up", ("up",)), ("preview", ("preview",)), ("refresh", ("refresh",)),
                ("destroy", ("destroy",))]
    alloc = {}
    for label, (op, *args) in plan_ops:
        progress(f"N={n}{tag}: vdesk {label} ...")
        r = front.run(op, *args, label=label)
        results[label] = r
        progress(f"N={n}{tag}: vdesk {label} {r.seconds:.2f}s (rc {r.rc}; engine says {r.engine_duration_s}s; "
                 f"{r.summary or 'no summary'})")
        if r.rc != 0:
            failures.append(f"{label}: rc {r.rc}: {r.output_tail[-600:]}")
            if label == "up":
                break
        if label == "up":
            have = counts(b.uri)
            if have["domains"] != n:
                failures.append(f"up: {have['domains']} domains on the host, expected {n}")
            with contextlib.closing(libvirt.open(b.uri)) as conn:
                disk, seed = floor.volume_allocations(conn, f"{stack}-main",
                                                      [f"{stack}-d{i:02d}.qcow2" for i in range(n)],
                                                      [f"{stack}-d{i:02d}-seed.iso" for i in range(n)])
            alloc["vdesk"] = _alloc_summary(disk, seed)
    if "destroy" not in results or results["destroy"].rc != 0:
        progress(f"N={n}{tag}: destroying what is left")
        front.run("destroy", label="cleanup")
    left = counts(b.uri)
    if any(left.values()):
        failures.append(f"left after destroy: {left}")
    if kcli_side:
        for i in range(kcli_before, kcli_rounds):
            kcli_round(i)
    for i in range(1, floor_rounds):
        floor_round(i)
    load_after = os.getloadavg()

    if floor_runs:
        alloc["floor"] = _alloc_summary(floor_runs[0].alloc_disk_kib, floor_runs[0].alloc_seed_kib)
    fl = {"up": round(statistics.median(r.up_s for r in floor_runs), 3) if floor_runs else None,
          "destroy": round(statistics.median(r.destroy_s for r in floor_runs), 3) if floor_runs else None}
    vd = {op: round(results[op].seconds, 3) if op in results and results[op].rc == 0 else None for op in OPERATIONS}
    kc = peer.summary(kcli_runs, peer.version(kcli, kcli_side.env)) if kcli_side else None
    entry = {
        "n": n,
        "vdesk": vd,
        "floor": fl,
        "kcli": kc,
        "ratios": ratios(vd, fl, kc),
        "engine_reported_s": {op: r.engine_duration_s for op, r in results.items()},
        "peak_rss_mib": {op: {c: _mib(r.peaks_kib.get(c, 0)) for c in CLASSES} for op, r in results.items()},
        "allocation_kib": alloc,
        "floor_rounds": [{"up": round(r.up_s, 3), "destroy": round(r.destroy_s, 3)} for r in floor_runs],
        "floor_workers": FLOOR_WORKERS,
        "summaries": {op: r.summary for op, r in results.items()},
        "engine": engine_version(front),
        "env": env or {},
        "machine": {**machine(), "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in load_after]},
        "failures": failures,
    }
    return entry


def _alloc_summary(disk: list[float], seed: list[float]) -> dict:
    return {"disk_median": round(statistics.median(disk), 1), "disk_max": round(max(disk), 1),
            "seed_median": round(statistics.median(seed), 1), "seed_max": round(max(seed), 1),
            "per_desktop_median": round(statistics.median(d + s for d, s in zip(disk, seed)), 1)}


def add_noop_ratios(entries: list[dict]) -> None:
    """no-op up of N against the no-op up of N=1 (when N=1 was measured)."""
    one = next((e for e in entries if e["n"] == 1 and e["vdesk"]["noop_up"]), None)
    for e in entries:
        e["ratios"]["noop_up_vs_noop_up_1"] = _ratio(e["vdesk"]["noop_up"], one["vdesk"]["noop_up"]) if one else None


def workload(ns: list[int], *, floor_rounds: int = 3, cache: Path | None = None, env: dict | None = None,
             tag: str = "", reap: bool = True, logs: Path | None = None) -> list[dict]:
    """Every N on one host; returns the JSON entries (without kcli: the engine variants compare vdesk with
    itself)."""
    entries = []
    with bed(reap) as b:
        progress(f"host ready at {b.root}")
        for n in ns:
            entries.append(run_n(b, n, floor_rounds=floor_rounds, cache=cache, env=env, tag=tag, keep_logs=logs))
    add_noop_ratios(entries)
    return entries

