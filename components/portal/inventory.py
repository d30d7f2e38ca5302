"""The desktops a host holds, as the portal shows them: read from libvirt, with the owner metadata vdesk writes.

A desktop is a person's when they signed in with the password its stack's record holds for them, and the
domain's owner metadata names that same stack: the record alone never hands out a desktop.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
from pathlib import Path
from typing import Iterable

import libvirt
from PIL import Image

from .. import xmlmodel
from ..console.viewer import viewer_file
from ..guest.screenshot import png_of
from ..lifecycle import actions as idling, quotas

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = (320, 200)
_STATES = {libvirt.VIR_DOMAIN_NOSTATE: "unknown", libvirt.VIR_DOMAIN_RUNNING: "running",
           libvirt.VIR_DOMAIN_BLOCKED: "running", libvirt.VIR_DOMAIN_PAUSED: "paused",
           libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down", libvirt.VIR_DOMAIN_SHUTOFF: "stopped",
           libvirt.VIR_DOMAIN_CRASHED: "crashed", libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended"}
ACTIONS = ("start", "stop", "restart")


class NotYours(Exception):
    """The desktop is not the person's (or does not exist: the two are not told apart)."""


@dataclasses.dataclass(frozen=True)
class Desktop:
    name: str        # the libvirt domain name
    stack: str       # the stack that owns it (its owner metadata)
    state: str       # running | stopped | paused | asleep | idle-off (both: opening it wakes it) | ...
    host: str        # the host's name, as the portal was told it

    @property
    def running(self) -> bool:
        return self.state in ("running", "paused", "shutting down")

    @property
    def asleep(self) -> bool:
        return self.state in idling.SLEEPING


@contextlib.contextmanager
def connect(uri: str):
    """The host's libvirt for one request (the portal sits beside the host, and does not import its layer)."""
    conn = libvirt.open(uri)
    try:
        yield conn
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


def lookup(conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def owner_stack(dom: libvirt.virDomain) -> str:
    """The stack the domain's vdesk metadata names; "" for a domain no stack owns."""
    owner = xmlmodel.Domain.from_xml(dom.XMLDesc(0)).owner
    return (owner.stack or "") if owner is not None else ""


def _state(dom: libvirt.virDomain) -> str:
    state = _STATES.get(dom.state()[0], "unknown")
    return idling.runtime_state(dom) if state == "stopped" else state


def desktops_of(uri: str, host: str, proven: Iterable[tuple[str, str]]) -> list[Desktop]:
    """The person's desktops on the host, from the (stack, desktop) pairs they proved, in name order;
    a desktop another stack owns (or none) is left out."""
    found = []
    with connect(uri) as conn:
        for stack, name in sorted(set(map(tuple, proven)), key=lambda p: (p[1], p[0])):
            dom = lookup(conn, name)
            if dom is None:
                continue
            if owner_stack(dom) != stack:
                log.warning("portal: stack %s lists desktop %s, which it does not own; not shown", stack, name)
                continue
            found.append(Desktop(name, stack, _state(dom), host))
    return found


def every_desktop(uri: str, host: str) -> list[Desktop]:
    """Every desktop a stack owns on the host (its owner metadata), in name order: an administrator's view."""
    found = []
    with connect(uri) as conn:
        for dom in conn.listAllDomains(0):
            stack = owner_stack(dom)
            if stack:
                found.append(Desktop(dom.name(), stack, _state(dom), host))
    return sorted(found, key=lambda d: (d.name, d.stack))


def one_of(uri: str, host: str, proven: Iterable[tuple[str, str]], name: str) -> Desktop:
    """The named desktop if it is the person's; NotYours otherwise."""
    for desk in desktops_of(uri, host, [p for p in proven if p[1] == name]):
        if desk.name == name:
            return desk
    raise NotYours(name)


def act(uri: str, desk: Desktop, action: str, lifecycle_dir: Path | None = None) -> None:
    """start, stop (a graceful shutdown: the guest is asked, not pulled) or restart a desktop. A start is held to
    the host's quotas (`lifecycle_dir`): quotas.QuotaExceeded says which one it would go beyond."""
    with connect(uri) as conn:
        dom = conn.lookupByName(desk.name)
        if action in ("start", "restart") and not dom.isActive():
            quotas.check(conn, lifecycle_dir, desk.name)
        if action == "start":
            if not dom.isActive():
                dom.create()
        elif action == "stop":
            if dom.isActive():
                dom.shutdown()
        elif action == "restart":
            if dom.isActive():
                dom.reboot(0)
            else:
                dom.create()
        else:
            raise ValueError(f"not an action: {action!r}")


def thumbnail(uri: str, desk: Desktop, size: tuple[int, int] = THUMBNAIL_SIZE) -> bytes | None:
    """A small PNG of the desktop's screen; None when it has none to show (stopped, or no display)."""
    from ..guest.screenshot import ScreenshotError
    with connect(uri) as conn:
        try:
            png = png_of(conn, desk.name)
        except ScreenshotError as exc:
            log.debug("no thumbnail of %s: %s", desk.name, exc)
            return None
    image = Image.open(io.BytesIO(png))
    image.thumbnail(size)
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG")
    return out.getvalue()


_WILDCARD = ("0.0.0.0", "::")


def _display_uri(graphics: xmlmodel.Graphics) -> str | None:
    """Where a viewer on the host reaches this display: its socket, or its address and port."""
    if graphics.listen_socket:
        return f"{graphics.type}+unix://{graphics.listen_socket}"
    if not graphics.port or graphics.port < 0:
        return None
    address = graphics.listen_address or "127.0.0.1"
    address = "127.0.0.1" if address in _WILDCARD else f"[{address}]" if ":" in address else address
    return f"{graphics.type}://{address}:{graphics.port}"


def viewer_of(uri: str, desk: Desktop, user: str) -> str | None:
    """The desktop's remote-viewer file (.vv) as its live display is now, password included (a .vv file has no
    other way to carry the credential); None when it is not running or remote-viewer cannot reach its display."""
    with connect(uri) as conn:
        dom = conn.lookupByName(desk.name)
        if not dom.isActive():
            return None
        live = xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE))
    shown = {g.type: g for g in live.graphics if g.type in ("vnc", "spice")}
    if not shown:
        return None
    display = shown.get("vnc") or shown["spice"]
    return viewer_file(f"{desk.name} ({user})", display_uri=_display_uri(shown["vnc"]) if "vnc" in shown else None,
                       spice_uri=_display_uri(shown["spice"]) if "spice" in shown else None, password=display.passwd)
