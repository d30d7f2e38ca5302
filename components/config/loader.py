"""The stack file as one client of the component API: validate it all, then declare it.

Every name in the file becomes a resource or its output here; nothing below
this module looks a name up in a dict.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import pulumi
from pydantic import ValidationError

from ..cloudinit import CloudInitError
from ..container import Container, ContainerArgs
from ..desktop import Desktop, DesktopArgs, Timeouts
from ..desktop.component import HOME_DEVICE
from ..desktop.seeding import check_seed, graphical_session, mdev_uuid, vm_mac
from ..desktop.wording import from_error, path
from ..errors import InputError, VdeskError
from ..host import capacity, hardware, placement
from ..host.resolve import HostUnreachable, offline as offline_host
from ..host.resolve import resolve as resolve_host
from ..images import golden as image_files
from ..kubevirt import stack as kubevirt_stack
from ..image import Image, ImageArgs
from ..lifecycle.quotas import declared as declared_quotas, lifecycle_dir_of
from ..resources import ownership
from ..resources.hostcheck import HostReachable
from ..resources.network import Network, NetworkArgs
from ..resources.pool import StoragePool, StoragePoolArgs
from ..resources.quota_record import QuotaRecord
from .against_host import host_problems, image_problems, pool_problems
from .models import SECTIONS, PoolConfig, StackConfig
from .resolve import parse


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
                       home_device=HOME_DEVICE if d.settings.home else None,
                       shares=[{"tag": n, "mountpoint": f"/mnt/shares/{n}"} for n in d.shares],
                       graphical=graphical_session(recipe.session if recipe else None, d.users, d.settings))
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


class HostFacts:
    """What the hosts say about themselves (size, CPUs, devices), read once per preview and only when asked."""

    def __init__(self, hosts: Mapping):
        self.hosts = hosts
        self._capacity: dict[str, capacity.Capacity] = {}
        self._hardware: dict[str, hardware.HostHardware] = {}

    def reachable(self, names) -> list[str]:
        return [n for n in names if n in self.hosts and not self.hosts[n].unreachable]

    def capacities(self, names) -> dict[str, capacity.Capacity]:
        for name in self.reachable(names):
            if name not in self._capacity:
                h = self.hosts[name]
                self._capacity[name] = capacity.read(name, h.uri, h.domain_type)
        return {n: self._capacity[n] for n in self.reachable(names)}

    def hardware(self, names) -> dict[str, hardware.HostHardware]:
        for name in self.reachable(names):
            if name not in self._hardware:
                h = self.hosts[name]
                self._hardware[name] = hardware.read(name, h.uri, h.domain_type)
        return {n: self._hardware[n] for n in self.reachable(names)}


def _overcommit(config: StackConfig) -> dict:
    return {n: dict(h.overcommit) for n, h in config.hosts.items()}


def _hardware_demand(d, host: str | None, prefix: str) -> hardware.HardwareDemand:
    vm_name, cpu, gpus = f"{prefix}-{d.name}", d.settings.cpu, d.settings.gpus
    return hardware.HardwareDemand(
        d.name, host, cpu and (cpu.mode or ("custom" if cpu.model else None)), cpu and cpu.model,
        tuple(cpu.pinning or ()) if cpu else (), tuple(hardware.Gpu(g.pci, g.mdev, g.parent) for g in gpus),
        tuple(mdev_uuid(vm_name, i) if g.mdev else None for i, g in enumerate(gpus)),
        (("cpu", d.field("cpu")), ("gpus", d.field("gpus"))))


def place_desktops(stack: str, config: StackConfig, facts: HostFacts) -> tuple[StackConfig, placement.Placement]:
    """Each desktop's host: pinned ones where they are pinned, the others by components.host.placement's rule."""
    flexible = [d for d in config.desktops.values() if len(d.hosts) > 1]
    candidates = sorted({h for d in flexible for h in d.hosts})
    vm_names = {d.name: f"{config.prefix}-{d.name}" for d in config.desktops.values()}
    # Where each desktop is now, asked of the hosts themselves (a stack on one host has nowhere else to be).
    existing = placement.find_existing({h: facts.hosts[h].uri for h in facts.reachable(config.hosts)}, stack,
                                       vm_names.values()) if len(config.hosts) > 1 else {}
    asking = sorted({h for d in flexible if _hardware_demand(d, None, config.prefix).asks for h in d.hosts})
    wants = [placement.Want(d.name, vm_names[d.name], d.hosts or (d.host,), d.settings.memory,
                            d.settings.max_vcpus or d.settings.vcpus, d.settings.running,
                            _hardware_demand(d, None, config.prefix), d.field("hosts"))
             for d in config.desktops.values()]
    result = placement.place(wants, capacities=facts.capacities(candidates), hardware=facts.hardware(asking),
                             overcommit=_overcommit(config), existing=existing,
                             unreachable=[h for h in candidates if facts.hosts[h].unreachable])
    if result.problems:
        raise InputError(result.problems)
    placed = {name: dataclasses.replace(d, host=result.hosts[name]) for name, d in config.desktops.items()}
    return dataclasses.replace(config, desktops=placed), result


def check_capacity(config: StackConfig, hosts: Mapping, facts: HostFacts | None = None) -> None:
    """Every desktop fits its host alone, and a host's running desktops fit it together (read from libvirt).
    Hosts that could not be reached are not checked (their desktops fail at `up`, naming the host)."""
    facts = facts or HostFacts(hosts)
    capacities = facts.capacities({d.host for d in config.desktops.values()})
    demands = [capacity.Demand(d.name, d.host, d.settings.memory, d.settings.max_vcpus or d.settings.vcpus,
                               d.settings.running, d.field("memory"),
                               d.field("max_vcpus" if d.settings.max_vcpus else "vcpus"))
               for d in config.desktops.values() if d.host in capacities]
    if problems := capacity.problems(demands, capacities, _overcommit(config)):
        raise InputError(problems)


def check_hardware(config: StackConfig, facts: HostFacts) -> None:
    """CPU modes, models, pins and GPUs against each desktop's host; one device is one desktop's."""
    demands = [_hardware_demand(d, d.host, config.prefix) for d in config.desktops.values()]
    asking = {d.host for d in demands if d.asks}
    if asking and (problems := hardware.problems(demands, facts.hardware(asking))):
        raise InputError(problems)


def resolve_hosts(config: StackConfig, probe_kernel: str | None) -> dict:
    """Each host as a Host. With several hosts, one that does not answer is described offline and its
    desktops fail on their own at `up`; with one, there is nothing else to bring up, so it fails now."""
    hosts = {}
    for name, h in config.hosts.items():
        try:
            hosts[name] = resolve_host(h, probe_kernel=probe_kernel)
        except HostUnreachable as exc:
            if len(config.hosts) == 1:
                raise InputError([(f"hosts.{name}.uri", f"cannot be reached: {exc.reason}")]) from None
            hosts[name] = offline_host(h, exc.reason)
    return hosts


def _report(config: StackConfig, hosts: Mapping, result: placement.Placement) -> None:
    """Where each desktop lives, in the preview: placed desktops, moves, and hosts that cannot be reached."""
    for name, d in config.desktops.items():
        if len(d.hosts) > 1:
            how = "stays where it is" if name in result.kept else "placed by capacity"
            pulumi.log.info(f"placement: desktop {name} on host {d.host} ({how}; its hosts: {', '.join(d.hosts)})")
    for name, was, now in result.moves:
        why = "no longer one of its hosts" if was not in config.desktops[name].hosts else "its host changed"
        pulumi.log.warn(f"placement: desktop {name} moves from host {was} to host {now} ({was} is {why}); "
                        "it is made again there, with the same keys")
    for name, h in hosts.items():
        if h.unreachable:
            theirs = sorted(n for n, d in config.desktops.items() if d.host == name)
            pulumi.log.warn(f"host {name} ({h.uri}) cannot be reached: {h.unreachable}. Its desktops "
                            f"({', '.join(theirs) or 'none'}) are left as they are and fail at up; the other "
                            "hosts' desktops are brought up first")


def declare(stack: str, raw: dict, *, config_keys: Mapping[str, bool] | None = None,
            secret: Callable[[str], pulumi.Input[str]] = _secret) -> dict:
    """Validate everything, then declare the stack's resources. `secret(key)` reads a secret config value."""
    config: StackConfig = validate(stack, raw, config_keys=config_keys)
    prefix = config.prefix
    # Desktops on a KubeVirt cluster are the cluster's to judge and make (components.kubevirt.stack).
    config, on_clusters, clusters = kubevirt_stack.split(config)
    if problems := kubevirt_stack.preview_problems(on_clusters, clusters, prefix):
        raise InputError(problems)
    # Golden and own images are files here already; a recipe image is built by its Image resource during `up`.
    files = {name: image_files.resolve(img) for name, img in config.images.items() if img.recipe is None}
    if problems := image_problems(config, files):
        raise InputError(problems)
    probe_kernel = next((f.kernel for f in files.values() if f.kernel), None)
    hosts = resolve_hosts(config, probe_kernel)
    facts = HostFacts(hosts)
    config, result = place_desktops(stack, config, facts)
    # Another stack's objects are never taken: refused here, naming the field that reaches for them.
    if owned := ownership.stack_problems(stack, config, hosts, pulumi.get_project()):
        raise InputError(owned)
    check_macs(config, {name: h.uri for name, h in hosts.items()})
    check_capacity(config, hosts, facts)
    check_hardware(config, facts)
    if problems := pool_problems(config, hosts) + host_problems(config, hosts):
        raise InputError(problems)
    _report(config, hosts, result)
    _quota_records(config.quotas, hosts)

    # A host that cannot be reached gets a gate that runs once the other hosts' desktops are done, and
    # everything on it waits for that gate: the engine stops scheduling new steps at the first failure,
    # so that host's failure must come last, and be the gate's (which names the host), not a part's.
    down = {name for name, h in hosts.items() if h.unreachable}
    done_first: list[pulumi.Resource] = []
    gates: dict[str, HostReachable] = {}

    def after_the_others(host: str) -> pulumi.ResourceOptions | None:
        return pulumi.ResourceOptions(depends_on=[gates[host]]) if host in gates else None

    images = {name: Image(f"image-{name}", ImageArgs(files=files.get(name), recipe=img.recipe,
                                                     volume_prefix=f"{prefix}-{name}"))
              for name, img in config.images.items()}
    timeouts = Timeouts(**config.timeouts)
    pools, networks, desktops = {}, {}, {}
    adopted = {(d.image, d.pool, d.host) for d in config.desktops.values() if d.adopt}
    for group in ([h for h in hosts if h not in down], [h for h in hosts if h in down]):
        for name, p in config.pools.items():
            for h in (h for h in p.hosts if h in group):
                pools[(name, h)] = StoragePool(f"pool-{name}-{h}" if p.spread else f"pool-{name}",
                                               _pool_args(p, hosts[h], prefix), opts=after_the_others(h))
        for name, n in config.networks.items():
            for h in (h for h in n.hosts if h in group):
                networks[(name, h)] = Network(f"network-{name}-{h}" if n.spread else f"network-{name}", NetworkArgs(
                    host=hosts[h], cidr=n.cidr, mode=n.mode, dhcp=n.dhcp, bridge=n.bridge, cidr6=n.cidr6,
                    domain=n.domain, dhcp_range=n.dhcp_range, dhcp_hosts=n.dhcp_hosts, dns_hosts=n.dns_hosts,
                    address_sources=n.address_sources, libvirt_name=n.libvirt_name or f"{prefix}-{name}",
                    adopt=n.adopt, keep_on_destroy=n.keep_on_destroy), opts=after_the_others(h))
        # Each image is imported once per pool (so once per host) that a desktop uses it in; an adopting
        # desktop adopts them too.
        mine = [d for d in config.desktops.values() if d.host in group]
        for d in mine:
            spread = config.pools[d.pool].spread
            images[d.image].volumes_in(pools[(d.pool, d.host)], adopt=(d.image, d.pool, d.host) in adopted,
                                       name=f"image-{d.image}-{d.pool}" + (f"-{d.host}" if spread else ""))
        for d in mine:
            desktops[d.name] = Desktop(d.name, _validated_args(d, {
                "image": images[d.image], "pool": pools[(d.pool, d.host)], "network": networks[(d.network, d.host)],
                "extra_networks": [networks[(n, d.host)] for n in d.extra_networks],
                "shares": [{"name": n, "source": config.shares[n].path, "writable": config.shares[n].writable}
                           for n in d.shares],
                "timeouts": timeouts, "vm_name": f"{prefix}-{d.name}"}, secret))
            done_first.append(desktops[d.name].done)
        if group and group[0] not in down:
            done_first += [*pools.values(), *networks.values()]
            gates = {name: HostReachable(f"host-{name}-reachable", name, hosts[name].uri, hosts[name].unreachable,
                                         sorted(n for n, d in config.desktops.items() if d.host == name),
                                         opts=pulumi.ResourceOptions(depends_on=list(done_first)))
                     for name in sorted(down)}
    reachable = {name: gate.reachable for name, gate in gates.items()}

    containers = {name: Container(f"container-{name}", ContainerArgs(
        host=hosts[c.host], image=images[c.image], network=networks[(c.network, c.host)] if c.network else None,
        settings=c.settings, address_timeout_s=config.timeouts["address"], libvirt_name=f"{prefix}-{name}"))
        for name, c in config.containers.items()}

    first_host = next(iter(hosts.values()), None)
    return {
        "host_uri": first_host.uri if first_host else None,
        "hosts": {n: {"uri": h.uri, "netns": h.netns, "accelerator": h.domain_type,
                      "accelerator_reason": h.accelerator_reason, "ssh_jump": h.ssh_jump,
                      "reachable": reachable.get(n, True)} for n, h in hosts.items()},
        "placement": {n: d.host for n, d in config.desktops.items()},
        "desktops": {**{n: desktops[n].outputs for n in config.desktops},
                     **kubevirt_stack.declare(on_clusters, clusters, prefix, secret)},
        "containers": {n: c.outputs for n, c in containers.items()},
    }


def _quota_records(stack_quotas, hosts: dict) -> dict[str, QuotaRecord]:
    """The stack's quotas on each embedded host, which the host's portal, console gateway and lifecycle service hold
    a start or a wake to (components/lifecycle/quotas.py): a resource per host, only when the stack declares a
    quota, so `destroy` removes it and a stack without quotas leaves nothing there."""
    if not any(declared_quotas(stack_quotas).values()):
        return {}
    return {name: QuotaRecord(f"quotas-{name}", lifecycle_dir=lifecycle_dir_of(h.console_dir), quotas=stack_quotas)
            for name, h in hosts.items() if h.console_dir}


def _validated_args(d, references: dict, secret) -> DesktopArgs:
    """Its arguments, validated: its own settings as resolved (a profile's with a user's overrides; checks with
    each user's name filled in), its users with their passwords' secrets, and what it refers to. A problem is
    reported where the desktop is declared (`users[3].tpm`)."""
    try:
        return DesktopArgs.model_validate({
            **references, "settings": d.settings, "template": d.profile, "adopt": d.adopt,
            "address": d.address.split("/")[0] if d.address else None,
            "users": [{**u.model_dump(), "password": secret(u.password) if u.password else None} for u in d.users]})
    except ValidationError as exc:
        raise InputError([(f"{d.source}.{path(loc)}", message)
                          for loc, message in from_error(exc, DesktopArgs)]) from None


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
    from ..cli.access import write_when_applied      # the access files, from the values in hand (issue 25)
    write_when_applied(pulumi.get_stack(), outputs["desktops"])
