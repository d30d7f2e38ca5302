"""DesktopArgs: what a Pulumi program declares about one desktop, checked before anything exists."""
from __future__ import annotations

import dataclasses
import ipaddress
from typing import TYPE_CHECKING, Mapping, Sequence

import pulumi
from pydantic import ValidationError

from ..errors import InputError
from ..host.hardware import CPU_MODES, Gpu
from ..xmlmodel import parse_cpuset
from ..names import name_problem, parse_duration, parse_size
from .settings import (DESKTOP_RESOLUTION, RESOLUTION, DesktopSettings, FirmwareFacts, firmware_problems,
                       session_problems)
from .wording import from_error, path

if TYPE_CHECKING:
    from ..image import Image
    from ..resources.network import Network
    from ..resources.pool import StoragePool

# The settings of DesktopArgs that its declaration checks (the others have shapes of the component's own), and
# where the declaration's nested display settings are in the arguments.
_DECLARED = ("memory", "vcpus", "max_vcpus", "machine", "disk", "disk_clone", "disk_backup_days", "home",
             "home_on_removal", "running", "autostart", "kernel_args", "autologin", "secure_boot", "tpm")
_ARGUMENT = {"display.password_rotation": "display_password_rotation",
             "display.password_valid_for": "display_password_valid_for"}
HOME_SERIAL = "vdesk-home"           # the home volume's disk serial: /dev/disk/by-id/virtio-vdesk-home in the guest
@dataclasses.dataclass(frozen=True)
class DesktopUser:
    """An account on the desktop; the first user is the one vdesk logs in as for its checks."""

    name: str
    ssh_authorized_keys: Sequence[str] = ()
    groups: Sequence[str] = ()
    password: pulumi.Input[str] | None = None    # a Pulumi secret; reaches the guest only as a hash


@dataclasses.dataclass(frozen=True)
class Share:
    """A host directory mounted in the desktop at /mnt/shares/<name> (virtiofs), read-only unless writable."""

    name: str
    source: str
    writable: bool = False

    @property
    def mountpoint(self) -> str:
        return f"/mnt/shares/{self.name}"


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """Bounds, in seconds, of the readiness gate's waits and of a graceful shutdown."""

    address: int = 600
    ssh: int = 300
    cloud_init: int = 900
    shutdown: int = 60
    graphical: int = 600      # a desktop image: until its screen shows the desktop (not a console)


@dataclasses.dataclass
class DesktopArgs:
    """One virtual desktop: its image, where it lives, its size, its users and how it is checked."""

    image: "Image"
    pool: "StoragePool"
    network: "Network"
    users: Sequence[DesktopUser] = (DesktopUser("desk"),)
    template: str = "desktop"                # a template under templates/user-data/
    memory: int | str = "1GiB"               # an int is MiB
    vcpus: int = 1
    max_vcpus: int | None = None             # room to hot-plug vCPUs without a restart
    cpu_topology: Mapping[str, int] | None = None     # {sockets, cores, threads}
    machine: str | None = None               # q35, pc, or a versioned machine type
    disk: int | str = "8GiB"                 # an int is GiB
    disk_clone: str = "linked"               # linked (a clone on the image) | full (an independent copy)
    disk_backup_days: int = 7                # a replaced system disk is kept this long (0: not kept)
    home: int | str | None = None            # a separate volume mounted at /home (an int is GiB); None: none
    home_on_removal: str = "keep"            # when the desktop is removed: keep its home volume, or delete it
    shares: Sequence[Share] = ()             # host directories mounted at /mnt/shares/<name>
    extra_networks: Sequence["Network"] = ()  # eth1, eth2, ...: DHCP on each
    address: str | None = None               # a static IPv4 address, on a network without DHCP
    running: bool = True
    autostart: bool = False
    checks: Sequence[Mapping] = ()           # declarative guest checks (components.guest.checkspec)
    autologin: bool = False                  # desktop images: the first user is logged in to the session at boot
    resolution: str | None = None            # "WIDTHxHEIGHT" of the display (desktop images: 1280x800)
    timeouts: Timeouts = Timeouts()
    adopt: bool = False                      # take over its domain, disk and seed if they exist
    display_password_rotation: str = ""      # a rotation trigger: any new value makes a new display password
    display_password_valid_for: int | str | None = None   # how long each display password works (seconds,
                                                          # or "12h", "30d"); unset: until rotated
    vm_name: str | None = None               # its libvirt name (default <stack>-<resource name>)
    kernel_args: str | None = None           # appended to a golden image's kernel command line
    cpu_mode: str | None = None              # host-passthrough | host-model | custom (default: libvirt's)
    cpu_model: str | None = None             # a named CPU model (implies custom)
    cpu_pinning: Sequence[int | str] = ()    # host CPUs per vCPU, in vCPU order: [2, "3-4"]
    gpus: Sequence[Mapping[str, str]] = ()   # {pci: "0000:01:00.0"} (whole device) | {mdev: type, parent?}
    secure_boot: bool = False                # UEFI with Secure Boot enforced (Microsoft's keys): a UEFI image, q35
    tpm: bool = False                        # a TPM 2.0 (tpm-crb), emulated by the host's swtpm

    @classmethod
    def from_settings(cls, own: DesktopSettings, **references) -> "DesktopArgs":
        """A desktop's arguments from its declared settings (sizes in bytes) and what it refers to; a reference
        given here (e.g. checks with each user's name filled in) takes the place of the setting."""
        plain = own.model_dump(exclude={"cpu", "gpus", "display", "cpu_topology"})
        for key in ("memory", "disk", "home"):
            if plain.get(key) is not None:
                plain[key] = f"{plain[key]}B"
        display = own.display
        plain.update(display_password_rotation=display.password_rotation if display else "",
                     display_password_valid_for=display.password_valid_for if display else None)
        return cls(**{**plain, **references})

    @property
    def memory_mib(self) -> int:
        return parse_size(self.memory, default_unit="MiB") // 1024**2

    @property
    def display_password_valid_for_s(self) -> int | None:
        v = self.display_password_valid_for
        return None if v is None else parse_duration(v)

    @property
    def disk_bytes(self) -> int:
        return parse_size(self.disk, default_unit="GiB")

    @property
    def home_bytes(self) -> int | None:
        return None if self.home is None else parse_size(self.home, default_unit="GiB")

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
        found = []

        def problem(field, message):
            found.append((f"{name}.{field}", message))

        found += self._settings_problems(name)
        if self.max_vcpus is not None and isinstance(self.vcpus, int) and isinstance(self.max_vcpus, int) \
                and self.max_vcpus < self.vcpus:
            problem("max_vcpus", f"must be >= vcpus ({self.vcpus})")
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
        found += [(f"{name}.{field}", message) for field, message in self._hardware_problems()]
        found += firmware_problems(name, self, FirmwareFacts(
            image_boot=getattr(getattr(self.image, "files", None), "boot", None),
            host_swtpm=getattr(host, "swtpm", None), host_name=getattr(host, "name", None)))
        recipe = getattr(self.image, "recipe", None)
        found += session_problems(name, self, desktop=recipe.desktop if recipe else None)
        return found

    def _settings_problems(self, name: str) -> list[tuple[str, str]]:
        """Its own settings, checked by their declaration (components.desktop.settings), worded as the stack
        file's are. (resolution and the CPU, GPU and checks are checked below and by the readiness gate.)"""
        written = {key: getattr(self, key) for key in _DECLARED if getattr(self, key) is not None}
        written["display"] = {"password_rotation": self.display_password_rotation,
                              "password_valid_for": self.display_password_valid_for}
        try:
            DesktopSettings.model_validate(written)
        except ValidationError as exc:
            return [(f"{name}.{_ARGUMENT.get(path(loc), path(loc))}", message)
                    for loc, message in from_error(exc, DesktopSettings)]
        return []

    def _hardware_problems(self) -> list[tuple[str, str]]:
        """The CPU and GPU settings on their own (the host checks them at preview: components.host.hardware)."""
        found = []
        if self.cpu_mode is not None and self.cpu_mode not in CPU_MODES:
            found.append(("cpu_mode", f"{self.cpu_mode!r} is not one of {', '.join(CPU_MODES)}"))
        if self.cpu_model is not None and self.cpu_mode not in (None, "custom"):
            found.append(("cpu_model", f"a named model is cpu_mode custom, not {self.cpu_mode}"))
        vcpu_max = self.max_vcpus or self.vcpus
        for i, cpuset in enumerate(self.cpu_pinning):
            try:
                parse_cpuset(cpuset)
            except ValueError as exc:
                found.append((f"cpu_pinning[{i}]", str(exc)))
        if isinstance(vcpu_max, int) and len(self.cpu_pinning) > vcpu_max:
            found.append(("cpu_pinning", f"pins {len(self.cpu_pinning)} vCPUs, but there are at most {vcpu_max}"))
        for i, gpu in enumerate(self.gpus):
            try:
                Gpu(pci=gpu.get("pci"), mdev=gpu.get("mdev"), parent=gpu.get("parent")).address
            except (ValueError, AttributeError) as exc:
                found.append((f"gpus[{i}]", str(exc)))
        return found

    @property
    def hostdev_gpus(self) -> list[Gpu]:
        return [Gpu(pci=g.get("pci"), mdev=g.get("mdev"), parent=g.get("parent")) for g in self.gpus]

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
