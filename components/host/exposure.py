"""What a stack would expose beyond this machine, or hand from the host to a guest: the administrator's call.

A stack file may ask for a display or console on the host's network, a
container whose root is the host's root, a host bridge, a host PCI device, a
writable share, a file server, an existing volume group, a KubeVirt cluster's
namespace. Each is refused at
preview unless the host policy (components.host.policy) gives leave; the
message names the stack field and the policy key that would allow it. The
libvirt hosts a stack may name are checked with its URIs (Policy.uri_problem).
"""
from __future__ import annotations

import ipaddress
import os
from typing import Iterator

from ..xmlmodel import format_pci_address, split_pci_address
from .policy import CONSOLE_KEYS, Policy

Loc = tuple[str | int, ...]
KUBEVIRT = "kubevirt"     # a host of this kind (components.config.kubevirt_host) is a cluster's namespace
ANY = "*"        # in mdev_parents: vGPUs may be made on any device of the host that offers their type


def problems(file, policy: Policy, *, local=lambda host: True) -> list[tuple[Loc, str]]:
    """Every exposure `file` (a components.config.stackfile.StackFile) asks for that `policy` does not allow.

    `local(host)`: whether a host's paths are this machine's (they are resolved before they are compared).
    """
    return [*_hosts(file, policy), *_networks(file, policy), *_pools(file, policy), *_shares(file, policy, local),
            *_containers(file, policy), *_gpus(file, policy)]


def _entries(section) -> Iterator[tuple[str, object]]:
    return ((name, entry) for name, entry in (section or {}).items() if entry is not None)


def _beyond_loopback(address: str) -> bool:
    try:
        return not ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False          # not an address: its own check says so


def _hosts(file, policy: Policy) -> Iterator[tuple[Loc, str]]:
    for name, host in _entries(file.hosts):
        listen = host.display.listen if host.display is not None else None
        if listen and _beyond_loopback(listen) and not policy.allows("display_listen", listen):
            yield ("hosts", name, "display", "listen"), \
                f"puts every desktop's display on the host's network: {policy.refusal('display_listen', listen)}"
        yield from _console(name, host.console, policy)
        namespace = getattr(host, "namespace", None)
        if host.kind == KUBEVIRT and namespace and not policy.allows("kubevirt_namespaces", namespace):
            yield ("hosts", name, "namespace"), \
                f"puts desktops in a cluster's namespace: {policy.refusal('kubevirt_namespaces', namespace)}"


def _console(name: str, console, policy: Policy) -> Iterator[tuple[Loc, str]]:
    """The gateway is the host's, shared by every stack on it: a stack may restate its settings, never change
    them (a change would rebind it, and cut every stack's sessions)."""
    if console is None:
        return
    for field in sorted(console.model_fields_set & set(CONSOLE_KEYS)):
        asked, host = getattr(console, field), getattr(policy.console, field)
        if asked != host:
            yield ("hosts", name, "console", field), (
                f"{asked!r}: the console gateway is the host's, shared by every stack on it, and serves "
                f"{host!r}: its administrator sets it as `console.{field}` in {policy.source}; a stack cannot "
                "change it")


def _networks(file, policy: Policy) -> Iterator[tuple[Loc, str]]:
    for name, net in _entries(file.networks):
        if net.mode == "bridge" and net.bridge and not policy.allows("bridges", net.bridge):
            yield ("networks", name, "bridge"), \
                f"puts guests on the host bridge's LAN: host bridge {policy.refusal('bridges', net.bridge)}"


def _pools(file, policy: Policy) -> Iterator[tuple[Loc, str]]:
    for name, pool in _entries(file.pools):
        if pool.type == "netfs" and pool.source_host and not policy.allows("netfs_servers", pool.source_host):
            yield ("pools", name, "source_host"), \
                f"mounts a file server on the host: server {policy.refusal('netfs_servers', pool.source_host)}"
        # (with source_devices vdesk builds the group itself, on devices the policy's `devices` allow)
        if pool.type == "logical" and pool.source_name and not pool.source_devices \
                and not policy.allows("volume_groups", pool.source_name):
            yield ("pools", name, "source_name"), \
                f"uses an existing volume group: {policy.refusal('volume_groups', pool.source_name)}"


def _shares(file, policy: Policy, local) -> Iterator[tuple[Loc, str]]:
    first_host = next(iter(file.hosts or {}), None)
    for name, share in _entries(file.shares):
        if not share.writable or not share.path:
            continue
        host = share.host or first_host
        real = os.path.realpath(share.path) if local(host) else os.path.normpath(share.path)
        if not any(real == root or real.startswith(root.rstrip("/") + "/") for root in policy.writable_shares):
            via = f" (it resolves to {real})" if real != os.path.normpath(share.path) else ""
            yield ("shares", name, "writable"), \
                (f"lets desktops write to {share.path!r}{via} on the host: its administrator may allow that with a "
                 f"root in `writable_shares` in {policy.source} (allowed now: "
                 f"{', '.join(policy.writable_shares) or 'none'})")


def _containers(file, policy: Policy) -> Iterator[tuple[Loc, str]]:
    for name, container in _entries(file.containers):
        if container.userns is False and not policy.containers_without_userns:
            yield ("containers", name, "userns"), \
                f"false makes the container's root the host's root: {policy.refusal('containers_without_userns')}"


def _gpus(file, policy: Policy) -> Iterator[tuple[Loc, str]]:
    places = [(("desktops", n), e) for n, e in _entries(file.desktops)]
    places += [(("profiles", n), e) for n, e in _entries(file.profiles)]
    places += [(("users", i), u) for i, u in enumerate(file.users or ()) if u is not None]
    for loc, entry in places:
        for i, gpu in enumerate(entry.gpus or ()):
            if gpu is None:
                continue
            where = (*loc, "gpus", i)
            if gpu.pci and gpu.mdev is None and not policy.allows("pci_devices", _pci(gpu.pci)):
                yield (*where, "pci"), ("detaches the device from the host and gives it to the guest: PCI device "
                                        + policy.refusal("pci_devices", _pci(gpu.pci)))
            if gpu.mdev and gpu.pci is None:
                if gpu.parent and not policy.allows("mdev_parents", _pci(gpu.parent)):
                    yield (*where, "parent"), "vGPU parent " + policy.refusal("mdev_parents", _pci(gpu.parent))
                elif not gpu.parent and ANY not in policy.mdev_parents:
                    yield (*where, "mdev"), ("without a parent the vGPU may be made on any device of the host: set "
                                             "its parent to one the administrator allows in `mdev_parents` in "
                                             f"{policy.source} (allowed now: {', '.join(policy.mdev_parents) or 'none'}"
                                             f"; {ANY!r}: any)")


def _pci(address: str) -> str:
    """0000:01:00.0, however it was written (01:00.0 too), so one policy entry matches both."""
    try:
        return format_pci_address(*split_pci_address(address))
    except ValueError:
        return address
