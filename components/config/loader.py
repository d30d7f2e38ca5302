"""Declare a whole stack from its validated configuration (what __main__ calls)."""
from __future__ import annotations

from typing import Callable, Mapping

import os

import pulumi

from ..images import golden as image_files
from ..cloudinit import CloudInitError
from .models import SECTIONS, PoolConfig, StackConfig, parse
from ..desktop.component import Desktop, ImageVolumes, check_seed, nic_mac
from ..errors import InputError
from ..host.resolve import resolve as resolve_host
from ..resources.container import Container
from ..resources.container_ready import ContainerReady
from ..names import stable_mac
from ..resources.network import Network
from ..resources.pool import StoragePool
from ..resources.volume import Volume


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
            check_seed(d)
        except CloudInitError as exc:
            problems += [(d.source, f"the {d.profile!r} template rejects it: {path}: {message}")
                         for path, message in exc.errors]
    if problems:
        raise InputError(problems)
    return config


def _pool_source(p: PoolConfig) -> dict:
    """A StoragePool's type and source arguments, from its config."""
    return {"pool_type": p.type, "source_devices": list(p.source_devices) or None, "source_name": p.source_name,
            "source_host": p.source_host, "source_dir": p.source_dir, "source_format": p.source_format}


def check_macs(config: StackConfig, host_uris: Mapping[str, str]) -> None:
    """MACs are derived from names (stable across updates); two desktops on one host must not share one."""
    seen: dict[tuple[str, str], str] = {}
    problems = []
    for d in config.desktops.values():
        for index in range(1 + len(d.extra_networks)):
            mac = nic_mac(host_uris[d.host], config.prefix, d.name, index)
            if (d.host, mac) in seen:
                problems.append((d.source, f"its MAC address {mac} collides with that of {seen[(d.host, mac)]}: "
                                           "rename one of the two"))
            seen.setdefault((d.host, mac), d.source)
    if problems:
        raise InputError(problems)


def declare(stack: str, raw: dict, *, config_keys: Mapping[str, bool] | None = None,
            secret: Callable[[str], pulumi.Input[str]] = _secret) -> dict:
    """Validate everything, then declare the stack's resources. `secret(key)` reads a secret config value."""
    config: StackConfig = validate(stack, raw, config_keys=config_keys)
    files = {name: image_files.resolve(img) for name, img in config.images.items()}
    probe_kernel = next((f.kernel for f in files.values() if f.kernel), None)
    hosts = {name: resolve_host(h, probe_kernel=probe_kernel) for name, h in config.hosts.items()}
    check_macs(config, {name: h.uri for name, h in hosts.items()})

    pools = {}
    for name, p in config.pools.items():
        host = hosts[p.host]
        pools[name] = StoragePool(f"pool-{name}", host_uri=host.uri,
                                  pool_name=p.libvirt_name or f"{config.prefix}-{name}",
                                  path=None if p.type == "logical"   # /dev/<volume group>, filled in
                                  else p.path or f"{host.pool_root}/{config.prefix}-{name}", adopt=p.adopt,
                                  opts=pulumi.ResourceOptions(retain_on_delete=p.keep_on_destroy or None),
                                  **_pool_source(p))
    networks = {}
    for name, n in config.networks.items():
        networks[name] = Network(f"network-{name}", host_uri=hosts[n.host].uri,
                                 network_name=n.libvirt_name or f"{config.prefix}-{name}", cidr=n.cidr, mode=n.mode,
                                 dhcp=n.dhcp, dhcp_range=n.dhcp_range, domain=n.domain, dhcp_hosts=n.dhcp_hosts,
                                 dns_hosts=n.dns_hosts,
                                 cidr6=n.cidr6, bridge=n.bridge,
                                 # where the host bridge is looked up; only bridge networks need (and get) it
                                 netns=hosts[n.host].netns if n.mode == "bridge" else None,
                                 adopt=n.adopt, opts=pulumi.ResourceOptions(retain_on_delete=n.keep_on_destroy or None))

    # Each image is imported once per pool that a desktop uses it in. Its volume names carry the
    # image's content hash, so an adopted desktop can adopt them too.
    image_volumes: dict[tuple[str, str], ImageVolumes] = {}
    adopted_images = {(d.image, d.pool) for d in config.desktops.values() if d.adopt}
    for d in config.desktops.values():
        key = (d.image, d.pool)
        if key in image_volumes:
            continue
        f, pool, host = files[d.image], pools[d.pool], hosts[config.pools[d.pool].host]
        common = dict(host_uri=host.uri, pool=pool.name)

        def imported(kind, path, fmt):
            return Volume(f"image-{d.image}-{d.pool}-{kind}", **common,
                          volume_name=f"{config.prefix}-{d.image}-{f.source_id[:12]}-{kind}.{fmt}",
                          format=fmt, source_path=path, source_id=f.source_id, adopt=key in adopted_images)

        disk = imported("disk", f.disk, "qcow2")
        kernel = imported("kernel", f.kernel, "raw") if f.kernel else None
        initrd = imported("initrd", f.initrd, "raw") if f.initrd else None
        image_volumes[key] = ImageVolumes(disk.path, f.boot, kernel and kernel.path, initrd and initrd.path,
                                          f.cmdline)

    desktops = {}
    for name, d in config.desktops.items():
        desktops[name] = Desktop(
            name, cfg=d, stack=stack, prefix=config.prefix, host=hosts[d.host],
            pool_name=pools[d.pool].name, network_name=networks[d.network].name,
            extra_network_names=tuple(networks[n].name for n in d.extra_networks),
            image=image_volumes[(d.image, d.pool)], timeouts=config.timeouts,
            passwords={u.name: secret(u.password) for u in d.users if u.password},
            address_sources=config.networks[d.network].address_sources)

    containers = {name: _container(c, config, hosts[c.host], networks, files, stack)
                  for name, c in config.containers.items()}

    first_host = next(iter(hosts.values()))
    return {
        "host_uri": first_host.uri,
        "hosts": {n: {"uri": h.uri, "netns": h.netns, "accelerator": h.domain_type,
                      "accelerator_reason": h.accelerator_reason} for n, h in hosts.items()},
        "desktops": {n: d.outputs for n, d in desktops.items()},
        "containers": containers,
    }


def _container(c, config: StackConfig, host, networks, files, stack: str) -> dict:
    """Declare one container and its gate; returns its outputs."""
    if not host.lxc_uri:
        raise InputError([(f"containers.{c.name}.host", f"host {c.host!r} has no LXC driver vdesk can use")])
    name = f"{config.prefix}-{c.name}"
    nics = []
    mac = None
    if c.network:
        mac = stable_mac(host.lxc_uri, name, "nic0")
        nics = [networks[c.network].name.apply(lambda n: {"network": n, "mac": mac})]
    container = Container(f"container-{c.name}", {
        "host_uri": host.lxc_uri, "name": name, "owner": stack,
        "image": os.path.dirname(files[c.image].disk), "containers_dir": host.containers_dir,
        "command": list(c.command), "env": list(c.env), "memory_mib": c.memory_mib, "vcpus": c.vcpus,
        "networks": nics, "mounts": [dict(m) for m in c.mounts], "userns": c.userns, "running": c.running,
    })
    outputs = {"name": name, "state": container.state, "uid_base": container.uid_base, "ip": None}
    if c.running:
        ready = ContainerReady(f"container-{c.name}-ready", {
            "host_uri": host.lxc_uri, "name": name, "uuid": container.uuid, "mac": mac,
            "checks": list(c.checks), "address_timeout_s": config.timeouts["address"],
        }, opts=pulumi.ResourceOptions(depends_on=[container]))
        outputs["ip"] = ready.ip
    return outputs


def main() -> None:
    """Entry point for __main__.py: validation errors become one readable failure."""
    try:
        outputs = declare(pulumi.get_stack(), read_config(), config_keys=read_config_keys())
    except InputError as exc:
        raise SystemExit(f"invalid vdesk configuration:\n{exc}") from None
    for key, value in outputs.items():
        pulumi.export(key, value)
