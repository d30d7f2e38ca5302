"""The stack file's desktops on hosts of kind kubevirt: checked against the cluster at preview, then declared.

The loader (components.config.loader) hands the resolved stack here first: the desktops on a KubeVirt
cluster leave the libvirt part of the stack, each one's objects are dry-run on its cluster with the seed
rendered from placeholder keys, and every refusal is reported at the stack path it comes from
(`users[1].memory`, `hosts.k.storage_class`), all at once, before anything is made."""
from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Mapping

import pulumi

from ..desktop.component import HOME_DEVICE
from ..desktop.seeding import check_seed, password_hash, seed_variables, vm_mac
from ..cloudinit import render_seed
from ..resources.keys import SshKeyPair
from . import model, preflight
from .component import KubevirtDesktopComponent
from .provider import KubeObjectProvider

log = logging.getLogger(__name__)

GiB, MiB = 1024**3, 1024**2
_PREVIEW_MAC = "52:54:00:00:00:01"
# The checks made desktop by desktop; the namespace's quota is judged once, for all of them (_quota_problems).
_ONE_BY_ONE = tuple(check for check in preflight.CHECKS if check is not preflight.memory_quota_problems)
# The server's note beside a schema refusal that its CEL rules were skipped: no problem of its own.
_FOLLOW_ON = "some validation rules were not checked because the object was invalid"
# Which desktop setting a field of a manifest comes from: (kind, field path prefix) -> setting.
_SETTING_OF_FIELD = (
    ("VirtualMachine", "spec.template.spec.domain.resources.requests.memory", "memory"),
    ("VirtualMachine", "spec.template.spec.domain.memory", "memory"),
    ("VirtualMachine", "spec.template.spec.domain.cpu", "vcpus"),
    ("VirtualMachine", "spec.runStrategy", "running"),
    ("DataVolume", "spec.storage.resources", "disk"),
    ("PersistentVolumeClaim", "spec.resources", "home"),
)


def split(config):
    """(the stack without its kubevirt hosts and their desktops, those desktops by name, those hosts by name).
    An image that only they use leaves with them: it is their cluster's to import, not this machine's to build."""
    clusters = {name for name, h in config.hosts.items() if h.kubevirt is not None}
    if not clusters:
        return config, {}, {}
    on_clusters = {n: d for n, d in config.desktops.items() if d.host in clusters}
    libvirt = {n: d for n, d in config.desktops.items() if n not in on_clusters}
    used_here = {d.image for d in libvirt.values()} | {c.image for c in config.containers.values()}
    theirs = {d.image for d in on_clusters.values()} - used_here
    return dataclasses.replace(
        config, hosts={n: h for n, h in config.hosts.items() if n not in clusters}, desktops=libvirt,
        images={n: i for n, i in config.images.items() if n not in theirs},
        profiles={n: p for n, p in config.profiles.items() if p.host not in clusters}), \
        on_clusters, {n: config.hosts[n] for n in clusters}


def desktop_of(d, host, prefix: str, seed, mac: str) -> model.KubevirtDesktop:
    """One resolved desktop (components.config.models.DesktopConfig) as the kubevirt model has it."""
    cluster = host.kubevirt
    url, source = cluster.image_source(d.image)
    data_source = None
    if source is not None:
        namespace, _, name = source.rpartition("/")
        data_source = model.DataSourceRef(namespace or cluster.namespace, name)
    settings = d.settings
    return model.KubevirtDesktop(
        name=f"{prefix}-{d.name}", namespace=cluster.namespace, cpus=settings.vcpus,
        memory_mib=-(-settings.memory // MiB),
        disk_gib=-(-settings.disk // GiB), seed=seed, mac=mac, image_url=url, data_source=data_source,
        run_strategy="Always" if settings.running else "Halted", storage_class=cluster.storage_class,
        home_gib=-(-settings.home // GiB) if settings.home else None)


# --- preview ---------------------------------------------------------------------------------------------

def preview_problems(desktops: Mapping, hosts: Mapping, prefix: str) -> list[tuple[str, str]]:
    """Each desktop's objects as its cluster judges them (server-side dry run, storage class, quota)."""
    if not desktops:
        return []
    from kubernetes.client.rest import ApiException
    from kubernetes.config import ConfigException
    from urllib3.exceptions import HTTPError
    problems: list[tuple[str, str]] = []
    provider = KubeObjectProvider()
    unreachable: set[str] = set()
    # Each host's VirtualMachines' memory, summed against its namespace's quota once all are known.
    demands: dict[str, list[preflight.MemoryDemand]] = {}
    for d in desktops.values():
        host = hosts[d.host]
        if d.host in unreachable:
            continue
        props = {"kubeconfig": host.kubevirt.kubeconfig, "context": host.kubevirt.context or ""}
        try:
            if (missing := _namespace_problem(provider, props, host)) is not None:
                problems.append(missing)
                unreachable.add(d.host)
                continue
            seed = check_seed(d.profile, d.users, hostname=d.name, home_device=HOME_DEVICE if d.settings.home else None,
                              with_password=[u.name for u in d.users if u.password])
            for manifest in model.manifests(desktop_of(d, host, prefix, seed, _PREVIEW_MAC)):
                one = {**props, "manifest": manifest}
                refusals = provider._preflight_problems(one, _ONE_BY_ONE) + provider._dry_run_refusals(one)
                problems += [_stack_problem(d, host, manifest["kind"], field, message)
                             for field, message in refusals if _FOLLOW_ON not in message]
                if manifest["kind"] == "VirtualMachine":
                    demands.setdefault(d.host, []).extend(_memory_demand(provider, props, manifest, d))
        except (ConfigException, OSError, HTTPError) as err:
            problems.append((f"hosts.{d.host}.kubeconfig", f"cannot reach the cluster: {err}"))
            unreachable.add(d.host)
        except ApiException as err:
            problems.append((f"hosts.{d.host}.kubeconfig", f"the cluster refused a preview query: HTTP {err.status} "
                                                          f"{err.reason}"))
            unreachable.add(d.host)
    for name, wanted in demands.items():
        if name not in unreachable:
            problems += _quota_problems(provider, hosts[name], wanted)
    return list(dict.fromkeys(problems))


def _memory_demand(provider: KubeObjectProvider, props: dict, manifest: dict, d) -> list[preflight.MemoryDemand]:
    api_client = provider._api_client(props)
    try:
        demand = preflight.memory_demand(api_client, manifest, d.field("memory"))
    finally:
        api_client.close()
    return [demand] if demand is not None else []


def _quota_problems(provider: KubeObjectProvider, host, demands) -> list[tuple[str, str]]:
    """The memory all of a host's new or growing desktops add, against its namespace's quotas and its nodes."""
    from kubernetes.client.rest import ApiException
    api_client = provider._api_client({"kubeconfig": host.kubevirt.kubeconfig, "context": host.kubevirt.context or ""})
    try:
        return preflight.quota_problems(api_client, host.kubevirt.namespace, demands) \
            + preflight.nodes_together_problems(api_client, demands)
    except ApiException as err:
        return [(f"hosts.{host.name}.kubeconfig", f"the cluster refused a preview query: HTTP {err.status} "
                                                  f"{err.reason}")]
    finally:
        api_client.close()


def _namespace_problem(provider: KubeObjectProvider, props: dict, host) -> tuple[str, str] | None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    api_client = provider._api_client(props)
    try:
        client.CoreV1Api(api_client).read_namespace(host.kubevirt.namespace)
    except ApiException as err:
        if err.status == 404:
            return (f"hosts.{host.name}.namespace", f"namespace {host.kubevirt.namespace!r} does not exist in the "
                                                    "cluster")
        if err.status != 403:        # (a namespaced role may not read namespaces: the dry run still tells)
            raise
    finally:
        api_client.close()
    return None


def _stack_problem(d, host, kind: str, field: str, message: str) -> tuple[str, str]:
    """A manifest's field as the stack path it comes from."""
    place = field.removeprefix("manifest").lstrip(".")
    if place.endswith("storageClassName"):
        return f"hosts.{host.name}.storage_class", message
    if place.startswith("metadata.namespace"):
        return f"hosts.{host.name}.namespace", message
    if kind == "DataVolume" and place.startswith(("spec.source", "spec.sourceRef")):
        return f"hosts.{host.name}.images.{d.image}", message
    setting = next((s for k, prefix, s in _SETTING_OF_FIELD if k == kind and place.startswith(prefix)), None)
    if setting is not None:
        return d.field(setting), message
    if place.startswith(("metadata", "spec.selector")):     # the objects' names and labels: <prefix>-<name>
        return (f"{d.source}.name" if d.source.startswith("users[") else d.source,
                f"the cluster refuses the name of its objects (with the stack's prefix): {message}")
    return d.source, f"the cluster refuses its {kind}{f' ({place})' if place else ''}: {message}"


# --- up ----------------------------------------------------------------------------------------------------

def declare(desktops: Mapping, hosts: Mapping, prefix: str, secret: Callable[[str], pulumi.Input[str]]) -> dict:
    """Each desktop's keys, seed and objects; its outputs as the loader exports them."""
    outputs = {}
    for d in desktops.values():
        host = hosts[d.host]
        vm_name = f"{prefix}-{d.name}"
        mac = vm_mac(host.uri, vm_name)
        login = SshKeyPair(f"{d.name}-login-key", comment=f"vdesk login {vm_name}")
        host_key = SshKeyPair(f"{d.name}-host-key", comment=f"vdesk host {vm_name}")
        with_password = [u for u in d.users if u.password]
        hashes = pulumi.Output.all(host_key.private_key, *(pulumi.Output.secret(secret(u.password))
                                                           for u in with_password)).apply(
            lambda v, users=with_password: {u.name: password_hash(pw, host_private=v[0], user=u.name)
                                            for u, pw in zip(users, v[1:])})

        def spec(values, d=d, host=host, mac=mac):
            login_key, host_private, host_public, hashes = values
            seed = render_seed(d.profile, seed_variables(
                d.users, static=None, hostname=d.name, mac=mac, login_key=login_key, host_private=host_private,
                host_public=host_public, password_hashes=hashes,
                home_device=HOME_DEVICE if d.settings.home else None))
            return desktop_of(d, host, prefix, seed, mac)

        component = KubevirtDesktopComponent(
            d.name, desktop=pulumi.Output.all(login.public_key, host_key.private_key, host_key.public_key,
                                              hashes).apply(spec),
            kubeconfig=host.kubevirt.kubeconfig, context=host.kubevirt.context or "", home=bool(d.settings.home),
            keep_home=d.settings.home_on_removal == "keep", adopt=d.adopt)
        namespace = host.kubevirt.namespace
        outputs[d.name] = {"name": vm_name, "host": d.host, "namespace": namespace, "vm_uid": component.vm_uid,
                           "ssh": f"{vm_name}-ssh.{namespace}.svc", "host_key": host_key.public_key,
                           "user": d.users[0].name if d.users else None,
                           "login_private_key": pulumi.Output.secret(login.private_key)}
    return outputs
