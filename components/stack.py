"""Declare a whole stack from its validated configuration (what __main__ calls)."""
from __future__ import annotations

import pulumi

from . import images as image_files
from .config import StackConfig, parse
from .desktop import Desktop, ImageVolumes
from .errors import InputError
from .hosts import resolve as resolve_host
from .network import Network
from .pool import StoragePool
from .volume import Volume


def read_config() -> dict:
    """Every `vdesk:<section>` key of the stack, as plain Python data."""
    cfg = pulumi.Config("vdesk")
    from .config import SECTIONS
    raw = {}
    for section in SECTIONS:
        value = cfg.get_object(section) if section != "prefix" else cfg.get(section)
        if value is not None:
            raw[section] = value
    return raw


def declare(stack: str, raw: dict) -> dict:
    config: StackConfig = parse(raw, stack=stack)
    files = {name: image_files.resolve(img) for name, img in config.images.items()}
    probe_kernel = next((f.kernel for f in files.values() if f.kernel), None)
    hosts = {name: resolve_host(h, probe_kernel=probe_kernel) for name, h in config.hosts.items()}

    pools = {}
    for name, p in config.pools.items():
        host = hosts[p.host]
        pools[name] = StoragePool(f"pool-{name}", host_uri=host.uri, pool_name=f"{config.prefix}-{name}",
                                  path=p.path or f"{host.pool_root}/{config.prefix}-{name}")
    networks = {}
    for name, n in config.networks.items():
        networks[name] = Network(f"network-{name}", host_uri=hosts[n.host].uri,
                                 network_name=f"{config.prefix}-{name}", cidr=n.cidr, mode=n.mode,
                                 dhcp=n.dhcp, domain=n.domain, dhcp_hosts=n.dhcp_hosts, dns_hosts=n.dns_hosts)

    # Each image is imported once per pool that a desktop uses it in.
    image_volumes: dict[tuple[str, str], ImageVolumes] = {}
    for d in config.desktops.values():
        key = (d.image, d.pool)
        if key in image_volumes:
            continue
        f, pool, host = files[d.image], pools[d.pool], hosts[config.pools[d.pool].host]
        common = dict(host_uri=host.uri, pool=pool.name)

        def imported(kind, path, fmt):
            return Volume(f"image-{d.image}-{d.pool}-{kind}", **common,
                          volume_name=f"{config.prefix}-{d.image}-{f.source_id[:12]}-{kind}.{fmt}",
                          format=fmt, source_path=path, source_id=f.source_id)

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
            image=image_volumes[(d.image, d.pool)], timeouts=config.timeouts)

    first_host = next(iter(hosts.values()))
    return {
        "host_uri": first_host.uri,
        "hosts": {n: {"uri": h.uri, "netns": h.netns, "accelerator": h.domain_type,
                      "accelerator_reason": h.accelerator_reason} for n, h in hosts.items()},
        "desktops": {n: d.outputs for n, d in desktops.items()},
    }


def main() -> None:
    """Entry point for __main__.py: validation errors become one readable failure."""
    try:
        outputs = declare(pulumi.get_stack(), read_config())
    except InputError as exc:
        raise SystemExit(f"invalid vdesk configuration:\n{exc}") from None
    for key, value in outputs.items():
        pulumi.export(key, value)
