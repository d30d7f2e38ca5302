"""The stack file as one client of the component API: validate it all, then declare it.

Every name in the file becomes a resource or its output here; nothing below
this module looks a name up in a dict.
"""
from __future__ import annotations

from typing import Callable, Mapping

import pulumi

from ..cloudinit import CloudInitError
from ..container import Container, ContainerArgs
from ..desktop import Desktop, DesktopArgs, DesktopUser, Share, Timeouts
from ..desktop.component import HOME_DEVICE
from ..desktop.seeding import check_seed, graphical_session, vm_mac
from ..errors import InputError, VdeskError
from ..host import capacity
from ..host.resolve import resolve as resolve_host
from ..images import golden as image_files
from ..images.image import Image, ImageArgs
from ..resources.network import Network, NetworkArgs
from ..resources.pool import StoragePool, StoragePoolArgs
from .models import SECTIONS, PoolConfig, StackConfig, parse


NAMESPACE = "vdesk"


def read_config() -> dict:
    """Every `vdesk:<section>` key of the stack, as plain Python data."""
    cfg = pulumi.Config(NAMESPACE)
    raw = {}
    for section in SECTIONS:
        value = cfg.get_object(section) if section != "prefix" else cfg.get(section)
        if value is not None:
            raw[section] = value
    return raw


def read_config_keys() -> dict[str, bool]:
    """Every key set in the `vdesk` namespace -> whether it is a secret (values are not read here)."""
    from pulumi.runtime.config import CONFIG, is_config_secret
    return {key.split(":", 1)[1]: is_config_secret(key) for key in CONFIG.get()
            if key.startswith(f"{NAMESPACE}:")}


def _secret(key: str) -> pulumi.Output[str]:
    return pulumi.Config(NAMESPACE).require_secret(key)


def validate(stack: str, raw: dict, *, config_keys: Mapping[str, bool] | None = None) -> StackConfig:
    """What can be checked from the config alone: the config itself, then each desktop's seed (its
    template and cloud-init's schema, rendered with placeholder keys)."""
    config = parse(raw, stack=stack, config_keys=config_keys)
    problems = []
    for d in config.desktops.values():
        try:
            recipe = config.images[d.image].recipe if d.image in config.images else None
            check_seed(d.profile, d.users, hostname=d.name, extra_networks=len(d.extra_networks),
                       static=(d.address, d.gateway) if d.address else None,
                       with_password=[u.name for u in d.users if u.password],
                       home_device=HOME_DEVICE if d.home_bytes else None,
                       shares=[{"tag": n, "mountpoint": f"/mnt/shares/{n}"} for n in d.shares],
                       graphical=graphical_session(recipe.session if recipe else None, d.users, d.autologin))
        except CloudInitError as exc:
            problems += [(d.source, f"the {d.profile!r} template rejects it: {path}: {message}")
                         for path, message in exc.errors]
    if problems:
        raise InputError(problems)
    return config


def check_macs(config: StackConfig, host_uris: Mapping[str, str]) -> None:
    """MACs are derived from names (stable across updates); two desktops on one host must not share one."""
    seen: dict[tuple[str, str], str] = {}
    problems = []
    for d in config.desktops.values():
        for index in range(1 + len(d.extra_networks)):
            mac = vm_mac(host_uris[d.host], f"{config.prefix}-{d.name}", index)
            if (d.host, mac) in seen:
                problems.append((d.source, f"its MAC address {mac} collides with that of {seen[(d.host, mac)]}: "
                                           "rename one of the two"))
            seen.setdefault((d.host, mac), d.source)
    if problems:
        raise InputError(problems)


def check_capacity(config: StackConfig, hosts: Mapping) -> None:
    """Every desktop fits its host alone, and a host's running desktops fit it together (read from libvirt)."""
    used = {d.host for d in config.desktops.values()}
    capacities = {name: capacity.read(name, h.uri, h.domain_type) for name, h in hosts.items() if name in used}

    def field(d, key):
        return dict(d.origins).get(key, f"{d.source}.{key}")

    demands = [capacity.Demand(d.name, d.host, d.memory_mib, d.max_vcpus or d.vcpus, d.running,
                               field(d, "memory"), field(d, "max_vcpus" if d.max_vcpus else "vcpus"))
               for d in config.desktops.values()]
    if problems := capacity.problems(demands, capacities, {n: dict(h.overcommit) for n, h in config.hosts.items()}):
        raise InputError(problems)


def declare(stack: str, raw: dict, *, config_keys: Mapping[str, bool] | None = None,
            secret: Callable[[str], pulumi.Input[str]] = _secret) -> dict:
    """Validate everything, then declare the stack's resources. `secret(key)` reads a secret config value."""
    config: StackConfig = validate(stack, raw, config_keys=config_keys)
    prefix = config.prefix
    # Golden and own images are files here already; a recipe image is built by its Image resource during `up`.
    files = {name: image_files.resolve(img) for name, img in config.images.items() if img.recipe is None}
    probe_kernel = next((f.kernel for f in files.values() if f.kernel), None)
    hosts = {name: resolve_host(h, probe_kernel=probe_kernel) for name, h in config.hosts.items()}
    check_macs(config, {name: h.uri for name, h in hosts.items()})
    check_capacity(config, hosts)

    pools = {name: StoragePool(f"pool-{name}", _pool_args(p, hosts[p.host], prefix))
             for name, p in config.pools.items()}
    networks = {name: Network(f"network-{name}", NetworkArgs(
        host=hosts[n.host], cidr=n.cidr, mode=n.mode, dhcp=n.dhcp, bridge=n.bridge, cidr6=n.cidr6, domain=n.domain,
        dhcp_range=n.dhcp_range, dhcp_hosts=n.dhcp_hosts, dns_hosts=n.dns_hosts, address_sources=n.address_sources,
        libvirt_name=n.libvirt_name or f"{prefix}-{name}", adopt=n.adopt, keep_on_destroy=n.keep_on_destroy))
        for name, n in config.networks.items()}
    images = {name: Image(f"image-{name}", ImageArgs(files=files.get(name), recipe=img.recipe,
                                                     volume_prefix=f"{prefix}-{name}"))
              for name, img in config.images.items()}

    # Each image is imported once per pool that a desktop uses it in; an adopting desktop adopts them too.
    adopted = {(d.image, d.pool) for d in config.desktops.values() if d.adopt}
    for d in config.desktops.values():
        images[d.image].volumes_in(pools[d.pool], name=f"image-{d.image}-{d.pool}",
                                   adopt=(d.image, d.pool) in adopted)

    timeouts = Timeouts(**config.timeouts)
    desktops = {name: Desktop(name, DesktopArgs(
        image=images[d.image], pool=pools[d.pool], network=networks[d.network],
        extra_networks=[networks[n] for n in d.extra_networks],
        users=[DesktopUser(u.name, u.ssh_authorized_keys, u.groups, secret(u.password) if u.password else None)
               for u in d.users],
        template=d.profile, memory=d.memory_mib, vcpus=d.vcpus, max_vcpus=d.max_vcpus,
        cpu_topology=dict(zip(("sockets", "cores", "threads"), d.cpu_topology)) if d.cpu_topology else None,
        machine=d.machine, disk=f"{d.disk_bytes}B", disk_clone=d.disk_clone, disk_backup_days=d.disk_backup_days,
        home=f"{d.home_bytes}B" if d.home_bytes else None, home_on_removal=d.home_on_removal,
        shares=[Share(n, config.shares[n].path, config.shares[n].writable) for n in d.shares],
        autologin=d.autologin, resolution=d.resolution, secure_boot=d.secure_boot, tpm=d.tpm,
        display_password_rotation=d.display_password_rotation,
        display_password_valid_for=d.display_password_valid_for,
        address=d.address.split("/")[0] if d.address else None, running=d.running, autostart=d.autostart,
        checks=d.checks, timeouts=timeouts, adopt=d.adopt, vm_name=f"{prefix}-{name}", kernel_args=d.kernel_args))
        for name, d in config.desktops.items()}

    containers = {name: Container(f"container-{name}", ContainerArgs(
        host=hosts[c.host], image=images[c.image], network=networks[c.network] if c.network else None,
        memory=c.memory_mib, vcpus=c.vcpus, command=c.command, env=dict(e.split("=", 1) for e in c.env),
        mounts=c.mounts, userns=c.userns, running=c.running, checks=c.checks,
        address_timeout_s=config.timeouts["address"], libvirt_name=f"{prefix}-{name}"))
        for name, c in config.containers.items()}

    first_host = next(iter(hosts.values()))
    return {
        "host_uri": first_host.uri,
        "hosts": {n: {"uri": h.uri, "netns": h.netns, "accelerator": h.domain_type,
                      "accelerator_reason": h.accelerator_reason} for n, h in hosts.items()},
        "desktops": {n: d.outputs for n, d in desktops.items()},
        "containers": {n: c.outputs for n, c in containers.items()},
    }


def _pool_args(p: PoolConfig, host, prefix: str) -> StoragePoolArgs:
    return StoragePoolArgs(
        host=host, path=p.path, type=p.type, source_devices=p.source_devices or None, source_name=p.source_name,
        source_host=p.source_host, source_dir=p.source_dir, source_format=p.source_format,
        libvirt_name=p.libvirt_name or f"{prefix}-{p.name}", adopt=p.adopt, keep_on_destroy=p.keep_on_destroy)


def main() -> None:
    """Entry point for __main__.py: validation errors become one readable failure."""
    try:
        outputs = declare(pulumi.get_stack(), read_config(), config_keys=read_config_keys())
    except InputError as exc:
        raise SystemExit(f"invalid vdesk configuration:\n{exc}") from None
    except VdeskError as exc:          # e.g. the host policy itself is broken: the administrator's to fix
        raise SystemExit(f"vdesk: {exc}") from None
    for key, value in outputs.items():
        pulumi.export(key, value)
