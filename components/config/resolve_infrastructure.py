"""The hosts, pools, networks, images and shares of a stack file, checked against each other and the host policy."""
from __future__ import annotations

import dataclasses
import ipaddress
import os
from typing import Any

from ..console.settings import ConsoleSettings
from ..host.policy import disk_image_problem
from ..images.recipe import Recipe, recipe_problems
from ..resources.pool import SOURCE_PROPS
from .kubevirt_host import KUBEVIRT
from .models import HostConfig, ImageConfig, NetworkConfig, PoolConfig, ShareConfig
from .problems import Loc, loc_of, path
from .resolve_kubevirt import host_kind_problems, kubevirt_host
from .stackfile import ALL_HOSTS, EMBEDDED, Image, Network, Pool

# What a bridge network cannot have: the LAN, not vdesk, runs its DHCP and DNS.
_NOT_ON_A_BRIDGE = {
    "dhcp_hosts": "a bridge network has no DHCP of vdesk's: reserve addresses on the LAN's DHCP server",
    "dns_hosts": "a bridge network has no DNS of vdesk's: add records on the LAN's DNS server",
    "domain": "a bridge network has no DNS of vdesk's: the LAN's DNS server serves its domain",
}


class _Infrastructure:
    """What desktops are placed on and made from (a part of resolve._Resolver)."""

    def host(self, loc: Loc, name: str, h) -> HostConfig:
        """A URI is checked against the administrator's policy before anything connects to it."""
        if h.kind == KUBEVIRT:
            return kubevirt_host(self, loc, name, h)
        self.problems += host_kind_problems(loc, h)
        if h.uri not in (None, EMBEDDED) and self.ok(loc, "uri") and (message := self.policy.uri_problem(h.uri)):
            self.add((*loc, "uri"), message)
        ratios = tuple((k, v) for k, v in (h.overcommit.model_dump() if h.overcommit else {}).items() if v is not None)
        console = None
        if h.console is not None and self.ok(loc, "console"):
            if h.uri != EMBEDDED:
                self.add((*loc, "console"), "the browser console runs beside the embedded host only")
            # The gateway's own settings are the host's (a stack that asks for others is refused, exposure.py);
            # how long its links last is the stack's.
            console = dataclasses.replace(self.policy.console, link_validity_s=h.console.link_validity)
            for field, message in ConsoleSettings(link_validity_s=console.link_validity_s).problems(
                    path((*loc, "console"))):
                self.add(loc_of(field), message)
        display = h.display
        return HostConfig(name, h.uri, h.accelerator, ratios, display.listen if display else None,
                          display.spice if display else None, console)

    def local(self, host: str | None) -> bool:
        """Whether a host's paths are this machine's (the embedded host, a local URI)."""
        uri = self.hosts[host].uri if host in self.hosts else None
        return uri in (None, EMBEDDED) or "://" in uri and not uri.split("://", 1)[1].split("/", 1)[0]

    def allowed(self, loc: Loc, kind: str, path: str | None, *, local: bool = True) -> None:
        if path is not None and (message := self.policy.path_problem(kind, path, local=local)):
            self.add(loc, message)

    def spread(self, loc: Loc, e: Pool | Network) -> tuple[str | None, tuple[str, ...], bool]:
        """The host a pool or network is on (`host`), or the hosts it is made on, one each (`hosts`)."""
        if e.hosts is not None or not self.ok(loc, "hosts"):
            if self.given(loc, e, "host"):
                self.add((*loc, "hosts"), "give host or hosts, not both")
            return None, self.host_list((*loc, "hosts"), e.hosts), True
        if not self.given(loc, e, "host"):
            self.add((*loc, "host"), "is required (the name of one of the hosts), or give hosts")
            return None, (), False
        self.ref((*loc, "host"), e.host, "host")
        return e.host, (e.host,), False

    def host_list(self, loc: Loc, value) -> tuple[str, ...]:
        """`hosts:` as names: each one declared and listed once; `all` is every host, in file order."""
        if value is None:
            return ()
        if value == ALL_HOSTS:
            return tuple(self.file.hosts or {})
        names = []
        for i, name in enumerate(value):
            if name is None:
                continue
            if name in names:
                self.add((*loc, i), f"{name!r} is listed twice")
                continue
            self.ref((*loc, i), name, "host")
            names.append(name)
        return tuple(names)

    def pool(self, loc: Loc, name: str, e: Pool) -> PoolConfig:
        host, hosts, spread = self.spread(loc, e)
        libvirt_name = e.adopt if isinstance(e.adopt, str) else None
        # adopt: true means vdesk's own default path; a logical pool's target is its volume group.
        if libvirt_name and not self.given(loc, e, "path") and e.type != "logical":
            self.add((*loc, "path"), "is required to adopt a pool by name: declare its directory")
        local = all(self.local(h) for h in hosts) if hosts else self.local(host)
        if e.type != "logical" and self.ok(loc, "path"):      # (a logical pool has no path: said below)
            self.allowed((*loc, "path"), "pools", e.path, local=local)
        for i, device in enumerate(e.source_devices or ()):
            self.allowed((*loc, "source_devices", i), "devices", device, local=local)
        return PoolConfig(name, host, e.path, adopt=bool(e.adopt), libvirt_name=libvirt_name,
                          keep_on_destroy=bool(e.keep_on_destroy), **self.pool_source(loc, e), hosts=hosts,
                          spread=spread)

    def pool_source(self, loc: Loc, e: Pool) -> dict:
        """A pool's type and where its storage comes from: a directory (dir), an LVM volume group built on
        source_devices or pre-made as source_name (logical), or source_host:source_dir mounted at path (netfs)."""
        kind = e.type
        if kind is None:
            return {}
        for key, owner in SOURCE_PROPS.items():
            if self.given(loc, e, key) and owner != kind:
                self.add((*loc, key), f"only for {owner} pools (this pool's type is {kind})")
        source: dict[str, Any] = {"type": kind}
        if kind == "logical":
            if self.given(loc, e, "path"):
                self.add((*loc, "path"), "a logical pool's target is /dev/<source_name>: leave path unset")
            if not self.given(loc, e, "source_devices") and not self.given(loc, e, "source_name"):
                self.add(loc, "a logical pool needs source_devices (block devices vdesk builds a volume group on) "
                              "or source_name (an existing volume group), or both")
            devices = e.source_devices or []
            for i, device in enumerate(devices):
                if device is not None and device in devices[:i]:
                    self.add((*loc, "source_devices", i), f"{device!r} is listed twice")
            if e.source_devices is not None:
                source["source_devices"] = tuple(d for d in devices if d is not None)
            if e.source_name is not None:
                source["source_name"] = e.source_name
        elif kind == "netfs":
            fmt = e.source_format or "auto"
            if not self.given(loc, e, "source_host"):
                self.add((*loc, "source_host"), "is required for a netfs pool (the file server)")
            export = e.source_dir
            if not self.given(loc, e, "source_dir"):
                self.add((*loc, "source_dir"), "is required for a netfs pool (the exported directory, or a cifs "
                                               "share)")
            elif export is not None and self.ok(loc, "source_format"):
                if fmt == "cifs" and (not export or export.startswith("/")):
                    self.add((*loc, "source_dir"), f"{export!r}: a cifs share is named without a leading '/', "
                                                   "e.g. desktops")
                elif fmt != "cifs" and not os.path.isabs(export):
                    self.add((*loc, "source_dir"), f"{export!r} must be the absolute exported path, e.g. "
                                                   "/srv/desktops")
            source.update(source_host=e.source_host, source_dir=export, source_format=fmt)
        return source

    def network(self, loc: Loc, name: str, e: Network) -> NetworkConfig:
        bridged = e.mode == "bridge"   # the LAN's DHCP server, not vdesk's: no leases to read
        dhcp = e.dhcp if e.dhcp is not None else not bridged
        sources = e.address_sources or (["lease", "agent"] if dhcp and not bridged else ["agent"])
        if "lease" in sources and e.address_sources is not None and self.ok(loc, "mode", "dhcp"):
            if bridged:
                self.add((*loc, "address_sources"), "'lease' is not available on a bridge network: the LAN's DHCP "
                                                    "server keeps its leases (use agent or arp)")
            elif not dhcp:
                self.add((*loc, "address_sources"), "'lease' needs dhcp: true on this network")
        host, hosts, spread = self.spread(loc, e)
        if not self.given(loc, e, "cidr") and not bridged and self.ok(loc, "mode"):
            self.add((*loc, "cidr"), "is required, e.g. 10.77.0.0/24")
        if e.cidr6 is not None and e.cidr is not None and ipaddress.ip_network(e.cidr).version != 4:
            self.add((*loc, "cidr"), f"{e.cidr!r} must be IPv4 when cidr6 gives the IPv6 prefix")
        if self.ok(loc, "mode"):
            self.bridge_mode(loc, e, bridged)
        adopt = e.adopt if e.adopt is not None else False
        return NetworkConfig(name, host, e.cidr, e.mode, dhcp, e.domain,
                             tuple(h.model_dump(exclude_unset=True) for h in e.dhcp_hosts or () if h),
                             tuple(h.model_dump(exclude_unset=True) for h in e.dns_hosts or () if h),
                             tuple(sources), adopt=bool(adopt), libvirt_name=adopt if isinstance(adopt, str) else None,
                             keep_on_destroy=bool(e.keep_on_destroy), cidr6=e.cidr6,
                             bridge=e.bridge if bridged else None, dhcp_range=self.dhcp_range(loc, e, dhcp),
                             hosts=hosts, spread=spread)

    def bridge_mode(self, loc: Loc, e: Network, bridged: bool) -> None:
        """mode: bridge attaches to an existing host bridge, named by `bridge`; other modes make their own."""
        if not bridged:
            if self.given(loc, e, "bridge"):
                self.add((*loc, "bridge"), "is only for mode: bridge (the existing host bridge to attach to); "
                                           "other modes get a bridge of their own")
            return
        if not self.given(loc, e, "bridge"):
            self.add((*loc, "bridge"), "is required with mode: bridge: the name of an existing bridge on the "
                                       "host, e.g. br0")
        if e.dhcp is True:
            self.add((*loc, "dhcp"), "a bridge network's addresses come from the LAN, not from vdesk: remove dhcp")
        for key, why in _NOT_ON_A_BRIDGE.items():
            if getattr(e, key):
                self.add((*loc, key), why)

    def dhcp_range(self, loc: Loc, e: Network, dhcp: bool) -> dict | None:
        """A narrower DHCP pool, e.g. to leave room for static addresses; inside cidr, not the gateway."""
        value = e.dhcp_range
        if value is None or value.start is None or value.end is None:
            return None
        if not dhcp:
            self.add((*loc, "dhcp_range"), "needs dhcp: true")
            return None
        if e.cidr is None:
            return None  # not declared (a bridge) or its own problem is reported already
        net = ipaddress.ip_network(e.cidr)
        gateway = next(net.hosts())
        start, end = ipaddress.ip_address(value.start), ipaddress.ip_address(value.end)
        for key, address in (("start", start), ("end", end)):
            if address.version != net.version or address not in net \
                    or address in (net.network_address, net.broadcast_address, gateway):
                self.add((*loc, "dhcp_range", key), f"{address} is not a host address of {e.cidr} other than the "
                                                    f"gateway {gateway}")
                return None
        if start > end:
            self.add((*loc, "dhcp_range"), f"start {start} is after end {end}")
            return None
        return {"start": str(start), "end": str(end)}

    def overlaps(self) -> None:
        """cidr and cidr6 of each network against those before it on the same host (a bridge network's LAN too)."""
        seen: list[tuple[str, tuple, Any]] = []
        for net in self.networks.values():
            for key in ("cidr", "cidr6"):
                value = getattr(net, key)
                if value is None:  # not declared, or not valid (reported already)
                    continue
                cidr = ipaddress.ip_network(value)
                for other_name, other_hosts, other in seen:
                    shared = next((h for h in net.hosts if h in other_hosts), None)
                    if shared is not None and other.version == cidr.version and other.overlaps(cidr):
                        self.add(("networks", net.name, key), f"{value} overlaps networks.{other_name} ({other}) "
                                                              f"on host {shared!r}")
                seen.append((net.name, net.hosts, cidr))

    def image(self, loc: Loc, name: str, e: Image) -> ImageConfig:
        kinds = [k for k in ("recipe", "golden", "path") if self.given(loc, e, k)]
        if len(kinds) != 1:
            self.add(loc, "give exactly one of recipe (an image vdesk builds for you), golden (its console image) "
                          "or path (your own image file)")
        recipe = None
        if e.recipe is not None and self.ok(loc, "recipe"):
            where = path((*loc, "recipe"))
            written = e.recipe.model_dump(exclude_unset=True)
            found = recipe_problems(written, where)
            for field, message in found:
                self.add(loc_of(field), message)
            if not found:
                recipe = Recipe.parse(written, where, check_packages=False)
        if e.path is not None and self.ok(loc, "path"):
            where = (*loc, "path")
            problems = len(self.problems)
            self.allowed(where, "images", e.path)
            if len(self.problems) == problems and (message := disk_image_problem(e.path)):
                self.add(where, message)
        boot = recipe.boot if recipe is not None else e.boot or ("kernel" if e.golden else "bios")
        return ImageConfig(name, e.golden, e.path, boot, recipe)

    def share(self, loc: Loc, name: str, e) -> ShareConfig:
        host = e.host if self.given(loc, e, "host") else next(iter(self.hosts), None)
        self.ref((*loc, "host"), host, "host")
        if self.ok(loc, "path"):
            self.allowed((*loc, "path"), "shares", e.path, local=self.local(host))
            if self.local(host) and e.path and not os.path.isdir(e.path):
                self.add((*loc, "path"), f"{e.path!r} is not a directory on the host")
        if host in self.hosts and not self.local(host):
            self.add((*loc, "host"), "a share needs vdesk's virtiofsd on its host (read-only, or writable with the "
                                     "guest's ids mapped away from the host's), which only the embedded and local "
                                     "hosts have: share it from a local host")
        return ShareConfig(name, host, e.path, bool(e.writable))
