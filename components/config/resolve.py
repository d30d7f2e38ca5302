"""From the stack file as written to the resolved stack: references, placement, overlaps and inheritance.

stackfile.py has checked each value on its own; this checks what depends on
other entries (a pool named must exist and be on the desktop's host, networks
must not overlap, ...) and expands each user into a desktop with their
profile's settings. It works on a partly broken file too (see partial.py),
skipping what builds on a broken value, so that every problem is found at once.
"""
from __future__ import annotations

import ipaddress
import os
from typing import Any, Mapping

from ..cloudinit import available_profiles
from ..guest.checkspec import CheckSpecError, parse_checks
from ..host import policy as host_policy
from ..console.settings import ConsoleSettings
from ..desktop.args import firmware_problems, session_problems
from ..host.resolve import swtpm_installed
from ..host.policy import disk_image_problem
from ..images.packages import template_package_problems
from ..images.recipe import CONSOLE, Recipe, recipe_problems
from ..names import name_problem
from ..resources.pool import SOURCE_PROPS
from .models import (DEFAULT_TIMEOUTS, ContainerConfig, DesktopConfig, HostConfig, ImageConfig, NetworkConfig,
                     PoolConfig, ProfileConfig, ShareConfig, StackConfig, UserConfig, for_user)
from .partial import is_broken
from .problems import Loc, loc_of, path, unknown
from ..host.hardware import Gpu
from .stackfile import (ALL_HOSTS, EMBEDDED, HOW_TO_SET_A_SECRET, Container, Cpu, Desktop, DesktopSettings, DesktopUser,
                        Image, Network, Pool, Profile, StackFile, User)

MiB = 1024**2
# What a bridge network cannot have: the LAN, not vdesk, runs its DHCP and DNS.
_NOT_ON_A_BRIDGE = {
    "dhcp_hosts": "a bridge network has no DHCP of vdesk's: reserve addresses on the LAN's DHCP server",
    "dns_hosts": "a bridge network has no DNS of vdesk's: add records on the LAN's DNS server",
    "domain": "a bridge network has no DNS of vdesk's: the LAN's DNS server serves its domain",
}


def resolve(file: StackFile, *, stack: str, config_keys: Mapping[str, bool], written_keys: set[str],
            broken: set[Loc]) -> tuple[StackConfig, list[tuple[Loc, str]]]:
    """The resolved stack, and every problem found (the stack is only usable without any)."""
    return _Resolver(file, config_keys, broken).stack(stack, written_keys)


class _Resolver:
    def __init__(self, file: StackFile, config_keys: Mapping[str, bool], broken: set[Loc]):
        self.file, self.config_keys, self.broken = file, config_keys, broken
        self.problems: list[tuple[Loc, str]] = []
        self.password_keys: set[str] = set()    # config keys named by users' `password`
        self.hosts: dict[str, HostConfig] = {}
        self.pools: dict[str, PoolConfig] = {}
        self.networks: dict[str, NetworkConfig] = {}
        self.images: dict[str, ImageConfig] = {}
        self.shares: dict[str, ShareConfig] = {}
        self.declared: dict[str, set[str]] = {}  # names per section, broken entries too (their problem is reported)
        self.policy = host_policy.load()          # what this machine's administrator lets a stack touch

    def add(self, loc: Loc, message: str) -> None:
        self.problems.append((loc, message))

    def ok(self, loc: Loc, *names: str) -> bool:
        """Whether the settings `names` of the entry at `loc` validated (and so may be built on)."""
        return not any(is_broken(self.broken, (*loc, name)) for name in names)

    def given(self, loc: Loc, entry, name: str) -> bool:
        """Whether the entry at `loc` sets `name` (to a valid value or not)."""
        return getattr(entry, name) is not None or not self.ok(loc, name)

    def ref(self, loc: Loc, value: str | None, kind: str) -> None:
        """A named entry of another section must exist (a missing or mistyped name is reported already)."""
        known = self.declared.get(f"{kind}s", set())
        if value is not None and value not in known:
            listed = ", ".join(sorted(known)) or "none declared"
            self.add(loc, f"unknown {kind} {value!r} (declared: {listed})")

    def stack(self, stack: str, written_keys: set[str]) -> tuple[StackConfig, list[tuple[Loc, str]]]:
        f = self.file
        self.declared = {section: set(getattr(f, section) or ()) for section in ("hosts", "pools", "networks",
                                                                                   "images", "profiles", "shares")}
        prefix = f.prefix or stack
        if f.prefix is None and not is_broken(self.broken, ("prefix",)) and name_problem(stack):
            self.add(("prefix",), f"{stack!r} is not a valid name prefix: set vdesk:prefix")
        self.hosts = {name: self.host(("hosts", name), name, h) for name, h in _entries(f.hosts)}
        self.pools = {name: self.pool(("pools", name), name, e) for name, e in _entries(f.pools)}
        self.networks = {name: self.network(("networks", name), name, e) for name, e in _entries(f.networks)}
        self.overlaps()
        self.images = {name: self.image(("images", name), name, e) for name, e in _entries(f.images)}
        self.shares = {name: self.share(("shares", name), name, e) for name, e in _entries(f.shares)}
        desktops = {name: self.desktop(("desktops", name), name, e) for name, e in _entries(f.desktops)}
        profiles = {name: self.profile(("profiles", name), name, e) for name, e in _entries(f.profiles)}
        for desktop in self.user_desktops(profiles, desktops):
            desktops[desktop.name] = desktop
        self.addresses(desktops)
        containers = {name: self.container(("containers", name), name, e) for name, e in _entries(f.containers)}
        timeouts = {key: value or DEFAULT_TIMEOUTS[key]
                    for key, value in (f.timeouts.model_dump() if f.timeouts else DEFAULT_TIMEOUTS).items()}
        # A plain `vdesk:` key that is neither a section nor a user's password is a typo (secrets may wait
        # for the user who will name them).
        for key, secret in self.config_keys.items():
            if not secret and key not in StackFile.model_fields and key not in written_keys \
                    and key not in self.password_keys:
                self.add((key,), unknown(StackFile))
        return (StackConfig(prefix, self.hosts, self.pools, self.networks, self.images, desktops, timeouts,
                            profiles, containers, self.shares), self.problems)

    # --- hosts, pools, networks, images ---------------------------------------------------------------

    def host(self, loc: Loc, name: str, h) -> HostConfig:
        """A URI is checked against the administrator's policy before anything connects to it."""
        if h.uri not in (None, EMBEDDED) and self.ok(loc, "uri") and (message := self.policy.uri_problem(h.uri)):
            self.add((*loc, "uri"), message)
        ratios = tuple((k, v) for k, v in (h.overcommit.model_dump() if h.overcommit else {}).items() if v is not None)
        console = None
        if h.console is not None and self.ok(loc, "console"):
            if h.uri != EMBEDDED:
                self.add((*loc, "console"), "the browser console runs beside the embedded host only")
            for field in ("tls_cert", "tls_key"):
                self.allowed((*loc, "console", field), "certificates", getattr(h.console, field))
            console = ConsoleSettings(bind=h.console.bind, port=h.console.port, tls_cert=h.console.tls_cert,
                                      tls_key=h.console.tls_key, link_validity_s=h.console.link_validity)
            for field, message in console.problems(path((*loc, "console"))):
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

    def image_fits(self, loc: Loc, template: str | None, image: str | None, *, autologin, resolution,
                   template_field: str = "template") -> None:
        """The template installs only what the image holds (guests are offline); autologin needs a desktop."""
        entry = self.images.get(image)
        if entry is None or template is None:
            return
        recipe = entry.recipe if entry.recipe is not None else (CONSOLE if entry.golden else None)
        if recipe is not None and template in available_profiles():
            for field, message in template_package_problems(template, recipe, field=path((*loc, template_field)),
                                                            image_name=image,
                                                            recipe_field=f"images.{image}.recipe.packages"):
                self.add(loc_of(field), message)
        desktop = recipe.desktop if recipe is not None else None
        for field, message in session_problems(path(loc), autologin=bool(autologin), resolution=resolution,
                                               desktop=desktop):
            self.add(loc_of(field), message)

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

    def desktop_shares(self, loc: Loc, names, hosts: tuple, where: str = "") -> tuple[str, ...]:
        """Shares by name, each on every host the desktop may be placed on (a share is on one host). `where`:
        the names were checked already (a profile's), and a problem is the key that moved the desktop."""
        for i, name in enumerate(names or ()):
            if not where:
                self.ref((*loc, "shares", i), name, "share")
            share = self.shares.get(name)
            missing = [h for h in hosts if h in self.hosts and share.host not in (h, None)] if share else []
            if not missing:
                continue
            at = (*loc, where) if where else (*loc, "shares", i)
            if len(hosts) == 1 and not where:
                self.add(at, f"{name!r} is on host {share.host!r}, not on {missing[0]!r}")
            else:
                self.add(at, f"share {name!r} is on host {share.host!r}, not on {', '.join(repr(h) for h in missing)}, "
                             f"where this desktop may be placed: a share is on one host, so place the desktop there "
                             f"(host: {share.host})")
        return tuple(n for n in names or () if n is not None)

    # --- desktops, profiles, users --------------------------------------------------------------------

    def desktop(self, loc: Loc, name: str, e: Desktop) -> DesktopConfig:
        host, hosts, pool, network, image = self.placement(loc, e)
        self.template((*loc, "profile"), e.profile)
        self.image_fits(loc, e.profile, image, autologin=e.autologin, resolution=e.resolution,
                        template_field="profile")
        return DesktopConfig(name, host, pool, network, image, (e.memory or 0) // MiB, e.vcpus or 1, e.disk or 0,
                             e.profile, tuple(self.desktop_users((*loc, "users"), e.users or [])), e.running,
                             self.checks((*loc, "checks"), e.checks), source=path(loc),
                             **self.static(loc, e.address, network), adopt=bool(e.adopt),
                             **self.machine(loc, e, hosts, network), hosts=hosts)

    def profile(self, loc: Loc, name: str, e: Profile) -> ProfileConfig:
        self.template((*loc, "template"), e.template)
        host, hosts, pool, network, image = self.placement(loc, e)
        self.image_fits(loc, e.template, image, autologin=e.autologin, resolution=e.resolution)
        return ProfileConfig(name, e.template, host, pool, network, image, (e.memory or 0) // MiB, e.vcpus or 1,
                             e.disk or 0, tuple(e.groups or ()), self.checks((*loc, "checks"), e.checks, user="user"),
                             e.running, **self.machine(loc, e, hosts, network), hosts=hosts)

    def placement(self, loc: Loc, e: DesktopSettings) -> tuple:
        """host (None when vdesk places it), the hosts it may be on, pool, network and image of a desktop or
        profile; the pool and network must be on each of those hosts."""
        if e.hosts is not None or not self.ok(loc, "hosts"):
            if self.given(loc, e, "host"):
                self.add((*loc, "hosts"), "give host or hosts, not both")
            hosts = self.host_list((*loc, "hosts"), e.hosts)
            host = hosts[0] if len(hosts) == 1 else None
        else:
            host = e.host if self.given(loc, e, "host") else next(iter(self.hosts), None)
            self.ref((*loc, "host"), host, "host")
            hosts = (host,) if host is not None else ()
        for key in ("pool", "network", "image"):
            self.ref((*loc, key), getattr(e, key), key)
        self.on_hosts(loc, {"pool": e.pool, "network": e.network}, hosts, "")
        return host, hosts, e.pool, e.network, e.image

    def on_hosts(self, loc: Loc, refs: dict, hosts: tuple, where: str) -> None:
        """The pool and network a desktop uses must be on every host it may be placed on."""
        for key, name in refs.items():
            entry = {"pool": self.pools, "network": self.networks}[key].get(name)
            if entry is None or not entry.hosts:      # (an entry on no valid host is reported already)
                continue
            missing = [h for h in hosts if h in self.hosts and not entry.on(h)]
            if not missing:
                continue
            on = ", ".join(repr(h) for h in entry.hosts) or "no host"
            if len(hosts) == 1 and not where:
                self.add((*loc, key), f"{name!r} is on host {on}, not on {missing[0]!r}")
            else:
                self.add((*loc, where or key), f"{key} {name!r} is on host {on}, not on "
                                               f"{', '.join(repr(h) for h in missing)}, where this desktop may be "
                                               f"placed: declare it there too (hosts: [...] or all)")

    def machine(self, loc: Loc, e: DesktopSettings, hosts: tuple, network: str | None) -> dict:
        """The VM settings a desktop and a profile declare alike: vCPU room, disk clone, CPU, NICs, autostart."""
        max_vcpus = e.max_vcpus
        if max_vcpus is not None and e.vcpus is not None and max_vcpus < e.vcpus:
            self.add((*loc, "max_vcpus"), f"must be >= vcpus ({e.vcpus})")
            max_vcpus = None
        topology = None
        if e.cpu_topology is not None and None not in (t := e.cpu_topology).model_dump().values():
            topology = (t.sockets, t.cores, t.threads)
            product = t.sockets * t.cores * t.threads
            vcpu_max = max_vcpus or e.vcpus
            if vcpu_max is not None and self.ok(loc, "vcpus", "max_vcpus") and product != vcpu_max:
                self.add((*loc, "cpu_topology"), f"sockets x cores x threads is {product}, but the vCPU maximum "
                                                 f"(max_vcpus, else vcpus) is {vcpu_max}")
        image = self.images.get(e.image)
        for field, message in firmware_problems(
                path(loc), secure_boot=bool(e.secure_boot), tpm=bool(e.tpm), machine=e.machine,
                image_boot=image.boot if image is not None and (image.recipe or image.golden or image.path) else None,
                image_name=e.image,
                host_swtpm=swtpm_installed() if e.tpm and any(self.local(h) for h in hosts) else None,
                host_name=next((h for h in hosts if self.local(h)), hosts[0] if hosts else None)):
            if self.ok(loc, "machine", "image") or not field.endswith(".secure_boot"):
                self.add(loc_of(field), message)
        return {"max_vcpus": max_vcpus, "disk_clone": e.disk_clone or "linked", "cpu_topology": topology,
                "secure_boot": bool(e.secure_boot), "tpm": bool(e.tpm),
                "machine": e.machine, "autostart": bool(e.autostart), "kernel_args": e.kernel_args,
                "disk_backup_days": 7 if e.disk_backup_days is None else e.disk_backup_days,
                "home_bytes": e.home, "home_on_removal": e.home_on_removal or "keep",
                "shares": self.desktop_shares(loc, e.shares, hosts),
                "autologin": bool(e.autologin), "resolution": e.resolution,
                "display_password_rotation": e.display.password_rotation if e.display else "",
                "display_password_valid_for": e.display.password_valid_for if e.display else None,
                "extra_networks": self.extra_networks(loc, e.extra_networks or [], hosts, network),
                **self.cpu((*loc, "cpu"), e.cpu, max_vcpus or e.vcpus), "gpus": self.gpus((*loc, "gpus"), e.gpus)}

    def cpu(self, loc: Loc, cpu: Cpu | None, vcpu_max: int | None) -> dict:
        """A CPU mode with its model (custom only), and at most one pin per vCPU (the host is checked later)."""
        if cpu is None:
            return {}
        if cpu.model is not None and cpu.mode not in (None, "custom"):
            self.add((*loc, "model"), f"a named model is mode custom; mode {cpu.mode} takes no model")
        elif cpu.mode == "custom" and cpu.model is None and self.ok(loc, "model"):
            self.add((*loc, "mode"), "custom needs a model, e.g. model: Haswell-noTSX")
        pins = tuple(p for p in cpu.pinning or () if p is not None)
        if vcpu_max is not None and len(pins) > vcpu_max and self.ok(loc, "pinning"):
            self.add((*loc, "pinning"), f"pins {len(pins)} vCPUs, but the desktop has at most {vcpu_max} "
                                        "(max_vcpus, else vcpus)")
        return {"cpu_mode": cpu.mode or ("custom" if cpu.model else None), "cpu_model": cpu.model,
                "cpu_pinning": pins}

    def gpus(self, loc: Loc, gpus: list | None) -> tuple[Gpu, ...]:
        """Each GPU is a whole PCI device or a mediated device type (and a parent only for the latter)."""
        result = []
        for i, g in enumerate(gpus or ()):
            if g is None:
                continue
            where = (*loc, i)
            if g.pci is not None and g.mdev is not None:
                self.add(where, "give pci (a whole device) or mdev (a vGPU type), not both")
            elif g.pci is None and g.mdev is None:
                if self.ok(where, "pci", "mdev"):
                    self.add(where, "give pci: <address> (a whole device) or mdev: <type> (a vGPU)")
            elif g.parent is not None and g.mdev is None:
                self.add((*where, "parent"), "is only for mdev (the device a vGPU is made on)")
            else:
                result.append(Gpu(pci=g.pci, mdev=g.mdev, parent=g.parent))
        return tuple(result)

    def extra_networks(self, loc: Loc, names: list, hosts: tuple, network) -> tuple[str, ...]:
        """Networks for eth1, eth2, ...: known, on the desktop's host, each once, not the main network, with DHCP."""
        for i, name in enumerate(names):
            where = (*loc, "extra_networks", i)
            self.ref(where, name, "network")
            if name not in self.networks:
                continue
            if name == network or name in names[:i]:
                self.add(where, f"{name!r} is already a NIC of this desktop: one NIC per network")
            elif self.networks[name].hosts and \
                    (missing := [h for h in hosts if h in self.hosts and not self.networks[name].on(h)]):
                on = ", ".join(repr(h) for h in self.networks[name].hosts) or "no host"
                self.add(where, f"{name!r} is on host {on}, not on {', '.join(repr(h) for h in missing)}")
            elif not self.networks[name].dhcp:
                self.add(where, f"{name!r} has no DHCP: extra NICs take their address by DHCP")
        return tuple(n for n in names if n is not None)

    def desktop_users(self, loc: Loc, users: list[DesktopUser | None]) -> list[UserConfig]:
        """The accounts of a desktop declared under `desktops` (the first one is the one vdesk logs in as)."""
        result, seen = [], {}
        for i, u in enumerate(users):
            if u is None or u.name is None:
                continue
            if u.name in seen:
                self.add((*loc, i, "name"), f"duplicates {path(loc)}[{seen[u.name]}].name ({u.name!r})")
                continue
            seen[u.name] = i
            result.append(UserConfig(u.name, _good(u.ssh_authorized_keys), _good(u.groups),
                                     self.password((*loc, i, "password"), u.password)))
        return result

    def user_desktops(self, profiles: dict[str, ProfileConfig], desktops: dict) -> list[DesktopConfig]:
        """One desktop per entry of `users`, named after the user: the profile's settings and the user's overrides."""
        result, seen = [], {}
        for i, u in enumerate(self.file.users or []):
            loc = ("users", i)
            if u is None:
                continue
            name = u.name
            usable = name is not None
            if usable and name in seen:
                self.add((*loc, "name"), f"duplicates users[{seen[name]}].name ({name!r})")
                usable = False
            elif usable and name in desktops:
                self.add((*loc, "name"), f"{name!r} is also declared as desktops.{name}; each user's desktop is "
                                         "named after the user")
                usable = False
            if usable:
                seen[name] = i
            self.ref((*loc, "profile"), u.profile, "profile")
            profile = profiles.get(u.profile) if u.profile is not None else None
            password = self.password((*loc, "password"), u.password)
            max_vcpus = self.user_max_vcpus(loc, u, profile)
            self.user_topology(loc, u, profile, max_vcpus)
            hardware = self.user_hardware(loc, u, profile, max_vcpus)
            checks = None if u.checks is None else \
                self.checks((*loc, "checks"), u.checks, user=name if usable else "user")
            if not usable or profile is None:
                continue
            result.append(self.user_desktop(loc, u, profile, password, max_vcpus, checks, hardware))
        return result

    def user_hardware(self, loc: Loc, u: User, profile: ProfileConfig | None, max_vcpus: int | None) -> dict:
        """A user's hosts, CPU and GPUs (own or the profile's); own pins are checked against the user's vCPUs."""
        own: dict = {}
        if u.hosts is not None or not self.ok(loc, "hosts"):
            own["hosts"] = self.host_list((*loc, "hosts"), u.hosts)
            if profile is not None:
                self.on_hosts(loc, {"pool": profile.pool, "network": profile.network}, own["hosts"], "hosts")
        vcpu_max = max_vcpus or u.vcpus or (profile.vcpus if profile else None)
        if u.cpu is not None:
            own.update(self.cpu((*loc, "cpu"), u.cpu, vcpu_max))
        elif profile is not None and vcpu_max is not None and len(profile.cpu_pinning) > vcpu_max \
                and (u.vcpus is not None or u.max_vcpus is not None):     # (else the profile says so itself)
            self.add((*loc, "vcpus" if u.vcpus is not None else "max_vcpus"),
                     f"profile {profile.name!r} pins {len(profile.cpu_pinning)} vCPUs: set {path(loc)}.cpu.pinning "
                     f"for {vcpu_max}")
        if u.gpus is not None:
            own["gpus"] = self.gpus((*loc, "gpus"), u.gpus)
        return own

    def user_desktop(self, loc: Loc, u: User, profile: ProfileConfig, password: str | None, max_vcpus: int | None,
                     checks: tuple | None, hardware: dict) -> DesktopConfig:
        def own(value, inherited):
            return inherited if value is None else value
        user = UserConfig(u.name, _good(u.ssh_authorized_keys), profile.groups if u.groups is None else _good(u.groups),
                          password)
        hosts = hardware.get("hosts", profile.hosts)
        host = hosts[0] if len(hosts) == 1 else None
        inherited = {"cpu": not any(k in hardware for k in ("cpu_mode", "cpu_model", "cpu_pinning")),
                     "gpus": "gpus" not in hardware, "hosts": "hosts" not in hardware}
        if u.shares is not None:
            shares = self.desktop_shares(loc, u.shares, hosts)
        elif inherited["hosts"]:
            shares = profile.shares
        else:   # the profile's shares, against the user's own hosts
            shares = self.desktop_shares(loc, profile.shares, hosts, where="hosts")
        if u.autologin is not None or u.resolution is not None:
            image = self.images.get(profile.image)
            recipe = image and (image.recipe if image.recipe is not None else (CONSOLE if image.golden else None))
            for field, message in session_problems(path(loc), autologin=bool(u.autologin), resolution=u.resolution,
                                                   desktop=recipe.desktop if recipe else None):
                self.add(loc_of(field), message)
        return DesktopConfig(
            u.name, host, profile.pool, profile.network, profile.image,
            profile.memory_mib if u.memory is None else u.memory // MiB, own(u.vcpus, profile.vcpus),
            own(u.disk, profile.disk_bytes), profile.template, (user,), own(u.running, profile.running),
            tuple(for_user(list(own(checks, profile.checks)), u.name)),
            source=path(loc), **self.static(loc, u.address, profile.network), adopt=bool(u.adopt),
            origins=tuple((key, f"profiles.{profile.name}.{key}") for key in ("memory", "vcpus", "max_vcpus")
                          if getattr(u, key) is None)
            + tuple((key, f"profiles.{profile.name}.{key}") for key, yes in inherited.items() if yes),
            max_vcpus=max_vcpus, disk_clone=own(u.disk_clone, profile.disk_clone),
            cpu_topology=profile.cpu_topology, machine=profile.machine, autostart=own(u.autostart, profile.autostart),
            extra_networks=profile.extra_networks, kernel_args=profile.kernel_args, hosts=hosts,
            cpu_mode=hardware.get("cpu_mode", profile.cpu_mode) if not inherited["cpu"] else profile.cpu_mode,
            cpu_model=hardware.get("cpu_model") if not inherited["cpu"] else profile.cpu_model,
            cpu_pinning=hardware.get("cpu_pinning", ()) if not inherited["cpu"] else profile.cpu_pinning,
            gpus=hardware.get("gpus", profile.gpus),
            disk_backup_days=profile.disk_backup_days, home_bytes=own(u.home, profile.home_bytes), shares=shares,
            autologin=own(u.autologin, profile.autologin), resolution=own(u.resolution, profile.resolution),
            secure_boot=profile.secure_boot, tpm=profile.tpm,
            display_password_rotation=profile.display_password_rotation,
            display_password_valid_for=profile.display_password_valid_for,
            home_on_removal=profile.home_on_removal)

    def user_max_vcpus(self, loc: Loc, u: User, profile: ProfileConfig | None) -> int | None:
        """A user's max_vcpus (own or the profile's), checked against the user's vcpus (own or the profile's)."""
        vcpus = u.vcpus
        if not self.given(loc, u, "vcpus") and profile is not None:
            vcpus = profile.vcpus     # (an invalid own vcpus is None: reported already, nothing to compare)
        if self.given(loc, u, "max_vcpus"):
            if u.max_vcpus is not None and vcpus is not None and u.max_vcpus < vcpus:
                self.add((*loc, "max_vcpus"), f"must be >= vcpus ({vcpus})")
                return None
            return u.max_vcpus
        inherited = profile.max_vcpus if profile is not None else None
        if inherited is not None and vcpus is not None and inherited < vcpus:
            self.add((*loc, "vcpus"), f"must be <= max_vcpus ({inherited}) of profile {profile.name!r}, "
                                      f"or set {path(loc)}.max_vcpus too")
            return None
        return inherited

    def user_topology(self, loc: Loc, u: User, profile: ProfileConfig | None, max_vcpus: int | None) -> None:
        """A profile's cpu_topology fixes the vCPU maximum of its users' desktops."""
        if profile is None or not profile.cpu_topology or (u.vcpus is None and not self.given(loc, u, "max_vcpus")):
            return
        sockets, cores, threads = profile.cpu_topology
        if sockets * cores * threads != (max_vcpus or u.vcpus or profile.vcpus):
            self.add((*loc, "vcpus"), f"profile {profile.name!r} has cpu_topology for {sockets * cores * threads} "
                                      "vCPUs; a user cannot change the vCPU maximum of a fixed topology")

    def static(self, loc: Loc, address: str | None, network: str | None) -> dict:
        """A static guest address: inside its network, not the gateway, on a network without DHCP.

        (On a DHCP network, a fixed address is a `dhcp_hosts` reservation instead.)
        """
        if address is None or network not in self.networks:
            return {}
        net, where = self.networks[network], (*loc, "address")
        if net.cidr is None:
            if not self.ok(("networks", network), "cidr"):
                return {}
            self.add(where, f"network {network!r} declares no cidr: give networks.{network}.cidr (its LAN) "
                            "to place a static address on it")
            return {}
        ip, cidr = ipaddress.ip_address(address), ipaddress.ip_network(net.cidr)
        gateway = next(cidr.hosts())
        if ip.version != 4 or ip not in cidr or ip in (cidr.network_address, cidr.broadcast_address, gateway):
            self.add(where, f"{address} is not a usable IPv4 host address of network {network!r} "
                            f"({net.cidr}; {gateway} is its gateway)")
            return {}
        if net.dhcp is not False:
            self.add(where, f"network {network!r} hands out addresses by DHCP: reserve this one with "
                            f"networks.{network}.dhcp_hosts, or set dhcp: false there")
            return {}
        return {"address": f"{ip}/{cidr.prefixlen}", "gateway": str(gateway)}

    def addresses(self, desktops: dict[str, DesktopConfig]) -> None:
        """No two desktops share a static address on one network."""
        taken: dict[tuple[str, str], str] = {}
        for d in desktops.values():
            if d.address:
                key = (d.network, d.address.split("/")[0])
                if key in taken:
                    self.add((*loc_of(d.source), "address"), f"{key[1]} is already the address of {taken[key]}")
                taken.setdefault(key, d.source)

    def password(self, loc: Loc, key: str | None) -> str | None:
        """The name of the secret config key that holds a user's password.

        The key is only named when it is set in plain text: a password written in its place never
        gets this far (its type's wording does not show it either).
        """
        if key is None:
            return None
        self.password_keys.add(key)
        if key not in self.config_keys:
            self.add(loc, "names a vdesk config key that is not set (value not shown, in case it is a password): "
                          f"{HOW_TO_SET_A_SECRET}")
            return None
        if not self.config_keys[key]:
            self.add(loc, f"vdesk:{key} is stored in plain text: set it again with "
                          f"`pulumi config set --secret vdesk:{key}`")
            return None
        return key

    def template(self, loc: Loc, name: str | None) -> None:
        available = available_profiles()
        if name is not None and name not in available:
            self.add(loc, f"unknown template {name!r} (available: {', '.join(available)})")

    def checks(self, loc: Loc, checks: list | None, *, user: str | None = None) -> tuple[dict, ...]:
        """Validate a list of checks (with `{user}` replaced by `user`, if given); return them as declared."""
        try:
            parse_checks(for_user(checks, user) if user else checks, path(loc))
        except CheckSpecError as exc:
            self.problems += [(loc_of(where), message) for where, message in exc.problems]
            return ()
        return tuple(checks or ())

    # --- containers -----------------------------------------------------------------------------------

    def container(self, loc: Loc, name: str, e: Container) -> ContainerConfig:
        host = e.host if self.given(loc, e, "host") else next(iter(self.hosts), None)
        self.ref((*loc, "host"), host, "host")
        network = e.network
        if network is not None:
            self.ref((*loc, "network"), network, "network")
            if network in self.networks and host in self.hosts and self.networks[network].hosts \
                    and not self.networks[network].on(host):
                on = ", ".join(repr(h) for h in self.networks[network].hosts) or "no host"
                self.add((*loc, "network"), f"{network!r} is on host {on}, not on {host!r}")
        self.ref((*loc, "image"), e.image, "image")
        if e.image in self.images and self.images[e.image].path is not None:
            self.add((*loc, "image"), "containers take their root tree from a golden image (golden: debian12)")
        for i, mount in enumerate(e.mounts or ()):
            if mount is not None and mount.source:
                self.allowed((*loc, "mounts", i, "source"), "container_mounts", mount.source, local=self.local(host))
        return ContainerConfig(name, host, network, e.image, (e.memory or 0) // MiB, e.vcpus or 1,
                               tuple(e.command or ()), tuple(f"{k}={v}" for k, v in (e.env or {}).items()),
                               tuple(m.model_dump(exclude_unset=True) for m in e.mounts or () if m),
                               bool(e.userns), bool(e.running), self.checks((*loc, "checks"), e.checks))


def _entries(section: dict | None):
    """The usable entries of a section (a broken one is None; its problem is reported already)."""
    return [(name, entry) for name, entry in (section or {}).items() if entry is not None]


def _good(values) -> tuple:
    return tuple(v for v in values or () if v is not None)
