"""Run a stack's declared checks (guest/checkspec.py) through the testinfra-style objects, and report them.

One engine for desktops and containers: `run_checks` takes a GuestHost or any Backend (a desktop's SSH
session, a container's namespace exec), and each check kind is a table entry that asks the check objects of
guest/checks.py, so each probe has one implementation. The entries only choose which command decided and
say why in words; a transport error is a failed outcome with no exit code, never an exception.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from . import GuestError
from .checks import INSTALLED, Backend, GuestHost, login_sessions, parse_ss
from .checkspec import Check
from .ssh import CommandResult, render_command

OUTPUT_MAX_LINES = 20
OUTPUT_MAX_CHARS = 2000
# A graphical session starts beside cloud-init, not after it: the session check waits this long by default.
SESSION_WITHIN_S = 300
SESSION_POLL_S = 3.0
_clock, _sleep = time.monotonic, time.sleep     # replaced in unit tests


@dataclass(frozen=True)
class CheckOutcome:
    """What running one check found: the deciding command, its exit code and trimmed output."""

    check: Check
    passed: bool
    command: str
    rc: int | None
    output: str
    reason: str = ""


@dataclass(frozen=True)
class _Step:
    """The result of one command of a check; rc None: the command could not be run."""

    command: str
    rc: int | None
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return "\n".join(part.rstrip("\n") for part in (self.stdout, self.stderr) if part.strip())


class _Recorder:
    """The backend as the check objects see it during one check: every result is kept, and a transport error
    becomes a result without an exit code, so the objects answer "no" and the check fails saying why."""

    def __init__(self, backend: Backend):
        self._backend = backend
        self.steps: list[_Step] = []

    def run(self, command: str | Sequence[str], sudo: bool = False) -> CommandResult:
        shown = render_command(command, sudo=sudo)
        try:
            result = self._backend.run(command, sudo=sudo)
        except (GuestError, OSError) as exc:
            step = _Step(shown, None, "", f"could not run the command: {exc}")
        else:
            step = _Step(result.command or shown, result.rc, result.stdout or "", result.stderr or "")
        self.steps.append(step)
        return CommandResult(step.command, step.rc, step.stdout, step.stderr)


# A probe answers (passed, why it failed, the step that decided) from the check objects.
_Probe = Callable[[GuestHost, Check, list], tuple[bool, str, _Step]]


def _package(host: GuestHost, check: Check, steps: list) -> tuple[bool, str, _Step]:
    status = host.package(check.target).status
    step = steps[-1]
    if step.rc is None:
        return False, "", step
    if status == INSTALLED:
        return True, "", step
    if step.rc == 0:
        return False, f"dpkg reports {status!r}, not {INSTALLED!r}", step
    if step.rc == 1:
        return False, "dpkg does not know this package", step
    return False, f"dpkg-query failed with exit code {step.rc}", step


def _absent_package(host: GuestHost, check: Check, steps: list) -> tuple[bool, str, _Step]:
    status = host.package(check.target).status
    step = steps[-1]
    if step.rc is None:
        return False, "", step
    if step.rc == 0 and status == INSTALLED:
        return False, "the package is installed", step
    if step.rc in (0, 1):  # 1: dpkg has never heard of it
        return True, "", step
    return False, f"dpkg-query failed with exit code {step.rc}", step


def _service(host: GuestHost, check: Check, steps: list) -> tuple[bool, str, _Step]:
    service = host.service(check.target)
    if not service.is_running:
        state = steps[-1].stdout.strip()
        return False, f"systemd reports the unit {state}" if state else "systemctl could not tell (see output)", \
            steps[-1]
    if check.options.get("enabled") and not service.is_enabled:
        state = steps[-1].stdout.strip() or "no answer"
        return False, f"the unit is running but not enabled (is-enabled: {state})", steps[-1]
    return True, "", steps[-1]


def _file(host: GuestHost, check: Check, steps: list) -> tuple[bool, str, _Step]:
    file, text = host.file(check.target), check.options.get("contains")
    if text is None:
        return file.exists, "no such file or directory (or not readable)", steps[-1]
    try:
        found = file.contains(text)
    except GuestError:      # it is there but cannot be read or searched: the first command says why
        found = False
    first = steps[0]        # cat (a text of several lines) or grep: what decided
    if "\n" in text:
        if first.rc != 0:
            return False, "the file could not be read", first
        # The content itself is not worth showing in a report; the reason says what was missing.
        return found, f"the file does not contain {text!r}", _Step(first.command, first.rc, "", first.stderr)
    if first.rc == 1:
        return False, f"{text!r} not found in {check.target}", first
    return found, "the file could not be searched", first


def _port(host: GuestHost, check: Check, steps: list) -> tuple[bool, str, _Step]:
    proto, rest = check.target.split("/", 1)
    socket = host.socket(f"{proto}://{rest}")
    try:
        listening = socket.is_listening
    except GuestError:
        return False, "could not list sockets with ss", steps[-1]
    if listening:
        return True, "", steps[-1]
    ports = sorted({listener.port for listener in parse_ss(steps[-1].stdout) if listener.protocol == proto})
    listing = ", ".join(str(p) for p in ports) or "none"
    return False, f"nothing listens there; listening {proto} ports: {listing}", steps[-1]


def _user(host: GuestHost, check: Check, steps: list) -> tuple[bool, str, _Step]:
    user = host.user(check.target)
    if not user.exists:
        return False, "no such user", steps[-1]
    wanted = check.options.get("groups")
    if not wanted:
        return True, "", steps[-1]
    try:
        groups = user.groups
    except GuestError:
        return False, "could not list the user's groups", steps[1]     # id -Gn, after getent
    missing = [g for g in wanted if g not in groups]
    return not missing, f"not in group(s) {', '.join(missing)}", steps[-1]


def _command(host: GuestHost, check: Check, steps: list) -> tuple[bool, str, _Step]:
    result = host.run(check.target, sudo=bool(check.options.get("sudo")))
    step = steps[-1]
    if result.rc != 0:
        return False, "non-zero exit code" if result.rc is not None else "", step
    pattern = check.options.get("output_matches")
    if pattern is not None and not re.search(pattern, result.stdout, re.MULTILINE):
        return False, f"stdout does not match {pattern!r}", step
    return True, "", step


def _session(host: GuestHost, check: Check, steps: list) -> tuple[bool, str, _Step]:
    """Ask logind for the user's sessions until one is graphical (x11/wayland) and active, or time is up."""
    within = check.options.get("within", SESSION_WITHIN_S)
    deadline = _clock() + within
    while True:
        try:
            sessions = login_sessions(host)
        except GuestError:
            sessions = []
        step = steps[-1]
        if any(s.user == check.target and s.graphical and s.active for s in sessions):
            return True, "", _Step(step.command, step.rc, "", "")
        if _clock() >= deadline:
            break
        _sleep(min(SESSION_POLL_S, max(0.0, deadline - _clock())))
    if step.rc != 0:
        return False, "could not list the login sessions (loginctl)", step
    own = [s for s in sessions if s.user == check.target]
    waited = f" after waiting {within} s" if within else ""
    if not own:
        why = f"{check.target} has no login session{waited}"
    else:
        why = f"none of {check.target}'s sessions is graphical and active{waited}"
    listing = "\n".join(s.describe() for s in sessions) or "(no sessions at all)"
    return False, why, _Step(step.command, step.rc, listing, "")


PROBES: dict[str, _Probe] = {
    "package": _package,
    "absent_package": _absent_package,
    "service": _service,
    "file": _file,
    "port": _port,
    "user": _user,
    "command": _command,
    "session": _session,
}


def run_checks(host: GuestHost | Backend, checks: Sequence[Check]) -> list[CheckOutcome]:
    """Run every check through one backend and return one outcome each, in order; never raises for a failure."""
    backend = host.backend if isinstance(host, GuestHost) else host
    return [_run_one(backend, check) for check in checks]


def _run_one(backend: Backend, check: Check) -> CheckOutcome:
    recorder = _Recorder(backend)
    passed, reason, step = PROBES[check.kind](GuestHost(recorder), check, recorder.steps)
    if step.rc is None and not reason:
        reason = "the command could not be run"
    return CheckOutcome(check, passed, step.command, step.rc, trim_output(step.output), "" if passed else reason)


def trim_output(text: str, max_lines: int = OUTPUT_MAX_LINES, max_chars: int = OUTPUT_MAX_CHARS) -> str:
    """The last max_lines lines (at most max_chars characters) of text, saying how much was cut."""
    lines = text.rstrip().splitlines()
    kept = lines[-max_lines:]
    while len(kept) > 1 and len("\n".join(kept)) > max_chars:
        kept.pop(0)
    body = "\n".join(kept)
    if len(body) > max_chars:
        body = "..." + body[-max_chars:]
    cut = len(lines) - len(kept)
    return f"[{cut} earlier line(s) not shown]\n{body}" if cut else body


def report(desktop: str, outcomes: Sequence[CheckOutcome]) -> str:
    """One readable report: a summary line, then every failed check with command, exit code and output."""
    failed = [o for o in outcomes if not o.passed]
    total = len(outcomes)
    if not total:
        return f"desktop {desktop}: no checks declared"
    if not failed:
        lines = [f"desktop {desktop}: all {total} checks passed"]
    else:
        lines = [f"desktop {desktop}: {len(failed)} of {total} checks failed"]
    for outcome in outcomes:
        if outcome.passed:
            lines.append(f"  ok      {outcome.check.sentence}")
            continue
        lines.append(f"  FAILED  {outcome.check.sentence}")
        if outcome.reason:
            lines.append(f"          why:       {outcome.reason}")
        lines.append(f"          command:   {outcome.command}")
        lines.append(f"          exit code: {'none (not run)' if outcome.rc is None else outcome.rc}")
        if outcome.output:
            lines.append("          output:")
            lines.extend(f"            {line}" for line in outcome.output.splitlines())
    return "\n".join(lines)


__all__ = ["CheckOutcome", "PROBES", "report", "run_checks", "trim_output"]
