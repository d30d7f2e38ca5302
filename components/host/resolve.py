"""Hosts: a KVM host vdesk declares things on, as a libvirt URI, a namespace and an accelerator.

`Host.embedded(...)` starts (or finds) the project's own libvirtd; `Host.at(uri)` names any other
libvirt host. A Host is a plain value, not a Pulumi resource: the pools, networks and desktops
declared on it are the resources.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import pwd
import urllib.parse
from pathlib import Path

from .accel import resolve_accelerator
from .connection import probe
from ..errors import InputError, VdeskError

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    return Path(os.environ.get("VDESK_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                / "vdesk")


EMBEDDED = "embedded"      # the URI that stands for the project's own libvirtd
ACCELERATORS = ("kvm", "tcg", "auto")


@dataclasses.dataclass(frozen=True)
class ResolvedHost:
    name: str
    uri: str
    netns: str | None              # guests live in this network namespace (embedded host)
    domain_type: str               # kvm | qemu
    accelerator_reason: str
    pool_root: str                 # default parent directory of pools
    display_dir: str | None        # VNC sockets (embedded host: no TCP port reachable outside the netns)
    lxc_uri: str | None = None     # the same host's LXC driver (containers)
    containers_dir: str | None = None  # root trees; traversable by the containers' unprivileged uids
    qemu_log_dir: str | None = None    # qemu's per-domain logs, when they are vdesk's files (embedded host)
    ssh_jump: str | None = None        # user@host:port: how guests on its private networks are reached (qemu+ssh)
    unreachable: str | None = None     # why it could not be reached at preview (then nothing was asked of it)

    @classmethod
    def embedded(cls, name: str = "local", *, accelerator: str = "auto",
                 probe_kernel: str | None = None) -> "ResolvedHost":
        """The project's own libvirtd on this machine (started if it is not running)."""
        return resolve_host(name, EMBEDDED, accelerator, probe_kernel=probe_kernel)

    @classmethod
    def at(cls, uri: str, *, name: str | None = None, accelerator: str = "kvm",
           probe_kernel: str | None = None) -> "ResolvedHost":
        """A libvirt host by URI, e.g. qemu:///system or qemu+ssh://admin@kvm2/system."""
        return resolve_host(name or uri, uri, accelerator, probe_kernel=probe_kernel)


Host = ResolvedHost   # the public name: `Host.embedded("local")`, `Host.at("qemu:///system")`
PROBE_TIMEOUT_S = 30.0


class HostUnreachable(VdeskError):
    """A remote host did not answer; `host` is its name in the stack."""

    def __init__(self, host: str, uri: str, reason: str):
        super().__init__(f"host {host!r} ({uri}) cannot be reached: {reason}")
        self.host, self.uri, self.reason = host, uri, reason


def ssh_jump(uri: str) -> str | None:
    """user@host:port of a libvirt URI over SSH (qemu+ssh, +libssh, +libssh2): the host's own sshd, through
    which vdesk reaches guests on the host's private (NAT) networks. None for other transports."""
    parsed = urllib.parse.urlsplit(uri)
    transport = parsed.scheme.partition("+")[2]
    if transport not in ("ssh", "libssh", "libssh2") or not parsed.hostname:
        return None
    user = parsed.username or pwd.getpwuid(os.getuid()).pw_name
    return f"{user}@{parsed.hostname}:{parsed.port or 22}"


def offline(host, reason: str) -> ResolvedHost:
    """A host that did not answer, described from the stack alone (its desktops fail at `up`, naming it)."""
    uri = host.uri
    domain_type = {"kvm": "kvm", "tcg": "qemu"}.get(host.accelerator, "kvm")
    lxc_uri = "lxc" + uri[uri.index(":"):] if uri.startswith("qemu") else None
    return ResolvedHost(host.name, uri, None, domain_type, f"not known: the host cannot be reached ({reason})",
                        "/var/lib/libvirt/images", None, lxc_uri, "/var/lib/vdesk/containers", None,
                        ssh_jump(uri), reason)


def resolve(host, *, probe_kernel: str | None) -> ResolvedHost:
    """A stack file's host entry (name, uri, accelerator) as a Host."""
    return resolve_host(host.name, host.uri, host.accelerator, probe_kernel=probe_kernel)


def resolve_host(name: str, uri: str, accelerator: str, *, probe_kernel: str | None) -> ResolvedHost:
    """Reach the host (starting the embedded one) and settle its accelerator; errors name `hosts.<name>`."""
    if uri == EMBEDDED:
        from . import embedded
        emb = embedded.ensure_running(embedded.embedded_host(name))
        uri, netns, state = emb.uri, emb.netns, Path(emb.state_dir)
        pool_root, display_dir = str(state / "pools"), str(state / "displays")
        # Not under the state dir: $HOME may be 0700, which a container's shifted root cannot traverse.
        lxc_uri, containers_dir = emb.lxc_uri, f"/var/lib/vdesk/{emb.netns_name}/containers"
        qemu_log_dir = str(state / "log" / "qemu")
        os.makedirs(display_dir, exist_ok=True)
    else:
        if (why := probe(uri, PROBE_TIMEOUT_S)) is not None:
            raise HostUnreachable(name, uri, why)
        netns, pool_root, display_dir = None, "/var/lib/libvirt/images", None
        lxc_uri = "lxc" + uri[uri.index(":"):] if uri.startswith("qemu") else None
        containers_dir = "/var/lib/vdesk/containers"
        qemu_log_dir = None  # a system host's logs are its administrator's (and logrotate's)
    if accelerator == "auto" and not probe_kernel:
        raise InputError([(f"hosts.{name}.accelerator",
                           "auto needs a kernel to probe with (declare the golden image) — or set kvm or tcg")])
    try:
        choice = resolve_accelerator(uri, accelerator, kernel=probe_kernel,
                                     cache_path=cache_dir() / "accelerator.json")
    except VdeskError as exc:
        raise InputError([(f"hosts.{name}.accelerator", str(exc))]) from None
    log.info("host %s: %s (%s)", name, choice.accelerator, choice.reason)
    return ResolvedHost(name, uri, netns, choice.domain_type, choice.reason, pool_root, display_dir,
                        lxc_uri, containers_dir, qemu_log_dir, None if netns else ssh_jump(uri))
