"""DesktopArgs: what a Pulumi program declares about one desktop, checked before anything exists."""
from __future__ import annotations

import dataclasses
import ipaddress
import typing
from typing import TYPE_CHECKING, Sequence

import pulumi
from pydantic import BaseModel, ValidationError

from ..errors import InputError
from ..host.hardware import Gpu
from ..kinds import Timeouts   # the readiness gate's waits and a graceful shutdown, as the stack file declares them
from ..names import name_problem
from .settings import (DESKTOP_RESOLUTION, RESOLUTION, DesktopSettings, FirmwareFacts, firmware_problems,
                       session_problems, vcpu_problems)
from .wording import from_error, path

if TYPE_CHECKING:
    from ..image import Image
    from ..resources.network import Network
    from ..resources.pool import StoragePool

HOME_SERIAL = "vdesk-home"           # the home volume's disk serial: /dev/disk/by-id/virtio-vdesk-home in the guest


@dataclasses.dataclass(frozen=True)
class DesktopUser:
    """An account on the desktop; the first user is the one vdesk logs in as for its checks."""

    name: str
    ssh_authorized_keys: Sequence[str] = ()
    groups: Sequence[str] = ()
    password: pulumi.Input[str] | None = None    # a Pulumi secret; reaches the guest only as a hash
    email: str | None = None      # the host portal maps an OpenID Connect identity with this `email` to them


@dataclasses.dataclass(frozen=True)
class Share:
    """A host directory mounted in the desktop at /mnt/shares/<name> (virtiofs), read-only unless writable."""

    name: str
    source: str
    writable: bool = False

    @property
    def mountpoint(self) -> str:
        return f"/mnt/shares/{self.name}"


@dataclasses.dataclass(init=False)
class DesktopArgs:
    """One virtual desktop: what it is made from and where it lives, and its settings (declared once, in
    components.desktop.settings.DesktopSettings).

    A setting may also be given as a keyword of its own (`memory="2GiB"`), or a nested one joined by `_`
    (`display_password_valid_for="30d"` for display.password_valid_for, `cpu_mode=...` for cpu.mode); it is
    checked, as written, with the other problems (`check`)."""

    image: "Image"
    pool: "StoragePool"
    network: "Network"
    users: Sequence[DesktopUser] = (DesktopUser("desk"),)
    template: str = "desktop"                # a template under templates/user-data/
    shares: Sequence[Share] = ()             # host directories mounted at /mnt/shares/<name>
    extra_networks: Sequence["Network"] = ()  # eth1, eth2, ...: DHCP on each
    address: str | None = None               # a static IPv4 address, on a network without DHCP
    timeouts: Timeouts = Timeouts()
    adopt: bool = False                      # take over its domain, disk and seed if they exist
    vm_name: str | None = None               # its libvirt name (default <stack>-<resource name>)
    settings: DesktopSettings = dataclasses.field(default_factory=DesktopSettings)

    def __init__(self, image: "Image", pool: "StoragePool", network: "Network", *,
                 settings: DesktopSettings | None = None, **keywords):
        self.image, self.pool, self.network = image, pool, network
        for field in dataclasses.fields(self)[3:]:
            if field.name == "settings":
                continue
            default = field.default if field.default_factory is dataclasses.MISSING else field.default_factory()
            setattr(self, field.name, keywords.pop(field.name, default))
        self.settings, self._setting_problems, self._written_as = _settings(settings or DesktopSettings(), keywords)

    @classmethod
    def from_settings(cls, own: DesktopSettings, **references) -> "DesktopArgs":
        """A desktop's arguments from its declared settings and what it refers to."""
        return cls(settings=own, **references)

    def __getattr__(self, name: str):
        """A setting, read as an attribute of the arguments (`args.memory`: bytes)."""
        if name != "settings" and name in DesktopSettings.model_fields and "settings" in self.__dict__:
            return getattr(self.settings, name)
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    @property
    def memory_mib(self) -> int:
        """Memory in a KubeVirt manifest's unit (Mi): the one edge outside libvirt's XML that is not bytes."""
        return self.settings.memory // 1024**2

    @property
    def display_password_rotation(self) -> str:
        return self.settings.display.password_rotation if self.settings.display else ""

    @property
    def display_password_valid_for_s(self) -> int | None:
        return self.settings.display.password_valid_for if self.settings.display else None

    @property
    def disk_bytes(self) -> int:
        return self.settings.disk

    @property
    def home_bytes(self) -> int | None:
        return self.settings.home

    @property
    def display_size(self) -> tuple[int, int] | None:
        """(width, height) of the display: the declared resolution, a desktop image's default, else None
        (a console image keeps libvirt's own adapter)."""
        text = self.resolution or (DESKTOP_RESOLUTION if self.image.graphical else None)
        match = RESOLUTION.match(text) if text else None
        return (int(match.group(1)), int(match.group(2))) if match else None

    @property
    def static_address(self) -> tuple[str, str] | None:
        """(address/prefix, gateway) of a static address on its network, or None."""
        if not self.address:
            return None
        cidr = ipaddress.ip_network(self.network.args.cidr)
        return f"{ipaddress.ip_address(self.address)}/{cidr.prefixlen}", self.network.args.gateway

    def problems(self, name: str) -> list[tuple[str, str]]:
        """What is wrong with these arguments, as (`<name>.<field>`, message) pairs."""
        found = [(f"{name}.{field}", message) for field, message in self._setting_problems]
        own = self.settings

        def problem(field, message):
            found.append((f"{name}.{field}", message))

        found += [(f"{name}.{self._written(*field.lstrip('.').split('.'))}", message)
                  for field, message in vcpu_problems("", own)]
        if not self.users:
            problem("users", "declare at least one user")
        host = self.pool.host
        for field, net in [("network", self.network), *((f"extra_networks[{i}]", n)
                                                        for i, n in enumerate(self.extra_networks))]:
            if net.host.uri != host.uri:
                problem(field, f"is on host {net.host.name!r}, but the pool is on {host.name!r}")
        if self.vm_name is not None and (message := name_problem(self.vm_name)):
            problem("vm_name", message)
        if self.address is not None:
            found += self._address_problems(name)
        found += firmware_problems(name, own, FirmwareFacts(
            image_boot=getattr(getattr(self.image, "files", None), "boot", None),
            host_swtpm=getattr(host, "swtpm", None), host_name=getattr(host, "name", None)))
        recipe = getattr(self.image, "recipe", None)
        found += session_problems(name, own, desktop=recipe.desktop if recipe else None)
        return found

    def _written(self, *loc) -> str:
        return _where_written(loc, self._written_as)

    @property
    def cpu_mode(self) -> str | None:
        cpu = self.settings.cpu
        return None if cpu is None else cpu.mode or ("custom" if cpu.model else None)

    @property
    def cpu_model(self) -> str | None:
        return self.settings.cpu.model if self.settings.cpu else None

    @property
    def cpu_pinning(self) -> list:
        return list(self.settings.cpu.pinning or ()) if self.settings.cpu else []

    @property
    def hostdev_gpus(self) -> list[Gpu]:
        return [Gpu(pci=g.pci, mdev=g.mdev, parent=g.parent) for g in self.settings.gpus]

    def _address_problems(self, name: str) -> list[tuple[str, str]]:
        net = self.network.args
        try:
            ip, cidr = ipaddress.ip_address(self.address), ipaddress.ip_network(net.cidr)
        except (TypeError, ValueError):
            return [(f"{name}.address", f"{self.address!r} is not an IPv4 address inside the network's cidr")]
        if ip.version != 4 or ip not in cidr or str(ip) == net.gateway or ip in (cidr.network_address,
                                                                                 cidr.broadcast_address):
            return [(f"{name}.address", f"{ip} is not a usable host address of {cidr} ({net.gateway} is its gateway)")]
        if net.dhcp is not False:
            return [(f"{name}.address", "the network hands out addresses by DHCP: give it dhcp=False, "
                                        "or reserve the address with its dhcp_hosts")]
        return []

    def check(self, name: str) -> None:
        """Raise InputError listing every problem (the stack loader has already checked its own input)."""
        if problems := self.problems(name):
            raise InputError(problems)


def _route(keywords: dict) -> tuple[dict, dict]:
    """Settings given as keywords, as the declaration's nested shape: `cpu_mode` is cpu.mode where cpu is a
    model with a field mode. Returns them and where each nested one was written ({("cpu", "mode"): "cpu_mode"})."""
    fields, written, written_as = DesktopSettings.model_fields, {}, {}
    for key, value in keywords.items():
        if key in fields:
            written[key] = list(value) if isinstance(value, tuple) else value
            continue
        outer, _, inner = key.partition("_")
        while inner and outer not in fields:
            more, _, inner = inner.partition("_")
            outer = f"{outer}_{more}"
        nested = _model_of(fields[outer].annotation) if outer in fields else None
        if nested is None or inner not in nested.model_fields:
            raise TypeError(f"DesktopArgs got an unexpected keyword argument {key!r}")
        written.setdefault(outer, {})[inner] = list(value) if isinstance(value, tuple) else value
        written_as[(outer, inner)] = key
    return written, written_as


def _model_of(annotation) -> type[BaseModel] | None:
    """The settings model a field holds (its type, or the one of `X | None`)."""
    for kind in (annotation, *typing.get_args(annotation)):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
    return None


def _where_written(loc: tuple, written_as: dict) -> str:
    """A setting's path as its keyword was written (display_password_valid_for), else the declaration's."""
    for (outer, inner), key in written_as.items():
        if tuple(loc[:2]) == (outer, inner):
            return path((key, *loc[2:]))
    return path(loc)


def _settings(base: DesktopSettings, keywords: dict) -> tuple[DesktopSettings, list[tuple[str, str]], dict]:
    """`base` with the settings written as keywords, each checked by its declaration; a wrong one is left out
    (base's stays) and reported, worded as the stack file's are, with every other."""
    written, written_as = _route(keywords)
    if not written:
        return base, [], written_as
    try:
        checked = DesktopSettings.model_validate(written)
        problems = []
    except ValidationError as exc:
        problems = [(_where_written(loc, written_as), message) for loc, message in from_error(exc, DesktopSettings)]
        bad = {loc[0] for loc, _ in from_error(exc, DesktopSettings)}
        written = {key: value for key, value in written.items() if key not in bad}
        checked = DesktopSettings.model_validate(written)
    return base.model_copy(update={key: getattr(checked, key) for key in written}), problems, written_as
