"""`make check STACK=...`: log in to every desktop of a stack over pinned-key SSH and run its declared checks.

    python -m components.cli.checks STACK [--json] [--timeout SECONDS] [--port PORT] [--wake]

A desktop asleep or off for idleness (its host's lifecycle service put it there) is reported as such and
left asleep: checking it is no reason to wake it, unless --wake asks. Its state is libvirt's now, not the
outputs' of the last `up`. One outside its schedule is never started.

Exit status: 0 if every check passed, 1 if any failed (or a desktop could not be checked),
2 if the stack's outputs could not be read.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable

import libvirt

from ..errors import VdeskError
from ..guest import GuestError
from ..guest.checks import GuestHost
from ..guest.checkrun import CheckOutcome, report, run_checks
from ..guest.checkspec import CheckSpecError, parse_checks
from ..guest.jump import JumpHost
from ..guest.ssh import SshTarget, connect
from ..host import connection
from ..lifecycle import actions as idling
from ..lifecycle.quotas import lifecycle_dir_of

LOGIN_CHECK = "SSH login with the pinned host key"
WAKE_CHECK = "woken for its checks"
_NOT_WOKEN = {"asleep": "desktop is asleep (suspended by its host's lifecycle service); not woken for its checks "
                        "(--wake, or make check WAKE=1, wakes it)",
              "idle-off": "desktop is off for idleness (its host's lifecycle service shut it down); not started for "
                          "its checks (--wake, or make check WAKE=1, starts it)",
              "schedule-off": "desktop is off outside its schedule; not started for its checks"}


@dataclass(frozen=True)
class Row:
    """One line of the table: desktop | check | result | detail."""

    desktop: str
    check: str
    result: str  # "ok", "FAILED" or "skipped"
    detail: str = ""


@dataclass
class DesktopResult:
    """Everything checked on one desktop."""

    name: str
    outcomes: list[CheckOutcome] = field(default_factory=list)
    error: str | None = None  # the desktop could not be checked at all
    error_at: str = "(all checks)"  # the table's "check" cell for that error
    skipped: str | None = None  # nothing to check (e.g. declared stopped)

    @property
    def failed(self) -> bool:
        return self.error is not None or any(not o.passed for o in self.outcomes)


class OutputsError(Exception):
    """The stack's outputs could not be read."""


def fetch_outputs(stack: str) -> dict:
    """The stack's outputs, secrets included, from `pulumi stack output`."""
    command = ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise OutputsError("`pulumi` is not on PATH (run `make check`, which sets up the environment)") from None
    if proc.returncode != 0:
        detail = proc.stderr.strip() or proc.stdout.strip() or f"exit status {proc.returncode}"
        raise OutputsError(f"cannot read the outputs of stack {stack!r}: {detail}")
    try:
        outputs = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError as exc:
        raise OutputsError(f"`pulumi stack output` for {stack!r} did not print JSON: {exc}") from None
    if not isinstance(outputs, dict):
        raise OutputsError(f"outputs of stack {stack!r} are not a mapping")
    return outputs


def check_stack(
    outputs: dict,
    *,
    timeout_s: float = 60,
    port: int = 22,
    connect_fn: Callable[..., object] = connect,
    wake: bool = False,
) -> list[DesktopResult]:
    """Check every desktop in the outputs; never raises for a desktop that fails or cannot be reached."""
    desktops = outputs.get("desktops") or {}
    if not isinstance(desktops, dict):
        return [DesktopResult("(stack)", error="outputs.desktops is not a mapping of desktops")]
    return [
        check_desktop(name, desktop, outputs, timeout_s=timeout_s, port=port, connect_fn=connect_fn, wake=wake)
        for name, desktop in sorted(desktops.items())
    ]


def check_desktop(
    name: str,
    desktop: dict,
    outputs: dict,
    *,
    timeout_s: float = 60,
    port: int = 22,
    connect_fn: Callable[..., object] = connect,
    wake: bool = False,
) -> DesktopResult:
    """Log in to one desktop and run its checks (a sleeping one only with `wake`)."""
    path = f"outputs.desktops.{name}"
    result = DesktopResult(name)
    if not isinstance(desktop, dict):
        result.error = f"{path} is not a mapping"
        return result
    try:
        checks = parse_checks(desktop.get("checks"), f"desktops.{name}.checks")
    except CheckSpecError as exc:
        result.error = f"invalid checks: {'; '.join(f'{p}: {m}' for p, m in exc.problems)}"
        result.error_at = "(checks config)"
        return result
    state = live_state(desktop) or desktop.get("state")
    if state in idling.OFF_ON_PURPOSE:
        if not wake or state not in idling.SLEEPING:
            result.skipped = _NOT_WOKEN[state]
            return result
        try:
            _wake(desktop)
        except VdeskError as exc:            # (a quota it would go beyond says which: quotas.QuotaExceeded)
            result.error, result.error_at = f"not woken: {exc}", WAKE_CHECK
            return result
        except libvirt.libvirtError as exc:
            result.error, result.error_at = f"not woken: {exc.get_error_message()}", WAKE_CHECK
            return result
    if not desktop.get("ip"):
        if state == "stopped":
            result.skipped = "desktop is stopped"
        else:
            result.error = f"{path}.ip is empty: the desktop has no known address (is it running?)"
        return result
    try:
        target = _target(name, desktop, outputs, port)
    except GuestError as exc:
        result.error = str(exc)
        return result
    try:
        session = connect_fn(target, timeout_s=timeout_s)
    except GuestError as exc:
        result.error = f"cannot log in: {exc}"
        result.error_at = LOGIN_CHECK
        return result
    with session:
        result.outcomes = run_checks(GuestHost(session), checks)
    return result


def live_state(desktop: dict) -> str | None:
    """The desktop's runtime state as its host's libvirt says now (running, asleep, idle-off, schedule-off,
    stopped); None when the host or the domain cannot be asked (the outputs' state is all there is then)."""
    uri, name = desktop.get("host_uri"), desktop.get("name")
    if not uri or not name:
        return None
    try:
        with connection.connect(uri) as conn:
            dom = connection.lookup(conn.lookupByName, name)
            return None if dom is None else idling.runtime_state(dom)
    except (VdeskError, libvirt.libvirtError):
        return None


def _wake(desktop: dict) -> str:
    """Wake it as opening it would, within its host's quotas (beside its console gateway's dir)."""
    console = desktop.get("console") or {}
    with connection.connect(desktop["host_uri"]) as conn:
        return idling.wake(conn, desktop["name"], lifecycle_dir_of(console["dir"]) if console.get("dir") else None)


def _target(name: str, desktop: dict, outputs: dict, port: int) -> SshTarget:
    """Where to log in to a desktop, from its outputs and its host's network namespace."""
    path = f"outputs.desktops.{name}"
    missing = [key for key in ("user", "login_private_key", "host_key") if not desktop.get(key)]
    if missing:
        raise GuestError(f"{path} lacks {', '.join(missing)}; cannot log in")
    hosts = outputs.get("hosts") or {}
    host_name = desktop.get("host") or next(iter(hosts), None)
    netns = jump = None
    if host_name is not None:
        if host_name not in hosts:
            raise GuestError(f"{path}.host names host {host_name!r}, which is not in outputs.hosts")
        netns = (hosts[host_name] or {}).get("netns") or None
        # A remote host's guests are on its private network: reached through its sshd, its key pinned
        # in this runner's known_hosts.
        if (hosts[host_name] or {}).get("ssh_jump"):
            jump = JumpHost.parse(hosts[host_name]["ssh_jump"])
    return SshTarget(
        host=desktop["ip"],
        user=desktop["user"],
        private_key=desktop["login_private_key"],
        host_public_key=desktop["host_key"],
        port=port,
        netns=netns,
        jump=jump,
    )


def rows(results: list[DesktopResult]) -> list[Row]:
    """The table rows: a login row per desktop, then one row per check."""
    table: list[Row] = []
    for r in results:
        if r.skipped:
            table.append(Row(r.name, "(all checks)", "skipped", r.skipped))
            continue
        if r.error:
            table.append(Row(r.name, r.error_at, "FAILED", r.error))
            continue
        table.append(Row(r.name, LOGIN_CHECK, "ok"))
        for o in r.outcomes:
            if o.passed:
                table.append(Row(r.name, o.check.sentence, "ok"))
            else:
                rc = "not run" if o.rc is None else f"exit {o.rc}"
                why = f"{o.reason}; " if o.reason else ""
                table.append(Row(r.name, o.check.sentence, "FAILED", f"{why}{rc}: {o.command}"))
    return table


def format_table(table: list[Row]) -> str:
    """Plain-text table with aligned columns; long details are cut to keep lines readable."""
    header = Row("desktop", "check", "result", "detail")
    lines = [header, *table]
    cells = [(r.desktop, r.check, r.result, _one_line(r.detail)) for r in lines]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    out = []
    for i, c in enumerate(cells):
        out.append("  ".join(c[k].ljust(widths[k]) for k in range(3)) + ("  " + c[3] if c[3] else ""))
        if i == 0:
            out.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(line.rstrip() for line in out)


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_json(results: list[DesktopResult]) -> dict:
    """Machine-readable results."""
    return {
        "failed": sum(1 for r in results if r.failed),
        "desktops": {
            r.name: {
                "passed": not r.failed,
                "skipped": r.skipped,
                "error": r.error,
                "checks": [
                    {
                        "check": o.check.sentence,
                        "kind": o.check.kind,
                        "target": o.check.target,
                        "passed": o.passed,
                        "command": o.command,
                        "rc": o.rc,
                        "reason": o.reason,
                        "output": o.output,
                    }
                    for o in r.outcomes
                ],
            }
            for r in results
        },
    }


def render(results: list[DesktopResult]) -> str:
    """The human output: the table, then a full report for each desktop with failed checks."""
    parts = [format_table(rows(results))]
    for r in results:
        if r.error:  # the table cuts long details; say it in full here
            parts.append(f"desktop {r.name}: could not be checked: {r.error}")
        elif r.outcomes and any(not o.passed for o in r.outcomes):
            parts.append(report(r.name, r.outcomes))
    failed = sum(1 for r in results if r.failed)
    parts.append(f"{failed} of {len(results)} desktop(s) failed their checks" if failed
                 else f"all {len(results)} desktop(s) passed their checks")
    return "\n\n".join(parts)


def run(outputs: dict, *, as_json: bool = False, timeout_s: float = 60, port: int = 22,
        connect_fn: Callable[..., object] = connect, out=None, wake: bool = False) -> int:
    """The CLI's core on an outputs dict: print the results and return the exit status."""
    out = out or sys.stdout
    results = check_stack(outputs, timeout_s=timeout_s, port=port, connect_fn=connect_fn, wake=wake)
    if as_json:
        out.write(json.dumps(to_json(results), indent=2) + "\n")
    else:
        out.write(render(results) + "\n")
    return 1 if any(r.failed for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.cli.checks", description=__doc__.splitlines()[0])
    parser.add_argument("stack", help="the Pulumi stack, e.g. dev")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for each SSH login (default 60)")
    parser.add_argument("--port", type=int, default=22, help="the guests' SSH port (default 22)")
    parser.add_argument("--wake", action="store_true", help="wake a desktop asleep or off for idleness to check it "
                                                            "(default: report it as such, and leave it)")
    args = parser.parse_args(argv)
    try:
        outputs = fetch_outputs(args.stack)
    except OutputsError as exc:
        print(f"vdesk check: {exc}", file=sys.stderr)
        return 2
    return run(outputs, as_json=args.json, timeout_s=args.timeout, port=args.port, wake=args.wake)


if __name__ == "__main__":
    sys.exit(main())
