"""cloud-init status of a guest: parse `cloud-init status --format json` (22.x-24.x) and wait for it.

The wait reads the files cloud-init keeps in its run directory (status.json per stage, result.json once the
final stage is over) instead of asking its CLI: under TCG every `cloud-init` invocation is a Python start-up
of about 7 s, which every desktop's readiness gate paid once more after cloud-init had already finished.
The CLI stays the fallback for a guest whose cloud-init did not say it is enabled (no systemd generator).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field

from . import GuestError, GuestTimeout

log = logging.getLogger(__name__)

STATUS_COMMAND = ["cloud-init", "status", "--format", "json"]
WAIT_COMMAND = ["cloud-init", "status", "--wait", "--format", "json"]
RUN_DIR = "/run/cloud-init"
# Waits for result.json while the generator's "enabled" marker says cloud-init runs this boot; prints
# status.json and result.json between markers. Exit 3: no marker, so the CLI has to decide (disabled, ...).
_WAIT_SCRIPT = """\
d=$1
[ -e "$d/enabled" ] && [ ! -e "$d/disabled" ] || exit 3
until [ -e "$d/result.json" ]; do sleep 0.5; done
echo '--- status.json'; cat "$d/status.json"; echo; echo '--- result.json'; cat "$d/result.json"
"""
_CLI_NEEDED = 3
_FILE_MARKERS = re.compile(r"^--- (status|result)\.json$", re.MULTILINE)
# Grace for the guest's `timeout` to report before the SSH-side bound fires.
_REMOTE_GRACE_S = 5.0
_PROBE_TIMEOUT_S = 15.0
_FINISHED_STATES = frozenset({"done", "degraded done", "error", "disabled"})
# Older releases said "not run"; the docs also mention "not running".
_STATE_ALIASES = {"not run": "not started", "not running": "not started"}
# A failed module is recorded as str((name, exception)), e.g. "('locale', ProcessExecutionError(...))".
_JSON_START = re.compile(r"^[.\s]*\{", re.MULTILINE)
_MODULE_ERROR = re.compile(r"""^\(\s*(['"])(?P<name>[A-Za-z0-9_.\-]+)\1\s*,""")


@dataclass(frozen=True)
class CloudInitStatus:
    """What cloud-init reports about the current boot."""

    state: str
    errors: list[str]
    failing_modules: list[str]
    detail: str
    extended_status: str | None = None
    recoverable_errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True if cloud-init is done and reported no errors."""
        return self.state == "done" and not self.errors

    @property
    def finished(self) -> bool:
        """True if cloud-init will not do anything more this boot."""
        return self.state in _FINISHED_STATES

    def describe(self) -> str:
        """One readable paragraph for logs and error messages."""
        text = f"cloud-init {self.state}"
        if self.failing_modules:
            text += f"; failing module(s): {', '.join(self.failing_modules)}"
        if self.errors:
            text += "; errors: " + " | ".join(_oneline(e) for e in self.errors)
        if self.recoverable_errors:
            counts = ", ".join(f"{len(v)} {k}" for k, v in self.recoverable_errors.items())
            text += f"; recoverable: {counts}"
        if self.detail:
            text += f" ({self.detail})"
        return text


def parse_status(stdout: str) -> CloudInitStatus:
    """Parse the JSON printed by `cloud-init status --format json`; the exit code is not consulted."""
    data = _load_json_object(stdout)
    raw_status = data.get("status")
    if not isinstance(raw_status, str) or not raw_status.strip():
        raise GuestError(
            "cloud-init status output has no 'status' field; got keys: "
            + ", ".join(sorted(map(str, data))[:20])
        )
    status = _STATE_ALIASES.get(raw_status.strip().lower(), raw_status.strip().lower())
    extended = data.get("extended_status")
    extended = extended.strip().lower() if isinstance(extended, str) else None

    errors: list[str] = []
    recoverable: dict[str, list[str]] = {}
    for source in _stage_sources(data):
        for message in _as_list(source.get("errors")):
            if message not in errors:
                errors.append(message)
        rec = source.get("recoverable_errors")
        if isinstance(rec, dict):
            for level, messages in rec.items():
                bucket = recoverable.setdefault(str(level), [])
                bucket.extend(m for m in _as_list(messages) if m not in bucket)

    if status == "error" or (status == "done" and errors):
        state = "error"
    elif extended in ("degraded done", "degraded running"):
        state = extended
    elif extended is None and recoverable and status in ("done", "running"):
        state = f"degraded {status}"
    else:
        state = status

    modules: list[str] = []
    for message in errors:
        name = module_from_error(message)
        if name and name not in modules:
            modules.append(name)
    detail = data.get("detail")
    return CloudInitStatus(
        state=state,
        errors=errors,
        failing_modules=modules,
        detail=detail if isinstance(detail, str) else "",
        extended_status=extended,
        recoverable_errors=recoverable,
    )


def module_from_error(message: str) -> str | None:
    """Return the cloud-init module named by an error like "('locale', ProcessExecutionError(...))"."""
    match = _MODULE_ERROR.match(message.strip())
    if not match:
        return None
    name = match.group("name")
    for prefix in ("config-", "cc_"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
    return name


def wait_for_cloud_init(session, *, timeout_s: float, run_dir: str = RUN_DIR) -> CloudInitStatus:
    """Block until cloud-init finishes on the guest (or timeout_s passes) and return its status.

    An "error" status is returned, not raised: the caller decides what a failed module means.
    """
    if timeout_s <= 0:
        raise GuestError(f"timeout for cloud-init must be positive, got {timeout_s}")
    deadline = time.monotonic() + timeout_s
    command = ["timeout", "--kill-after=5", _seconds(timeout_s), "sh", "-c", _WAIT_SCRIPT, "sh", run_dir]
    result = _bounded_run(session, command, timeout_s)
    if result.rc == _CLI_NEEDED:
        left = max(deadline - time.monotonic(), 1.0)
        result = _bounded_run(session, ["timeout", "--kill-after=5", _seconds(left), *WAIT_COMMAND], left)
        status = _parse_cli_result(result)
    elif result.rc == 0:
        status = parse_run_files(result.stdout)
    else:
        raise GuestError(f"reading cloud-init's state in {run_dir} failed with exit status {result.rc}: "
                         + (_oneline(result.stderr) or _oneline(result.stdout) or "no output"))
    if status.state == "error":
        log.warning("%s", status.describe())
    else:
        log.info("%s", status.describe())
    return status


def parse_run_files(stdout: str) -> CloudInitStatus:
    """The status of a finished boot from status.json and result.json, as printed by the wait script."""
    parts = _FILE_MARKERS.split(stdout or "")
    files = {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    try:
        status_v1 = json.loads(files["status"])["v1"]
        result_v1 = json.loads(files["result"])["v1"]
    except (KeyError, TypeError, ValueError) as exc:
        raise GuestError("cloud-init's status.json/result.json are not what cloud-init writes: "
                         + (repr(_oneline(stdout)[:200]) if (stdout or "").strip() else "no output")) from exc
    if not isinstance(status_v1, dict) or not isinstance(result_v1, dict):
        raise GuestError("cloud-init's status.json/result.json have no v1 object")
    if status_v1.get("stage"):
        # result.json of this boot exists, so the stage is a leftover; cloud-init's CLI says "done" too.
        log.debug("cloud-init's status.json still names stage %r after result.json", status_v1["stage"])
    data = {"status": "done", "detail": str(status_v1.get("datasource") or result_v1.get("datasource") or ""),
            "errors": _as_list(result_v1.get("errors")), "v1": status_v1}
    return parse_status(json.dumps(data))


def _bounded_run(session, command: list[str], timeout_s: float):
    """Run a `timeout`-wrapped command; the guest's and the SSH side's bounds both end in GuestTimeout."""
    waited_for = "cloud-init to finish"
    try:
        result = session.run(command, timeout_s=timeout_s + _REMOTE_GRACE_S, sudo=True)
    except GuestTimeout as exc:
        raise GuestTimeout(waited_for, timeout_s, _current_state(session) or exc) from None
    if result.rc in (124, 137):
        raise GuestTimeout(waited_for, timeout_s, _current_state(session))
    return result


def _parse_cli_result(result) -> CloudInitStatus:
    """The status printed by `cloud-init status --wait`; its exit code only matters when there is no JSON."""
    try:
        return parse_status(result.stdout)
    except GuestError:
        if result.rc == 0:
            raise
        raise GuestError(
            f"`cloud-init status` failed with exit status {result.rc}: "
            + (_oneline(result.stderr) or _oneline(result.stdout) or "no output")
        ) from None


def _current_state(session) -> str | None:
    """Best-effort one-line description of cloud-init's state right now, for timeout messages."""
    try:
        result = session.run(STATUS_COMMAND, timeout_s=_PROBE_TIMEOUT_S, sudo=True)
        return "still " + parse_status(result.stdout).describe()
    except GuestError as exc:
        log.debug("could not read cloud-init status after the timeout: %s", exc)
        return None


def _load_json_object(stdout: str) -> dict:
    """Decode the JSON object in stdout; it starts a line, possibly after progress dots."""
    text = stdout or ""
    starts = [m.end() - 1 for m in _JSON_START.finditer(text)]
    if not starts:
        raise GuestError(
            "expected JSON from `cloud-init status --format json`, got: "
            + (repr(_oneline(text)[:200]) if text.strip() else "no output")
        )
    first_error = None
    for start in starts:
        try:
            data, _ = json.JSONDecoder().raw_decode(text[start:])
        except json.JSONDecodeError as exc:
            first_error = first_error or exc
            continue
        if isinstance(data, dict):
            return data
    if first_error is None:
        raise GuestError("cloud-init status JSON is not an object")
    raise GuestError(
        f"cloud-init status output is not valid JSON ({first_error.msg} at line "
        f"{first_error.lineno} column {first_error.colno}): {_oneline(text[starts[0]:])[:200]!r}"
    )


def _stage_sources(data: dict) -> list[dict]:
    """The top level plus every per-stage dict ("init", "modules-final", ... or nested "v1")."""
    sources = [data]
    v1 = data.get("v1")
    containers = [data] + ([v1] if isinstance(v1, dict) else [])
    for container in containers:
        if container is not data:
            sources.append(container)
        for key, value in container.items():
            if key != "recoverable_errors" and isinstance(value, dict) and (
                "errors" in value or "recoverable_errors" in value
            ):
                sources.append(value)
    return sources


def _as_list(value) -> list[str]:
    """Messages as a list of strings, whatever shape the JSON used."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [v if isinstance(v, str) else json.dumps(v) for v in value]
    return [json.dumps(value)]


def _seconds(value: float) -> str:
    """Format seconds for coreutils timeout (no exponent notation)."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _oneline(text: str) -> str:
    """Collapse whitespace so a message fits on one line."""
    return " ".join((text or "").split())
