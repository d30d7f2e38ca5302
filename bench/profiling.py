"""Where the time of a whole `up` of N stopped desktops goes.

Three views of one `up` and one `destroy` (default N=60), each through the front door:

- the front door's own steps, from a `bash -x` trace of tools/vdesk with
  timestamps and the same trace from components/cli/run.py (env.sh, the
  Python start, workdir mirror, stack check, lock, recovery check, `pulumi
  up`, the access step);
- the engine's CPU profile (`pulumi up --profiling`, Go pprof), summarised
  with `go tool pprof -top`;
- py-spy samples of the program (the Python process running __main__.py) and
  of the dynamic-provider server, when py-spy is installed (it is optional:
  `pip install --target $VDESK_CACHE/py-spy py-spy`).
"""
from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
from pathlib import Path

from .wholestack import REPO, Bed, FrontDoor, counts, progress, stack_config

TOP = 20


def find_py_spy() -> str | None:
    cache = Path(os.environ.get("VDESK_CACHE") or Path.home() / ".cache" / "vdesk")
    for candidate in (shutil.which("py-spy"), cache / "py-spy" / "bin" / "py-spy"):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


class PySpies:
    """Attach py-spy to each program / provider Python process as it appears."""

    def __init__(self, py_spy: str | None, out: Path, label: str):
        self.py_spy, self.out, self.label = py_spy, out, label
        self.procs: list[tuple[str, Path, subprocess.Popen]] = []
        self.attached: set[int] = set()

    def on_new(self, seen, _cmdline) -> None:
        if not self.py_spy or seen.cls not in ("program", "provider") or not seen.comm.startswith("python"):
            return
        if seen.pid in self.attached:
            return
        self.attached.add(seen.pid)
        path = self.out / f"pyspy-{self.label}-{seen.cls}-{seen.pid}.txt"
        proc = subprocess.Popen([self.py_spy, "record", "--pid", str(seen.pid), "--rate", "100", "--format", "raw",
                                 "--nonblocking", "--output", str(path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append((seen.cls, path, proc))

    def finish(self) -> dict[str, list[Path]]:
        files: dict[str, list[Path]] = collections.defaultdict(list)
        for cls, path, proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait()
            if path.exists():
                files[cls].append(path)
        return dict(files)


def _func(frame: str) -> str:
    # py-spy raw frames: "function (path/to/file.py:123)"; keep function and short file, drop the line
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame.strip())
    if not m:
        return frame.strip()
    func, path = m.groups()
    parts = Path(path).parts
    short = "/".join(parts[parts.index("site-packages") + 1:] if "site-packages" in parts else parts[-2:])
    return f"{func} ({short})"


# Frames every sample passes through (threads, event loop, gRPC server plumbing): left out of the
# inclusive table, which would otherwise open with a dozen rows at 100 %.
_PLUMBING = ("(threading.py)", "(asyncio/", "(futures/thread.py)", "(<frozen runpy>)", "(grpc/_server.py)",
             "(selectors.py)", "(pulumi-language-python-exec)", "(runtime/stack.py)", "(dynamic/__main__.py)")


def summarise_py_spy(paths: list[Path]) -> dict:
    """Self and inclusive sample counts per function, over all files (collapsed stacks)."""
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [_func(f) for f in stack.split(";") if f and not f.startswith("process ")
                      and not f.startswith("thread ")]
            if not frames:
                continue
            total += n
            own[frames[-1]] += n
            for f in set(frames):
                if not any(p in f for p in _PLUMBING):
                    incl[f] += n
    return {"samples": total, "rate_hz": 100, "self": own.most_common(TOP), "inclusive": incl.most_common(TOP)}


ENGINE_PARTS = ("pulumi/pulumi", "pbkdf2", "encoding/json", "gocloud.dev", "compress/", "crypto/")


def pprof_top(binary: str, profile: Path, cum: bool, nodecount: int = TOP, only: tuple[str, ...] = ()) -> dict:
    """`go tool pprof -top` of a CPU profile: total sampled seconds and the top rows (`only`: rows whose
    function names one of these, for the engine's own subsystems among the runtime's frames)."""
    go = shutil.which("go")
    if not go:
        return {"error": "go not found: cannot read the engine's pprof file"}
    args = [go, "tool", "pprof", "-top", f"-nodecount={nodecount}"] + (["-cum"] if cum else []) + [binary,
                                                                                                    str(profile)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if out.returncode:
        return {"error": out.stderr[-500:]}
    header, rows = [], []
    for line in out.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 6 and re.match(r"^[0-9.]+(ms|s|us|ns|min|h)?$", cols[0]) and cols[1].endswith("%"):
            rows.append({"flat": cols[0], "flat%": cols[1], "cum": cols[3], "cum%": cols[4],
                         "function": " ".join(cols[5:])})
        elif not rows:
            header.append(line)
    if only:
        rows = [r for r in rows if any(o in r["function"] for o in only)][:TOP]
    return {"header": [h for h in header if h.strip()], "rows": rows}


def trace_front_door(log_text: str, end_epoch: float | None = None) -> list[tuple[str, float]]:
    """Seconds per top-level line of tools/vdesk, from its trace (PS4 '+ ${EPOCHREALTIME} ').

    A line is printed once its expansions are done and before it runs: the time up to the next
    top-level line is its own, except that command substitutions (`++` lines) printed in between
    belong to that next line (`cd "$(python -m components.cli.workdir)"`)."""
    events = []
    for line in log_text.splitlines():
        m = re.match(r"^(\++) (\d+\.\d+) (.*)$", line)
        if m:
            events.append((len(m.group(1)), float(m.group(2)), m.group(3)))
    if end_epoch:
        events.append((1, end_epoch, "(exit)"))
    steps = []
    top = [i for i, e in enumerate(events) if e[0] == 1]
    for a, b in zip(top, top[1:]):
        t_a, t_b = events[a][1], events[b][1]
        nested = [e for e in events[a + 1:b] if e[0] > 1]
        split = nested[0][1] if nested else t_b
        steps.append((events[a][2], split - t_a))
        if nested:
            steps.append((events[b][2], t_b - split))
    return steps


def _step_name(cmd: str) -> str:
    for key, name in (("components.cli.run", "front door's python start"),
                      ("components.cli.workdir", "workdir mirror (python)"),
                      ("stack check", "stack check (backend file; pulumi stack init if new)"),
                      ("components.cli.recover", "recover (python; pulumi only after a killed run)"),
                      ("components.cli.migrate", "state migration check (python, from the backend file)"),
                      ("components.cli.access", "access step (python: prints from the checkpoint)"),
                      ("destroy summary", "destroy summary (python, from the backend file)"),
                      ("pulumi stack select", "pulumi stack select"), ("pulumi up", "pulumi up"),
                      ("pulumi destroy", "pulumi destroy"), ("pulumi preview", "pulumi preview"),
                      ("pulumi refresh", "pulumi refresh"), ("env.sh", "source env.sh"),
                      ("flock", "lock"), ("cd ", "cd")):
        if key in cmd:
            return name
    return "other shell steps"


def breakdown(steps: list[tuple[str, float]]) -> list[tuple[str, float]]:
    total: dict[str, float] = collections.defaultdict(float)
    for cmd, seconds in steps:
        total[_step_name(cmd)] += seconds
    return sorted(total.items(), key=lambda kv: -kv[1])


def measure(b: Bed, n: int, out: Path, logs: Path) -> dict:
    """Profile `up`, no-op `up` and `destroy` of n stopped desktops; returns the summary (JSON-able)."""
    out.mkdir(parents=True, exist_ok=True)
    py_spy = find_py_spy()
    stack = f"p{n}"
    front = FrontDoor(b.root, stack, stack_config(n), logs=logs)
    front.run("outputs", label="init")
    engine_bin = subprocess.run(["bash", "-c", f". {REPO}/tools/env.sh && command -v pulumi"], env=front.env,
                                capture_output=True, text=True).stdout.strip()
    result: dict = {"n": n, "py_spy": py_spy, "engine_binary": engine_bin, "ops": {}}
    for label, op in (("up", "up"), ("noop_up", "up"), ("destroy", "destroy")):
        prof_dir = out / label
        shutil.rmtree(prof_dir, ignore_errors=True)
        prof_dir.mkdir()
        spies = PySpies(py_spy, prof_dir, label)
        progress(f"profile N={n}: {label} with --profiling{' and py-spy' if py_spy else ''} ...")
        traced = _traced(front)
        r = traced.run(op, "--profiling", str(prof_dir / "engine"), label=f"profile-{label}", on_new=spies.on_new)
        pyspy_files = spies.finish()
        progress(f"profile N={n}: {label} {r.seconds:.1f}s rc {r.rc}")
        log_text = (logs / f"{stack}-profile-{label}.log").read_text(errors="replace")
        entry: dict = {"seconds": round(r.seconds, 2), "rc": r.rc, "engine_reported_s": r.engine_duration_s,
                       "front_door": [(k, round(v, 2)) for k, v in breakdown(trace_front_door(log_text, r.extra.get("t_end_epoch")))]}
        cpu = sorted(prof_dir.glob("engine.*.cpu"), key=lambda p: p.stat().st_size)
        if cpu:
            # the biggest profile is the `pulumi up`/`destroy` itself (recover's stack export makes one too)
            entry["engine_flat"] = pprof_top(engine_bin, cpu[-1], cum=False)
            entry["engine_cum"] = pprof_top(engine_bin, cpu[-1], cum=True)
            entry["engine_subsystems"] = pprof_top(engine_bin, cpu[-1], cum=True, nodecount=400, only=ENGINE_PARTS)
        for cls, files in pyspy_files.items():
            entry[f"py_spy_{cls}"] = summarise_py_spy(files)
        result["ops"][label] = entry
    left = counts(b.uri)
    if any(left.values()):
        result["left_behind"] = left
    return result


def _traced(front: FrontDoor) -> FrontDoor:
    """The same front door with tools/vdesk traced (`set -x`, a timestamp per line) through BASH_ENV.

    (bash ignores PS4 from the environment when run as root, and only tools/vdesk itself is traced:
    the scripts it calls read BASH_ENV too, so the file checks the script's name.)"""
    rc = front.state / "trace-vdesk.sh"
    rc.write_text("if [ \"${0##*/}\" = vdesk ]; then PS4='+ ${EPOCHREALTIME} '; set -x; fi\n")
    t = FrontDoor.__new__(FrontDoor)
    t.__dict__.update(front.__dict__)
    t.env = {**front.env, "BASH_ENV": str(rc), "VDESK_TRACE_STEPS": "1"}
    return t
