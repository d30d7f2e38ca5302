"""The desktops, profiles and users of a stack file: placement, inheritance and what each desktop's settings need."""
from __future__ import annotations

import ipaddress

from ..cloudinit import available_profiles
from ..desktop.settings import DesktopSettings as OwnSettings
from ..desktop.settings import (SESSION, FirmwareFacts, Gpu, apply_when_problems, firmware_problems,
                                session_problems, vcpu_problems)
from ..host.resolve import swtpm_installed
from ..desktop.packages import template_package_problems
from ..images.recipe import CONSOLE
from .models import DesktopConfig, for_user
from .problems import Loc, loc_of, path
from .resolve_kubevirt import on_clusters_only
from .stackfile import USER_OVERRIDES, Cpu, Desktop, DesktopSettings, DesktopUser, Profile, User



class _Desktops:
    """Desktops as declared, and one per user from their profile (a part of resolve._Resolver)."""

    def image_fits(self, loc: Loc, template: str | None, image: str | None, own: OwnSettings,
                   template_field: str = "template") -> None:
        """The template installs only what the image holds (guests are offline); a session setting needs a desktop."""
        entry = self.images.get(image)
        if entry is None or template is None:
            return
        recipe = entry.recipe if entry.recipe is not None else (CONSOLE if entry.golden else None)
        if recipe is not None and template in available_profiles():
            for field, message in template_package_problems(template, recipe, field=path((*loc, template_field)),
                                                            image_name=image,
                                                            recipe_field=f"images.{image}.recipe.packages"):
                self.add(loc_of(field), message)
        for field, message in session_problems(path(loc), own, desktop=recipe.desktop if recipe else None):
            self.add(loc_of(field), message)

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


    def desktop(self, loc: Loc, name: str, e: Desktop) -> DesktopConfig:
        host, hosts, pool, network, image = self.placement(loc, e)
        self.template((*loc, "profile"), e.profile)
        self.image_fits(loc, e.profile, image, e, template_field="profile")
        machine = self.machine(loc, e, hosts, network)
        return DesktopConfig(name, host, pool, network, image, e.profile,
                             tuple(self.desktop_users((*loc, "users"), e.users or [])),
                             _own(e, checks=list(self.checks((*loc, "checks"), e.checks)), **machine["settings"]),
                             source=path(loc), **self.static(loc, e.address, network), adopt=bool(e.adopt),
                             **machine["references"], hosts=hosts)

    def profile(self, loc: Loc, name: str, e: Profile) -> Profile:
        """The profile as written, with its checked references and settings in place of what failed a check
        (its users' desktops are made from it)."""
        self.template((*loc, "template"), e.template)
        host, hosts, pool, network, image = self.placement(loc, e)
        self.image_fits(loc, e.template, image, e)
        machine = self.machine(loc, e, hosts, network)
        return e.model_copy(update={"host": host, "hosts": hosts, "groups": tuple(e.groups or ()),
                                    "checks": self.checks((*loc, "checks"), e.checks, user="user"),
                                    **machine["settings"], **machine["references"]})

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
        for key in ("pool", "network"):     # (a KubeVirt cluster has neither)
            if getattr(e, key) is None and self.ok(loc, key) and not on_clusters_only(self.hosts, hosts):
                self.add((*loc, key), f"is required (the name of one of the {key}s)")
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
        problems = vcpu_problems(path(loc), e, ok=self.valid(loc))
        for field, message in problems:
            self.add(loc_of(field), message)
        max_vcpus = None if f"{path(loc)}.max_vcpus" in dict(problems) else e.max_vcpus
        topology = e.cpu_topology if e.cpu_topology is not None and \
            None not in e.cpu_topology.model_dump().values() else None
        image = self.images.get(e.image)
        local = next((h for h in hosts if self.local(h)), None)
        facts = FirmwareFacts(
            image_boot=image.boot if image is not None and (image.recipe or image.golden or image.path) else None,
            image_name=e.image, host_name=local or (hosts[0] if hosts else None),
            host_swtpm=swtpm_installed() if local is not None and e.tpm else None,
            checkable=self.ok(loc, "machine", "image"))
        for field, message in firmware_problems(path(loc), e, facts) + apply_when_problems(path(loc), e):
            self.add(loc_of(field), message)
        return {"settings": {"max_vcpus": max_vcpus, "cpu_topology": topology,
                             "cpu": _checked_pins(e.cpu),
                             "gpus": self.gpus((*loc, "gpus"), e.gpus)},
                "references": {"shares": self.desktop_shares(loc, e.shares, hosts),
                               "extra_networks": self.extra_networks(loc, e.extra_networks or [], hosts, network)}}

    def valid(self, loc: Loc):
        """ok() of the entry at `loc` for settings named by their dotted path (cpu.model)."""
        def ok(*names: str) -> bool:
            return all(self.ok((*loc, *name.split(".")[:-1]), name.split(".")[-1]) for name in names)
        return ok

    def gpus(self, loc: Loc, gpus: list | None) -> list[Gpu]:
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
                result.append(g)
        return result

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

    def desktop_users(self, loc: Loc, users: list[DesktopUser | None]) -> list[DesktopUser]:
        """The accounts of a desktop declared under `desktops` (the first one is the one vdesk logs in as)."""
        result, seen = [], {}
        for i, u in enumerate(users):
            if u is None or u.name is None:
                continue
            if u.name in seen:
                self.add((*loc, i, "name"), f"duplicates {path(loc)}[{seen[u.name]}].name ({u.name!r})")
                continue
            seen[u.name] = i
            result.append(_account(u, password=self.password((*loc, i, "password"), u.password)))
        return result

    def user_desktops(self, profiles: dict[str, Profile], desktops: dict) -> list[DesktopConfig]:
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

    def user_hardware(self, loc: Loc, u: User, profile: Profile | None, max_vcpus: int | None) -> dict:
        """A user's hosts, CPU and GPUs (own or the profile's); own pins are checked against the user's vCPUs."""
        own: dict = {}
        if u.hosts is not None or not self.ok(loc, "hosts"):
            own["hosts"] = self.host_list((*loc, "hosts"), u.hosts)
            if profile is not None:
                self.on_hosts(loc, {"pool": profile.pool, "network": profile.network}, own["hosts"], "hosts")
        vcpu_max = max_vcpus or u.vcpus or (profile.vcpus if profile else None)
        pins = _pins(profile.cpu) if profile is not None else ()
        if u.cpu is not None:
            alone = OwnSettings.model_construct(vcpus=vcpu_max, max_vcpus=None, cpu_topology=None, cpu=u.cpu)
            for field, message in vcpu_problems(path(loc), alone, ok=self.valid(loc)):
                self.add(loc_of(field), message)
            own["cpu"] = _checked_pins(u.cpu)
        elif profile is not None and vcpu_max is not None and len(pins) > vcpu_max \
                and (u.vcpus is not None or u.max_vcpus is not None):     # (else the profile says so itself)
            self.add((*loc, "vcpus" if u.vcpus is not None else "max_vcpus"),
                     f"profile {u.profile!r} pins {len(pins)} vCPUs: set {path(loc)}.cpu.pinning for {vcpu_max}")
        if u.gpus is not None:
            own["gpus"] = self.gpus((*loc, "gpus"), u.gpus)
        return own

    def user_desktop(self, loc: Loc, u: User, profile: Profile, password: str | None, max_vcpus: int | None,
                     checks: tuple | None, hardware: dict) -> DesktopConfig:
        user = _account(u, password=password, groups=profile.groups if u.groups is None else u.groups)
        hosts = hardware.get("hosts", profile.hosts)
        host = hosts[0] if len(hosts) == 1 else None
        inherited = {"cpu": "cpu" not in hardware, "gpus": "gpus" not in hardware, "hosts": "hosts" not in hardware,
                     "machine": True}
        if u.shares is not None:
            shares = self.desktop_shares(loc, u.shares, hosts)
        elif inherited["hosts"]:
            shares = profile.shares
        else:   # the profile's shares, against the user's own hosts
            shares = self.desktop_shares(loc, profile.shares, hosts, where="hosts")
        own = _own(profile, **{**{key: getattr(u, key) for key in USER_OVERRIDES if getattr(u, key) is not None},
                               **{key: value for key, value in hardware.items() if key in ("cpu", "gpus")},
                               "max_vcpus": max_vcpus,
                               "checks": for_user(list(profile.checks if checks is None else checks), u.name)})
        if any(getattr(u, key) is not None for key in SESSION):
            image = self.images.get(profile.image)
            recipe = image and (image.recipe if image.recipe is not None else (CONSOLE if image.golden else None))
            for field, message in session_problems(path(loc), own, desktop=recipe.desktop if recipe else None):
                self.add(loc_of(field), message)
        return DesktopConfig(
            u.name, host, profile.pool, profile.network, profile.image, profile.template, (user,), own,
            source=path(loc), **self.static(loc, u.address, profile.network), adopt=bool(u.adopt),
            origins=tuple((key, f"profiles.{u.profile}.{key}") for key in ("memory", "vcpus", "max_vcpus",
                                                                            "disk", "home")
                          if getattr(u, key) is None)
            + tuple((key, f"profiles.{u.profile}.{key}") for key, yes in inherited.items() if yes),
            extra_networks=profile.extra_networks, hosts=hosts, shares=shares)

    def user_max_vcpus(self, loc: Loc, u: User, profile: Profile | None) -> int | None:
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
            self.add((*loc, "vcpus"), f"must be <= max_vcpus ({inherited}) of profile {u.profile!r}, "
                                      f"or set {path(loc)}.max_vcpus too")
            return None
        return inherited

    def user_topology(self, loc: Loc, u: User, profile: Profile | None, max_vcpus: int | None) -> None:
        """A profile's cpu_topology fixes the vCPU maximum of its users' desktops."""
        if profile is None or not profile.cpu_topology or (u.vcpus is None and not self.given(loc, u, "max_vcpus")):
            return
        t = profile.cpu_topology
        product = t.sockets * t.cores * t.threads
        if product != (max_vcpus or u.vcpus or profile.vcpus):
            self.add((*loc, "vcpus"), f"profile {u.profile!r} has cpu_topology for {product} "
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


def _own(entry: DesktopSettings, **checked) -> OwnSettings:
    """A desktop's or profile's own settings, as declared (a broken one is None: its problem is reported), with
    `checked` in place of what resolve has checked against the other settings (a value that failed is unset)."""
    return OwnSettings.model_construct(**{**{key: getattr(entry, key) for key in OwnSettings.model_fields}, **checked})


def _checked_pins(cpu: Cpu | None) -> Cpu | None:
    """The CPU without the pins that failed their check (a partly broken list has None for them)."""
    return cpu if cpu is None or cpu.pinning is None else cpu.model_copy(update={"pinning": list(_pins(cpu))})


def _pins(cpu: Cpu | None) -> tuple:
    return tuple(p for p in cpu.pinning or () if p is not None) if cpu is not None else ()


def _account(u: DesktopUser, **checked) -> DesktopUser:
    """A user's account as written (a person's: its part that is an account), with `checked` in place and
    without the items of its lists that failed their check (a partly broken list has None for them)."""
    fields = {**{key: getattr(u, key) for key in DesktopUser.model_fields}, **checked}
    return DesktopUser.model_construct(**{key: [v for v in value if v is not None] if isinstance(value, (list, tuple))
                                          else value for key, value in fields.items()})

