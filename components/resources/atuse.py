"""Host paths checked again when they are used: preview's check is made again, on the resolved path.

A stack's paths are checked when the stack is read (config/resolve.py). A directory swapped
for a symlink between then and the provider's create or update would lead out of the
administrator's roots; so the provider resolves the path now, checks that against the policy,
and gives libvirt the resolved path (a refresh maps it back to the declared one).
"""
from __future__ import annotations

import os

from ..errors import VdeskError
from ..host import policy as host_policy


def on_this_machine(uri: str) -> bool:
    """Whether a host's paths are this machine's: a local libvirt URI (the test driver's name nothing)."""
    return "://" in uri and not uri.startswith("test:") and not uri.split("://", 1)[1].split("/", 1)[0]


def resolved(kind: str, path: str, field: str) -> str:
    """`path` resolved now, if the policy still allows it as a `kind` (shares, container_mounts, ...)."""
    real = os.path.realpath(path)
    if problem := host_policy.load().path_problem(kind, real):
        raise VdeskError(f"{field}: {path!r} now resolves to {real}, which is refused at use: {problem}")
    return real


def image_file(path: str, field: str, *, disk: bool) -> str:
    """An image file to upload, resolved now: still under the policy's image roots and (`disk`) still a disk
    image, and the resolved path is what is read, so a file swapped for a symlink since preview (to
    /etc/shadow, to a qcow2 on a backing file) is refused."""
    real = resolved("images", path, field)
    if disk and (problem := host_policy.disk_image_problem(real)):
        raise VdeskError(f"{field}: {path!r} is refused at use: {problem}")
    return real


def as_declared(declared: str | None, live: str | None, uri: str) -> str | None:
    """The declared path where libvirt has its resolution (no drift), else what libvirt has."""
    if declared is not None and on_this_machine(uri) and os.path.realpath(declared) == live:
        return declared
    return live
