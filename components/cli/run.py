"""vdesk's front door in one process: the mirror, the stack, the lock, recovery, the operation, access.

    python -m components.cli.run up|preview|plan|refresh|destroy|outputs|access|console STACK [args...]

Run by tools/vdesk once its environment is set (tools/env.sh). Each extra process
of a run is a fixed cost every run pays, a scheduled no-op drift run included
(bench/results/profile.md: 1.5-2.3 s per run when a shell chained them), so one
Python process does here what a workdir sync, `pulumi stack select`, a recovery
check and the access step did one process each. With a file backend the stack's
existence and its last deployment are read from the backend's files, not asked of
another engine start; the engine is started for the operation itself. Preview,
plan and outputs take no lock and run no recovery: only what changes a stack does.
"""
from __future__ import annotations

import fcntl
import getpass
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from . import workdir

OPERATIONS = ("up", "preview", "plan", "refresh", "destroy", "outputs", "access", "console")
CHANGES = ("up", "refresh", "destroy")                     # these take the stack's lock and recover first


def _trace(step: str) -> None:
    """With VDESK_TRACE_STEPS set (the bench's profile), a timestamped line per step, in the form of the
    shell's own trace of tools/vdesk, so one reader times both."""
    if os.environ.get("VDESK_TRACE_STEPS"):
        print(f"+ {time.time():.6f} {step}", file=sys.stderr, flush=True)


def _backend_stacks() -> Path | None:
    url = os.environ.get("PULUMI_BACKEND_URL", "")
    return Path(url[len("file://"):]) / ".pulumi" / "stacks" if url.startswith("file://") else None


def checkpoint_file(stack: str, project: str) -> Path | None:
    """The file backend's file of `stack` (project-scoped or legacy layout), or None (none, or another backend)."""
    stacks = _backend_stacks()
    if stacks is None:
        return None
    for folder in (stacks / project, stacks):
        for name in (f"{stack}.json", f"{stack}.json.gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def last_deployment(stack: str, project: str) -> dict | None:
    """The deployment `pulumi stack export` would print, read from a file backend; None when it cannot be read
    here (then ask the engine)."""
    file = checkpoint_file(stack, project)
    if file is None:
        return None
    try:
        raw = gzip.decompress(file.read_bytes()) if file.suffix == ".gz" else file.read_bytes()
        return (json.loads(raw).get("checkpoint") or {}).get("latest") or {}
    except (OSError, ValueError):
        return None


def ensure_stack(stack: str, project: str) -> None:
    """The stack exists in the backend afterwards (`pulumi stack init` when it is new); every later command
    names it with --stack, so nothing needs to select it."""
    if _backend_stacks() is not None:
        if checkpoint_file(stack, project) is not None:
            return
    elif subprocess.run(["pulumi", "stack", "select", stack], capture_output=True).returncode == 0:
        return
    subprocess.run(["pulumi", "stack", "init", stack, "--non-interactive"], stdout=subprocess.DEVNULL, check=True)


def take_lock(stack: str, op: str) -> int | None:
    """The stack's run lock, held by this process until it exits, however it exits (its descriptor is not
    inherited: a child that outlives the run holds nothing); None when another run holds it."""
    locks = Path(os.environ["VDESK_STATE"]) / "locks"
    locks.mkdir(mode=0o700, parents=True, exist_ok=True)     # the holder file says who runs what: ours only
    fd = os.open(locks / f"{stack}.lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    (locks / f"{stack}.holder").write_text(f"`{op}` (pid {os.getpid()}, {getpass.getuser()} on "
                                           f"{socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
    return fd


def _pulumi(*args: str) -> int:
    """Run the engine in the foreground: an interrupt reaches it (same process group) and it ends the
    operation cleanly; this process waits for it instead of dying first."""
    _trace(f"pulumi {' '.join(args[:1])}")
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        return subprocess.call(["pulumi", *args])
    finally:
        signal.signal(signal.SIGINT, previous)


def _migrate(stack: str, project: str, *, write: bool = True) -> list[str]:
    """A state of before is moved into the resources of now before the program runs (no key made again); a
    preview only asks whether one would move, since a preview writes nothing, state included."""
    _trace("components.cli.migrate")
    from . import migrate
    return migrate.migrate(stack, project, write=write)


def _project(work: Path) -> str:
    return (yaml.safe_load((work / "Pulumi.yaml").read_text()) or {}).get("name", "vdesk")


def run(op: str, stack: str, args: list[str]) -> int:
    _trace("components.cli.workdir mirror")
    work = workdir.sync(stack, Path(os.environ["VDESK_STATE"]))
    os.chdir(work)
    project = _project(work)
    _trace("stack check (pulumi stack init if new)")
    try:
        ensure_stack(stack, project)
    except subprocess.CalledProcessError as exc:
        return exc.returncode
    if op in ("preview", "plan") and (waiting := _migrate(stack, project, write=False)):
        print(f"vdesk: stack {stack}'s state keeps the credentials of {', '.join(waiting)} as three resources, "
              f"from before they were one; a preview writes nothing, so run `make up STACK={stack}` (or `python -m "
              f"components.cli.migrate {stack}`) once to move them, keeping every key", file=sys.stderr)
        return 1
    if op in ("preview", "outputs"):          # nothing else of this process is needed: the engine takes over
        argv = ["pulumi", "preview", "--non-interactive"] if op == "preview" else \
            ["pulumi", "stack", "output", "--json"]
        sys.stdout.flush()
        _trace(" ".join(argv[:3]))
        os.execvp("pulumi", [*argv, "--stack", stack, *args])
    if op in CHANGES:
        _trace("flock the stack's lock")
        if take_lock(stack, op) is None:
            holder = Path(os.environ["VDESK_STATE"]) / "locks" / f"{stack}.holder"
            who = holder.read_text().strip() if holder.exists() else "an unknown process"
            print(f"vdesk: stack {stack} is being changed by {who}; wait for it to finish (this run changed "
                  "nothing)", file=sys.stderr)
            return 3
        _trace("components.cli.recover")
        from . import recover
        try:
            cleared = recover.recover(stack, project)
        except (recover.RecoveryError, subprocess.CalledProcessError) as exc:
            print(f"vdesk: {exc}", file=sys.stderr)
            return 1
        if cleared:
            print(f"vdesk: stack {stack} was interrupted: cleared {'; '.join(cleared)}, and refreshed the state "
                  "from the hosts", file=sys.stderr)
        if op != "destroy":
            _migrate(stack, project)
    sys.stdout.flush()
    if op == "up":
        rc = _pulumi("up", "--yes", "--skip-preview", "--non-interactive", "--stack", stack, *args)
        if rc:
            return rc
        _trace("components.cli.access")
        from . import access
        deployment = last_deployment(stack, project)      # the program wrote the files: print from the file
        return access.main([stack], access.plain_outputs(deployment) if deployment is not None else None)
    if op == "refresh":
        return _pulumi("refresh", "--yes", "--non-interactive", "--stack", stack, *args)
    if op == "destroy":
        _trace("destroy summary")
        from . import plan
        deployment = last_deployment(stack, project)
        try:
            if deployment is None:
                plan.main(["--destroy", stack])
            else:
                print(plan.destroy_summary(stack, deployment))
        except (subprocess.CalledProcessError, OSError, ValueError, KeyError) as exc:   # a summary, not a gate
            print(f"vdesk: (no summary of what destroy removes: {exc})", file=sys.stderr)
        sys.stdout.flush()
        return _pulumi("destroy", "--yes", "--non-interactive", "--stack", stack, *args)
    if op == "plan":
        from . import plan
        return plan.main([stack])
    if op == "access":
        from . import access
        return access.main([stack])
    from . import console
    return console.main([stack, *args])


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in OPERATIONS:
        print(f"usage: tools/vdesk {'|'.join(OPERATIONS)} [STACK] [pulumi args...]", file=sys.stderr)
        return 2
    return run(argv[0], argv[1], argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
