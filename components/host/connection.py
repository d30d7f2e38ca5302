"""One libvirt connection per provider operation.

Providers are pickled into Pulumi state, so they hold no connection; each
create/read/update/delete opens its own and closes it at the end.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Callable, Iterator, TypeVar

import libvirt

from ..errors import VdeskError

log = logging.getLogger(__name__)
T = TypeVar("T")

# libvirt prints every error to stderr by default; we report them ourselves.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

_NOT_FOUND = {
    libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_NETWORK, libvirt.VIR_ERR_NO_STORAGE_POOL,
    libvirt.VIR_ERR_NO_STORAGE_VOL,
}


@contextlib.contextmanager
def connect(uri: str) -> Iterator[libvirt.virConnect]:
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise VdeskError(f"cannot connect to libvirt host {uri!r}: {exc.get_error_message()}") from exc
    try:
        yield conn
    except libvirt.libvirtError as exc:
        if exc.get_error_domain() in _CONNECTION_LOST_FROM or exc.get_error_code() in _CONNECTION_LOST:
            raise VdeskError(f"lost the connection to libvirt host {uri!r} in the middle of an operation "
                             f"(was libvirtd restarted?): {exc.get_error_message()}. What this run was making is "
                             "noted in vdesk's journal: run it again and it is finished or made anew") from exc
        raise
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


# A broken RPC connection (daemon restarted or gone): the operation's outcome is unknown to this run.
_CONNECTION_LOST_FROM = {libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE}
_CONNECTION_LOST = {libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN}


def lookup(fn: Callable[[str], T], name: str) -> T | None:
    """Look an object up by name; None when libvirt says it does not exist."""
    try:
        return fn(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in _NOT_FOUND:
            return None
        raise


def is_not_found(exc: libvirt.libvirtError) -> bool:
    return exc.get_error_code() in _NOT_FOUND


def probe(uri: str, timeout_s: float) -> str | None:
    """None when the libvirt host at `uri` answers within timeout_s; else why not.

    A dead remote host can keep libvirt.open() waiting for the TCP timeout (minutes), so the
    attempt runs in a daemon thread that is abandoned at the deadline.
    """
    import threading
    outcome: dict[str, str | None] = {}

    def attempt():
        try:
            conn = libvirt.open(uri)
            try:
                conn.getLibVersion()
            finally:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.close()
            outcome["error"] = None
        except libvirt.libvirtError as exc:
            outcome["error"] = (exc.get_error_message() or str(exc)).strip()

    thread = threading.Thread(target=attempt, name=f"probe {uri}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if "error" not in outcome:
        return f"no answer within {timeout_s:g}s"
    return outcome["error"]
