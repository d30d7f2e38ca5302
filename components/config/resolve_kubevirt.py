"""Hosts of kind `kubevirt` resolved, and what a desktop placed on one may ask for.

A KubeVirt cluster has no libvirt pools, networks, shares or containers, and its scheduler places the
desktops on its nodes: a desktop there is pinned to the host, takes its disk from the host's storage
class, its image from the host's `images`, and of its own settings only those components.kubevirt
turns into objects (KUBEVIRT_DESKTOP_SETTINGS)."""
from __future__ import annotations

import dataclasses
from functools import cache
from typing import Mapping

from ..desktop.settings import ON_KUBEVIRT
from ..desktop.settings import DesktopSettings as OwnSettings
from .kubevirt_host import KUBEVIRT, KUBEVIRT_SETTINGS
from .models import DesktopConfig, HostConfig
from .problems import Loc, loc_of

# A desktop's own settings that a KubeVirt VirtualMachine carries; any other one set is reported.
KUBEVIRT_DESKTOP_SETTINGS = tuple(name for name, field in OwnSettings.model_fields.items()
                                  if ON_KUBEVIRT in field.metadata)
# Why a setting is refused there, where more than "not available" is worth saying.
_WHY_NOT = {"checks": "no readiness gate runs for a desktop there yet (its SSH is reached only from inside the "
                      "cluster, through its <name>-ssh Service), and a declared check that never runs must not "
                      "look passed"}


@dataclasses.dataclass(frozen=True)
class KubevirtHostConfig:
    """How to reach a KubeVirt cluster's namespace, and where its CDI takes the stack's images from."""
    kubeconfig: str
    context: str | None
    namespace: str
    storage_class: str | None
    images: tuple[tuple[str, str | None, str | None], ...] = ()   # (image, url, data_source)

    def image_source(self, image: str) -> tuple[str | None, str | None]:
        """(url, data source) of one of the stack's images."""
        return next(((url, source) for name, url, source in self.images if name == image), (None, None))


def host_kind_problems(loc: Loc, h) -> list[tuple[Loc, str]]:
    """A libvirt host given a kubevirt host's settings."""
    return [((*loc, key), f"is a kubevirt host's setting (this host is kind libvirt: set kind: {KUBEVIRT})")
            for key in KUBEVIRT_SETTINGS if key in h.model_fields_set]


def kubevirt_host(resolver, loc: Loc, name: str, h) -> HostConfig:
    """A kubevirt host: its kubeconfig and namespace, and a source for each image it names."""
    libvirt_keys = [key for key in h.model_fields_set if key not in (*KUBEVIRT_SETTINGS, "kind")]
    for key in libvirt_keys:
        resolver.add((*loc, key), "is a libvirt host's setting (this host is kind kubevirt)")
    for key, what in (("kubeconfig", "the kubeconfig file that reaches the cluster"),
                      ("namespace", "the namespace its desktops go in")):
        if getattr(h, key) is None and resolver.ok(loc, key):
            resolver.add((*loc, key), f"is required on a kubevirt host ({what})")
    # A kubeconfig holds credentials that vdesk (a runner, as root) would use for whoever wrote the stack.
    resolver.allowed((*loc, "kubeconfig"), "kubeconfigs", h.kubeconfig)
    images = []
    for image, source in (h.images or {}).items():
        if source is None:
            continue
        where = (*loc, "images", image)
        resolver.ref(where, image, "image")
        if (source.url is None) == (source.data_source is None):
            if resolver.ok(where, "url", "data_source"):
                resolver.add(where, "give url (an image CDI imports) or data_source (a DataSource it clones), "
                                    "one of the two")
            continue
        images.append((image, source.url, source.data_source))
    cluster = KubevirtHostConfig(h.kubeconfig or "", h.context, h.namespace or "", h.storage_class, tuple(images))
    return HostConfig(name, f"kubevirt://{h.context or 'current-context'}/{h.namespace}", "kvm", kubevirt=cluster)


def is_kubevirt(hosts: Mapping[str, HostConfig], name: str | None) -> bool:
    return name in hosts and hosts[name].kubevirt is not None


def on_clusters_only(hosts: Mapping[str, HostConfig], names) -> bool:
    """Whether every one of `names` (and at least one) is a kubevirt host: there no pool or network is needed."""
    return bool(names) and all(is_kubevirt(hosts, name) for name in names)


@cache
def _defaults() -> OwnSettings:
    return OwnSettings()


def desktop_problems(file, hosts: Mapping[str, HostConfig], desktops: Mapping[str, DesktopConfig]
                     ) -> list[tuple[Loc, str]]:
    """Each desktop on a kubevirt host asks only for what the cluster gives."""
    found = []
    for d in desktops.values():
        clusters = [h for h in d.hosts if is_kubevirt(hosts, h)]
        if not clusters:
            continue
        field = _field_of(file, d)
        if len(d.hosts) > 1:
            found.append((field("hosts"), f"{clusters[0]!r} is a kubevirt host: pin the desktop to it (host: "
                                          f"{clusters[0]}); the cluster's scheduler places it on a node"))
            continue
        cluster = hosts[clusters[0]].kubevirt
        for key, why in (("pool", "its disks go to the host's storage_class"),
                         ("network", "it is on the cluster's pod network")):
            if getattr(d, key) is not None:
                found.append((field(key), f"{clusters[0]!r} is a kubevirt host, which has no libvirt {key}s: {why}"))
        for key in ("extra_networks", "shares"):
            if getattr(d, key):
                found.append((field(key), f"is not available on a kubevirt host ({clusters[0]})"))
        if d.address:
            found.append((field("address"), f"is not available on a kubevirt host ({clusters[0]}): the cluster's "
                                            "network gives the address"))
        for key in OwnSettings.model_fields:
            if key not in KUBEVIRT_DESKTOP_SETTINGS and getattr(d.settings, key) != getattr(_defaults(), key):
                why = f": {_WHY_NOT[key]}" if key in _WHY_NOT else ""
                found.append((field(key), f"is not available on a kubevirt host ({clusters[0]}){why}"))
        url, source = cluster.image_source(d.image)
        if url is None and source is None and d.image is not None:
            found.append((field("image"), f"host {clusters[0]!r} has no source for image {d.image!r}: declare "
                                          f"hosts.{clusters[0]}.images.{d.image} (url or data_source)"))
    return found


def _field_of(file, d: DesktopConfig):
    """Where a setting of a desktop is written: its own entry, or (a user's desktop) its profile's."""
    def field(key: str) -> Loc:
        inherited = dict(d.origins).get(key)
        if inherited is None and d.source.startswith("users["):
            user = file.users[int(d.source[len("users["):-1])]
            if getattr(user, key, None) is None:
                inherited = f"profiles.{user.profile}.{key}"
        return loc_of(inherited or f"{d.source}.{key}")
    return field


def infrastructure_problems(hosts: Mapping[str, HostConfig], pools, networks, shares, containers
                            ) -> list[tuple[Loc, str]]:
    """Pools, networks, shares and containers are a libvirt host's."""
    found = []
    for section, entries in (("pools", pools), ("networks", networks), ("shares", shares),
                             ("containers", containers)):
        for name, entry in entries.items():
            on = getattr(entry, "hosts", ()) or (entry.host,)
            for host in on:
                if is_kubevirt(hosts, host):
                    key = "hosts" if len(on) > 1 or getattr(entry, "spread", False) else "host"
                    found.append(((section, name, key), f"{host!r} is a kubevirt host: {section} are a libvirt "
                                                        "host's"))
    return found
