"""The host's lifecycle service: looks at every running desktop each `poll`, warns, suspends or shuts down.

One line per action, with its reason, on the log. Its memory (who was warned
when, when each domain started) is a file beside its settings, so a restart
of the service neither warns twice nor forgets a warning; a restart of
libvirtd loses the connection, which is opened again at the next turn.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import libvirt

from . import actions, quotas
from .activity import ConsoleActivity, GuestSessions, Started
from .decision import Decision, decide, idle_for, span
from .policy import IdlePolicy, policy_of
from .schedule import schedule_of, window_of
from .settings import LifecycleSettings

log = logging.getLogger("vdesk.lifecycle")
STATE_FILE = "state.json"
_MAX_RECONNECT_S = 30.0

libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


class Lifecycle:
    """One host's desktops, one turn at a time; `turn(conn, now)` is what the loop (and the tests) call."""

    def __init__(self, lifecycle_dir: Path, settings: LifecycleSettings):
        self.dir, self.settings = Path(lifecycle_dir), settings
        self.started, self.console, self.guest = Started(), ConsoleActivity(self.dir), GuestSessions()
        self.state: dict[str, dict] = self._load()
        self.refused: dict[str, str] = {}      # desktop -> why its schedule's start was refused (logged once)
        self.started.started_at = {uuid: s["started_at"] for uuid, s in self.state.items()}

    def _load(self) -> dict:
        try:
            return json.loads((self.dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def _save(self) -> None:
        tmp = self.dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True) + "\n")
        tmp.replace(self.dir / STATE_FILE)

    def turn(self, conn, now: float | None = None) -> dict[str, Decision]:
        """Decide for every running desktop and carry the decisions out; returns them by desktop name."""
        now = time.time() if now is None else now
        decisions, running = {}, set()
        self._finish_stops(conn, now)
        self._follow_schedules(conn, now)
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
            running.add(dom.UUIDString())
            seen = self._seen(dom, now)
            if "stopping" in seen:                # asked to shut down: a later turn finishes it
                continue
            if changes := actions.held(dom):      # a change waits for an idle moment: that first
                self._apply_held(dom, changes, now, seen)
                continue
            policy = self._policy(dom)
            if policy is None:
                continue
            decision = decisions[dom.name()] = self._decide(dom, policy, now, seen)
            self._carry_out(dom, policy, decision, seen, now)
        for uuid in set(self.state) - running:                     # off, asleep or gone: the next start is new
            if "stopping" in self.state[uuid]:                     # but its stop is logged and noted first
                continue
            del self.state[uuid]
            self.started.started_at.pop(uuid, None)
        self._save()
        return decisions

    def _seen(self, dom, now: float) -> dict:
        """The service's memory of a running domain, new at each start (a start is input too)."""
        uuid = dom.UUIDString()
        seen = self.state.get(uuid)
        if seen is None or seen["domain_id"] != dom.ID():
            seen = self.state[uuid] = {"name": dom.name(), "domain_id": dom.ID(), "started_at": now,
                                       "warned_at": None, "noted": None}
            self.started.started_at[uuid] = now
            actions.started_again(dom)
            # restored from its sleep by other means (virsh start): its clipboard channel back
            actions.replug_clipboard(dom, "started without it")
        return seen

    def next_turn_in(self, now: float) -> float:
        """Seconds to the next turn: a poll, or less when a stop's grace period ends first."""
        deadlines = [s["stopping"]["deadline"] for s in self.state.values() if "stopping" in s]
        return min([float(self.settings.poll), *(max(d - now, 0.5) for d in deadlines)])

    def _stop(self, dom, verb: str, by: str | None, reason: str, now: float,
              apply: list[str] | None = None) -> None:
        """Ask for a clean ACPI shutdown and come back for it at later turns (off: done; past shutdown_timeout:
        forced off), so that a guest ignoring it does not hold the other desktops' stops, starts and suspends.
        With `apply` (the changes `up` held for it), once off it is started again on its new definition."""
        seen = self._seen(dom, now)
        actions.ask_shutdown(dom)
        seen["stopping"] = {"verb": verb, "by": by, "reason": reason, "timeout": self.settings.shutdown_timeout,
                            "deadline": now + self.settings.shutdown_timeout,
                            **({"apply": list(apply)} if apply is not None else {})}
        self._finish_stop(dom, seen, now)         # a guest quick to answer is off already

    def _finish_stops(self, conn, now: float) -> None:
        for uuid, seen in list(self.state.items()):
            if "stopping" not in seen:
                continue
            try:
                self._finish_stop(conn.lookupByUUIDString(uuid), seen, now)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    log.warning("%s of desktop=%s not finished: %s", seen["stopping"]["verb"], seen["name"],
                                exc.get_error_message())
                    continue
                stopping = seen.pop("stopping")           # a transient domain is gone once off
                log.info("%s desktop=%s how=shut down reason=%s", stopping["verb"], seen["name"], stopping["reason"])

    def _finish_stop(self, dom, seen: dict, now: float) -> None:
        """Off (or started again since): done; still up past its deadline: forced off. Logged once, when done."""
        stopping = seen["stopping"]
        how = "shut down"
        if dom.isActive() and dom.ID() == seen["domain_id"]:
            if now < stopping["deadline"]:
                return
            how = actions.force_off(dom, stopping["timeout"])
        if "apply" in stopping:
            # Off: started on the definition `up` wrote. Started again by someone else meanwhile: that start
            # took the new definition already. Either way the change is made and its note goes.
            if dom.isActive():
                actions.drop_held(dom)
                how = "started again by someone else"
            else:
                actions.start_held(dom)
                how = f"{how}, started again"
            del seen["stopping"]
            log.info("applied desktop=%s changes=%s how=%s reason=%s", dom.name(), ",".join(stopping["apply"]),
                     how, stopping["reason"])
            return
        if not dom.isActive():
            actions.mark_off(dom, stopping["by"])
        del seen["stopping"]
        log.info("%s desktop=%s how=%s reason=%s", stopping["verb"], dom.name(), how, stopping["reason"])

    def _policy(self, dom) -> IdlePolicy | None:
        try:
            return policy_of(dom) or self.settings.default
        except ValueError as exc:        # metadata someone else wrote by hand: say so, leave the desktop alone
            log.warning("ignored desktop=%s reason=its idle policy is invalid: %s", dom.name(), exc)
            return None

    def _decide(self, dom, policy: IdlePolicy, now: float, seen: dict) -> Decision:
        readings = self.started.readings(dom, now) + self.console.readings(dom, now)
        cheap = decide(policy, readings, now, seen["warned_at"])
        if cheap.verdict == "active":       # the guest can only add input: no need to ask it
            return cheap
        return decide(policy, readings + self.guest.readings(dom, now), now, seen["warned_at"])

    def _follow_schedules(self, conn, now: float) -> None:
        """Start what its schedule stopped once the schedule begins; shut down what runs outside its schedule.
        (A desktop asleep, off for idleness or stopped by someone is not started: only the schedule's own.)"""
        for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_PERSISTENT):
            try:
                schedule = schedule_of(dom)
            except ValueError as exc:
                log.warning("ignored desktop=%s reason=its schedule is invalid: %s", dom.name(), exc)
                continue
            if schedule is None:
                continue
            inside, state = schedule.running_at(now), actions.runtime_state(dom)
            try:
                if state == "running" and not inside:
                    if "stopping" not in self.state.get(dom.UUIDString(), {}):
                        self._stop(dom, "stop", "schedule", f"outside its schedule ({schedule.said()})", now)
                elif state == "schedule-off" and inside:
                    if (why := quotas.refusal(conn, self.dir, dom.name())) is not None:
                        self._refused(dom.name(), why)
                        continue
                    self.refused.pop(dom.name(), None)
                    dom.create()
                    actions.started_again(dom)
                    log.info("start desktop=%s reason=its schedule (%s)", dom.name(), schedule.said())
            except libvirt.libvirtError as exc:
                log.warning("schedule of desktop=%s not followed: %s", dom.name(), exc.get_error_message())

    def _refused(self, name: str, why: str) -> None:
        """A schedule's start beyond a quota is not made: logged when it begins or its reason changes."""
        if self.refused.get(name) != why:
            self.refused[name] = why
            log.warning("refused start desktop=%s reason=its schedule, beyond a quota: %s", name, why)

    def _apply_held(self, dom, changes: list[str], now: float, seen: dict) -> None:
        """Restart a desktop on the changes `up` held for it: apply_when: window, inside its maintenance window,
        used or not; apply_when: idle, once nobody has used it for `apply_after` (a source that cannot be read
        keeps the change waiting). The restart is a stop like the others: asked, finished at a later turn."""
        window = window_of(dom)
        if window is not None:
            if window.running_at(now):
                self._stop(dom, "apply", None, f"its maintenance window ({window.said()})", now, apply=changes)
            else:
                self._note(seen, dom.name(), "held", f"{' '.join(changes)} wait for its maintenance window "
                                                     f"({window.said()})")
            return
        wait = self.settings.apply_after
        readings = self.started.readings(dom, now) + self.console.readings(dom, now)
        idle = idle_for(readings, now)
        if idle is not None and idle >= wait:       # the guest can only add input: ask it only then
            idle = idle_for(readings + self.guest.readings(dom, now), now)
        if idle is None or idle < wait:
            self._note(seen, dom.name(), "held", f"{' '.join(changes)} wait for {span(wait)} without input"
                       + ("" if idle is None else f" (input {span(idle)} ago)"))
            return
        try:
            self._stop(dom, "apply", None, f"no input for {span(idle)}", now, apply=changes)
        except libvirt.libvirtError as exc:
            self._note(seen, dom.name(), "apply failed", exc.get_error_message(), logging.WARNING)

    def _carry_out(self, dom, policy: IdlePolicy, decision: Decision, seen: dict, now: float) -> None:
        name = dom.name()
        if decision.verdict == "warn":
            title = f"This desktop will {'sleep' if policy.action == 'suspend' else 'shut down'} soon"
            body = (f"No input for {span(decision.idle_for)}. In {span(policy.warn)} it "
                    + ("goes to sleep: your work is kept, and opening the desktop wakes it."
                       if policy.action == "suspend" else "shuts down: save your work.")
                    + " Any key or mouse movement keeps it running.")
            outcome = actions.warn(dom, self.guest.last_sessions.get(name, []), title, body)
            seen["warned_at"] = now
            log.info("warn desktop=%s action=%s reason=%s notification=%s", name, policy.action, decision.reason,
                     outcome)
        elif decision.verdict == "act":
            try:
                if policy.action == "shutdown":
                    self._stop(dom, "shutdown", "idle", decision.reason, now)
                    return
                how = actions.suspend(dom)
            except libvirt.libvirtError as exc:
                self._note(seen, name, f"{policy.action} failed", exc.get_error_message(), logging.WARNING)
                return
            log.info("%s desktop=%s how=%s reason=%s", policy.action, name, how, decision.reason)
        elif decision.verdict == "unknown":
            self._note(seen, name, "left alone", decision.reason)
        elif seen["warned_at"] is not None and decision.verdict == "active":
            seen["warned_at"] = None
            log.info("kept desktop=%s reason=%s after the warning", name, decision.reason)

    @staticmethod
    def _note(seen: dict, name: str, what: str, reason: str, level: int = logging.INFO) -> None:
        """A condition that lasts is logged when it begins or changes, not at every turn."""
        if seen.get("noted") != f"{what}: {reason}":
            seen["noted"] = f"{what}: {reason}"
            log.log(level, "%s desktop=%s reason=%s", what, name, reason)


def run(lifecycle_dir: Path, stop: threading.Event | None = None) -> None:
    """The loop: settings read at every turn (the administrator may change them), libvirt reconnected when lost."""
    lifecycle_dir = Path(lifecycle_dir)
    stop = stop or threading.Event()
    settings = LifecycleSettings.read(lifecycle_dir)
    lifecycle, conn, backoff = Lifecycle(lifecycle_dir, settings), None, 1.0
    log.info("lifecycle service watching %s every %ss", settings.libvirt_uri, settings.poll)
    while not stop.is_set():
        try:
            fresh = LifecycleSettings.read(lifecycle_dir)
        except (OSError, ValueError) as exc:
            log.warning("settings unreadable, keeping the last ones: %s", exc)
            fresh = settings
        if fresh != settings:
            log.info("settings changed: enabled=%s poll=%ss", fresh.enabled, fresh.poll)
            settings = lifecycle.settings = fresh
        if not settings.enabled:
            stop.wait(settings.poll)
            continue
        try:
            if conn is None:
                conn = libvirt.open(settings.libvirt_uri)
                log.info("connected to %s", settings.libvirt_uri)
                backoff = 1.0
            lifecycle.turn(conn)
        except libvirt.libvirtError as exc:
            alive = conn is not None and _alive(conn)
            if alive:
                log.warning("turn failed: %s", exc.get_error_message())
            else:
                log.warning("libvirt at %s lost (%s); reconnecting in %gs", settings.libvirt_uri,
                            exc.get_error_message(), backoff)
                _close(conn)
                conn = None
                stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_RECONNECT_S)
                continue
        stop.wait(lifecycle.next_turn_in(time.time()))
    _close(conn)


def _alive(conn) -> bool:
    try:
        return bool(conn.isAlive()) and conn.getLibVersion() > 0
    except libvirt.libvirtError:
        return False


def _close(conn) -> None:
    if conn is not None:
        try:
            conn.close()
        except libvirt.libvirtError:
            pass
