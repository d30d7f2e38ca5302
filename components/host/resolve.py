"""Hosts: turn a stack's host entry into a libvirt URI, a namespace and an accelerator."""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from .accel import resolve_accelerator
from ..config.models import EMBEDDED, HostConfig
from ..errors import InputError, VdeskError

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    return Path(os.environ.get("VDESK_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                / "vdesk")


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


def resolve(host: HostConfig, *, probe_kernel: str | None) -> ResolvedHost:
    if host.uri == EMBEDDED:
        from . import embedded
        emb = embedded.ensure_running(embedded.embedded_host(host.name))
        uri, netns, state = emb.uri, emb.netns, Path(emb.state_dir)
        pool_root, display_dir = str(state / "pools"), str(state / "displays")
        # Not under the state dir: $HOME may be 0700, which a container's shifted root cannot traverse.
        lxc_uri, containers_dir = emb.lxc_uri, f"/var/lib/vdesk/{emb.netns_name}/containers"
        qemu_log_dir = str(state / "log" / "qemu")
        os.makedirs(display_dir, exist_ok=True)
    else:
        uri, netns, pool_root, display_dir = host.uri, None, "/var/lib/libvirt/images", None
        lxc_uri = "lxc" + uri[uri.index(":"):] if uri.startswith("qemu") else None
        containers_dir = "/var/lib/vdesk/containers"
        qemu_log_dir = None  # a system host's logs are its administrator's (and logrotate's)
    if host.accelerator == "auto" and not probe_kernel:
        raise InputError([(f"hosts.{host.name}.accelerator",
                           "auto needs a kernel to probe with (declare the golden image) — or set kvm or tcg")])
    try:
        choice = resolve_accelerator(uri, host.accelerator, kernel=probe_kernel,
                                     cache_path=cache_dir() / "accelerator.json")
    except VdeskError as exc:
        raise InputError([(f"hosts.{host.name}.accelerator", str(exc))]) from None
    log.info("host %s: %s (%s)", host.name, choice.accelerator, choice.reason)
    return ResolvedHost(host.name, uri, netns, choice.domain_type, choice.reason, pool_root, display_dir,
                        lxc_uri, containers_dir, qemu_log_dir)
