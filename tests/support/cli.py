"""Running vdesk's own front door (tools/vdesk) the way a user or a pipeline does, and killing it mid-run."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from components.processes import children
from tests.support.project import REPO, isolated_env

VDESK = REPO / "tools" / "vdesk"


class Front:
    """tools/vdesk for one stack file, with its own state dir (own embedded libvirtd, backend, journal)."""

    def __init__(self, tmp: Path, stack: str, config: dict):
        self.stack, self.state = stack, tmp / "state"
        self.file = tmp / f"Pulumi.{stack}.yaml"
        self.write(config)
        self.env = {**os.environ, **isolated_env(self.state), "VDESK_STACK_FILE": str(self.file)}

    def write(self, config: dict) -> None:
        self.file.write_text(yaml.safe_dump({"config": config}, sort_keys=False))

    def run(self, op: str, *args: str, ok: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess:
        done = subprocess.run([str(VDESK), op, self.stack, *args], env=self.env, cwd=REPO, capture_output=True,
                              text=True, timeout=timeout)
        print(f"$ vdesk {op} {self.stack}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        assert (done.returncode == 0) == ok, done.stdout[-2000:] + done.stderr[-2000:]
        return done

    def start(self, op: str, **env: str) -> subprocess.Popen:
        """Start `op` in a session of its own; its output goes to self.log (read it with `said`)."""
        self.log = self.state / f"run-{op}-{time.monotonic_ns()}.log"
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as out:
            return subprocess.Popen([str(VDESK), op, self.stack], env={**self.env, **env}, cwd=REPO,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def said(self) -> str:
        """What the last started run printed."""
        return self.log.read_text()

    def kill_at(self, op: str, point: str, *, timeout: float = 900) -> None:
        """Run `op` until it reaches fault point `point`, then SIGKILL the whole run, as a power cut would."""
        marker = self.state / f"fault-{point}"
        marker.unlink(missing_ok=True)
        run = self.start(op, VDESK_FAULT_AT=point, VDESK_FAULT_MARKER=str(marker))
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert run.poll() is None, f"`{op}` ended (rc {run.returncode}) before it reached {point}"
            assert time.monotonic() < deadline, f"`{op}` did not reach {point} within {timeout} s"
            time.sleep(0.2)
        kill_tree(run.pid)
        run.wait(timeout=60)


    def pause_at(self, op: str, point: str, *, timeout: float = 900) -> tuple[subprocess.Popen, Path]:
        """Start `op` and wait until it pauses at `point`; remove the returned marker to let it go on."""
        marker = self.state / f"pause-{point}"
        marker.unlink(missing_ok=True)
        run = self.start(op, VDESK_FAULT_AT=point, VDESK_FAULT_MARKER=str(marker), VDESK_FAULT_PAUSE="1")
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert run.poll() is None, f"`{op}` ended (rc {run.returncode}) before it reached {point}"
            assert time.monotonic() < deadline, f"`{op}` did not reach {point} within {timeout} s"
            time.sleep(0.2)
        return run, marker


def kill_tree(pid: int) -> None:
    """SIGKILL a run and everything it started (the engine starts its plugins in process groups of their
    own), as a power cut would: nothing of the run may live on to finish its work."""
    found = [pid, *children(pid, recursive=True)]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    for p in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
