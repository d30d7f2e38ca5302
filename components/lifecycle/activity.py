"""Activity sources: each says when a desktop last saw real input, never merely that something is connected.

A source is anything with `name` and `readings(dom, now) -> list[Reading]`. The
console's is a file the gateway touches; the guest's comes from one probe
through the guest agent and gives a reading for the graphical session and one
for SSH. An open console or an SSH connection without input is idle.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import libvirt
from lxml import etree

from ..guest import agent
from . import console_input
from .decision import Reading
from .sessions import PROBE_ARGV, Session, parse_probe

log = logging.getLogger(__name__)

AGENT_CHANNEL = "org.qemu.guest_agent.0"
PROBE_TIMEOUT_S = 15


class ActivitySource(Protocol):
    name: str

    def readings(self, dom, now: float) -> list[Reading]: ...


class ConsoleActivity:
    """The browser console: the time of the last key or pointer message the gateway relayed."""

    name = "console"

    def __init__(self, lifecycle_dir: Path):
        self.lifecycle_dir = Path(lifecycle_dir)

    def readings(self, dom, now: float) -> list[Reading]:
        return [Reading(self.name, console_input.last_input(self.lifecycle_dir, dom.name()))]


def has_agent(dom) -> bool:
    """The domain has the guest agent's channel (else the guest cannot be asked, by design, not by failure)."""
    tree = etree.fromstring(dom.XMLDesc(0).encode())
    return bool(tree.xpath("devices/channel/target[@type='virtio' and @name=$n]", n=AGENT_CHANNEL))


class GuestSessions:
    """The guest's own sessions through its agent: one reading for graphical sessions, one for SSH sessions."""

    name = "guest"

    def __init__(self):
        self.last_sessions: dict[str, list[Session]] = {}   # per domain: who to warn

    def readings(self, dom, now: float) -> list[Reading]:
        if not has_agent(dom):
            return []
        try:
            rc, out = agent.run(dom, PROBE_ARGV, timeout_s=PROBE_TIMEOUT_S)
        except libvirt.libvirtError as exc:
            return [Reading(self.name, None, known=False, detail=f"guest agent: {exc.get_error_message()}")]
        if rc != 0:
            return [Reading(self.name, None, known=False, detail=f"session probe rc={rc}: {out.strip()[:160]}")]
        try:
            sessions = parse_probe(out)
        except ValueError as exc:
            return [Reading(self.name, None, known=False, detail=str(exc))]
        self.last_sessions[dom.name()] = sessions
        return session_readings(sessions, now)


def session_readings(sessions: list[Session], now: float) -> list[Reading]:
    """Graphical and SSH readings from the guest's sessions (idle times are the guest's, so no clock skew)."""
    out = []
    graphical = [s for s in sessions if s.graphical]
    if graphical:
        blind = [s for s in graphical if s.idle_for is None]
        if blind:
            out.append(Reading("graphical", None, known=False,
                               detail=f"session {blind[0].id} of {blind[0].user}: no idle time (no xprintidle, "
                                      "and its desktop does not maintain logind's IdleHint)"))
        else:
            least = min(graphical, key=lambda s: s.idle_for)
            out.append(Reading("graphical", now - least.idle_for, detail=f"session {least.id} of {least.user}"))
    ssh = [s for s in sessions if s.ssh]
    if ssh:
        # A session without a terminal is a command or a transfer running now (scp, an editor's remote):
        # in use while it lasts, with no keystrokes to time.
        least = min(ssh, key=lambda s: 0.0 if s.idle_for is None else s.idle_for)
        idle = 0.0 if least.idle_for is None else least.idle_for
        out.append(Reading("ssh", now - idle, detail=f"session {least.id} of {least.user}"
                                                      f"{' on ' + least.tty if least.tty else ', no terminal'}"))
    return out


class Started:
    """A start is input: someone (up, the portal, a wake) wanted the desktop now. Set by the service."""

    name = "start"

    def __init__(self):
        self.started_at: dict[str, float] = {}

    def readings(self, dom, now: float) -> list[Reading]:
        at = self.started_at.get(dom.UUIDString())
        return [Reading(self.name, at)] if at is not None else []
