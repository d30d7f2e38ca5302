"""The guest's own sessions, through the guest agent: graphical and SSH input times as logind and X see them.

One `guest-exec` prints the guest's clock and, for each logind session,
`loginctl show-session` plus, for a session on an X display, the X server's
idle time (xprintidle, the MIT-SCREEN-SAVER extension). Xfce does not
maintain logind's IdleHint for graphical sessions (only GNOME's session does,
through SetIdleHint; logind itself leaves a graphical session's hint alone),
so there X's idle time is what counts. A tty or SSH session's IdleSinceHint is
its terminal's atime, which the kernel moves on input.
"""
from __future__ import annotations

import dataclasses
import logging

log = logging.getLogger(__name__)

PROPERTIES = ("Id", "Name", "Class", "Type", "Remote", "TTY", "Display", "State", "IdleHint", "IdleSinceHint")

# Run as root by the agent. Output: Now=<guest realtime µs>, then per session a blank line and key=value lines;
# exit 3 when logind cannot be asked (then nothing is known, rather than 'nobody there').
PROBE_SCRIPT = r"""
echo "Now=$(date +%s%6N)"
sessions=$(loginctl list-sessions --no-legend) || exit 3
for id in $(echo "$sessions" | awk '{print $1}'); do
  echo
  loginctl show-session "$id" """ + " ".join(f"-p {p}" for p in PROPERTIES) + r"""
  display=$(loginctl show-session "$id" -p Display --value)
  user=$(loginctl show-session "$id" -p Name --value)
  if [ -n "$display" ] && command -v xprintidle >/dev/null; then
    home=$(getent passwd "$user" | cut -d: -f6)
    echo "XIdleMs=$(DISPLAY="$display" XAUTHORITY="$home/.Xauthority" xprintidle 2>/dev/null)"
  fi
done
"""
PROBE_ARGV = ["/bin/sh", "-c", PROBE_SCRIPT]
GRAPHICAL = ("x11", "wayland", "mir")


@dataclasses.dataclass(frozen=True)
class Session:
    """One logind session, with how long ago it last saw input (None: it cannot say)."""

    id: str
    user: str
    session_class: str
    type: str
    remote: bool
    tty: str
    display: str
    idle_for: float | None

    @property
    def graphical(self) -> bool:
        return self.type in GRAPHICAL

    @property
    def ssh(self) -> bool:
        return self.remote and self.session_class == "user" and not self.graphical


def _blocks(text: str) -> list[dict[str, str]]:
    blocks, current = [], {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def _idle_for(props: dict[str, str], now_us: int) -> float | None:
    """Seconds since the session's last input: X's own counter on a display, else logind's hint; None: unknown."""
    x_idle = props.get("XIdleMs", "")
    if x_idle.isdigit():
        return int(x_idle) / 1000
    since = int(props["IdleSinceHint"]) if props.get("IdleSinceHint", "").isdigit() else 0
    if props.get("Type") in GRAPHICAL:
        if since == 0:
            return None            # nobody maintains this session's hint (Xfce): logind cannot tell
        return max(0.0, (now_us - since) / 1e6) if props.get("IdleHint") == "yes" else 0.0
    return max(0.0, (now_us - since) / 1e6) if since else None   # a terminal's atime


def parse_probe(text: str) -> list[Session]:
    """The probe's output as the guest's user sessions (not the greeter's, not those closing)."""
    blocks = _blocks(text)
    if not blocks or not blocks[0].get("Now", "").isdigit():
        raise ValueError(f"not the session probe's output: {text[:200]!r}")
    now_us = int(blocks[0]["Now"])
    sessions = []
    for props in blocks[1:]:
        if "Id" not in props or props.get("Class") != "user" or props.get("State") == "closing":
            continue
        sessions.append(Session(props["Id"], props.get("Name", ""), props["Class"], props.get("Type", ""),
                                props.get("Remote") == "yes", props.get("TTY", ""), props.get("Display", ""),
                                _idle_for(props, now_us)))
    return sessions
