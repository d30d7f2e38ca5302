"""A desktop's own settings, declared once: types, defaults, units, constraints and the words of their problems.

The stack file's profiles, desktops and user overrides compose these
(components.config.stackfile adds names and references), and the checks that
need an image's or a host's facts are functions of the settings and those facts.
Sizes are bytes; they become KiB only in the domain's XML.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, PlainValidator

# The kinds that other components and the providers' inputs share are declared below resources/, in
# components.kinds.
from ..kinds import (ApplyWhen, BackupDays, Checks, Count, CpuMode, CpuModelName, CpuSet, CpuTopology, MachineType,
                     MemorySize, Settings, Wording, rule as _rule, size as _size)
from ..lifecycle.policy import IdlePolicy
from ..lifecycle.schedule import WINDOW_NEEDED, MaintenanceWindow, Schedule
from ..names import parse_duration
from ..xmlmodel import split_pci_address

HOME_ON_REMOVAL = ("keep", "delete")   # what becomes of a removed desktop's home volume
DISK_CLONES = ("linked", "full")  # a linked clone on the image (fast, small, but the image must stay) or a full copy
_MDEV_TYPE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_KERNEL_ARG = re.compile(r"^[A-Za-z0-9_.,:/+=-]{1,200}$")


def kernel_args_problem(value) -> str | None:
    """Kernel parameters (name or name=value, space-separated): no quotes, no shell or XML metacharacters."""
    words = value.split(" ") if isinstance(value, str) else None
    if not words or len(value) > 1024 or not all(_KERNEL_ARG.match(w) for w in words):
        return ("must be kernel parameters separated by single spaces, each made of letters, digits and "
                "_ . , : / + = - (e.g. 'quiet sysctl.vm.swappiness=10')")
    return None
DESKTOP_RESOLUTION = "1280x800"          # a desktop image's display unless `resolution` says otherwise
MIN_RESOLUTION, MAX_RESOLUTION = (640, 400), (7680, 4320)
RESOLUTION = re.compile(r"^(\d{3,5})x(\d{3,5})$")
SESSION = ("autologin", "resolution")    # the settings session_problems judges: what an image's desktop must serve


def session_problems(path: str, own, *, desktop: str | None = "none") -> list[tuple[str, str]]:
    """What is wrong with a desktop's autologin and resolution (of `own`, its settings), as (`<path>.<field>`,
    message) pairs.

    desktop: its image's desktop environment (a recipe's `desktop`: none, xfce, ...), None for a disk
    image of the user's own. autologin needs a desktop environment to log in to.
    """
    found = []
    if own.autologin and desktop in (None, "none"):
        what = desktop or "a disk image of your own"
        found.append((f"{path}.autologin", f"the image has no desktop environment to log in to ({what}): "
                                           "use an image whose recipe names one, e.g. desktop: xfce"))
    if own.resolution is not None:
        match = RESOLUTION.match(str(own.resolution))
        size = (int(match.group(1)), int(match.group(2))) if match else None
        if size is None:
            found.append((f"{path}.resolution", f"{own.resolution!r} is not WIDTHxHEIGHT, e.g. 1280x800"))
        elif not (MIN_RESOLUTION[0] <= size[0] <= MAX_RESOLUTION[0]
                  and MIN_RESOLUTION[1] <= size[1] <= MAX_RESOLUTION[1]):
            found.append((f"{path}.resolution", f"{own.resolution} is outside {MIN_RESOLUTION[0]}x"
                                                f"{MIN_RESOLUTION[1]}..{MAX_RESOLUTION[0]}x{MAX_RESOLUTION[1]}"))
    return found


def vcpu_problems(path: str, own, *, ok=lambda *names: True) -> list[tuple[str, str]]:
    """What is wrong between a desktop's vCPU settings (of `own`): max_vcpus, cpu_topology and the cpu's mode,
    model and pins, as (`<path>.<field>`, message) pairs. ok(*names): whether those settings were valid on their
    own (a partly broken entry has None for a broken one: nothing to compare it with)."""
    found, vcpus, max_vcpus = [], own.vcpus, own.max_vcpus
    if max_vcpus is not None and vcpus is not None and max_vcpus < vcpus:
        found.append((f"{path}.max_vcpus", f"must be >= vcpus ({vcpus})"))
        max_vcpus = None
    vcpu_max = max_vcpus or vcpus
    t = own.cpu_topology
    if t is not None and None not in (t.sockets, t.cores, t.threads) and vcpu_max is not None \
            and ok("vcpus", "max_vcpus") and t.sockets * t.cores * t.threads != vcpu_max:
        found.append((f"{path}.cpu_topology", f"sockets x cores x threads is {t.sockets * t.cores * t.threads}, but "
                                              f"the vCPU maximum (max_vcpus, else vcpus) is {vcpu_max}"))
    cpu = own.cpu
    if cpu is None:
        return found
    if cpu.model is not None and cpu.mode not in (None, "custom"):
        found.append((f"{path}.cpu.model", f"a named model is mode custom; mode {cpu.mode} takes no model"))
    elif cpu.mode == "custom" and cpu.model is None and ok("cpu.model"):
        found.append((f"{path}.cpu.mode", "custom needs a model, e.g. model: Haswell-noTSX"))
    pins = [p for p in cpu.pinning or () if p is not None]
    if vcpu_max is not None and len(pins) > vcpu_max and ok("cpu.pinning"):
        found.append((f"{path}.cpu.pinning", f"pins {len(pins)} vCPUs, but the desktop has at most {vcpu_max} "
                                             "(max_vcpus, else vcpus)"))
    return found


def apply_when_problems(path: str, own) -> list[tuple[str, str]]:
    """apply_when: window with no maintenance_window to wait for, as a (`<path>.apply_when`, message) pair."""
    if own.apply_when == "window" and own.maintenance_window is None:
        return [(f"{path}.apply_when", WINDOW_NEEDED)]
    return []


@dataclasses.dataclass(frozen=True)
class FirmwareFacts:
    """What the firmware settings are checked against: the image's boot and the host's TPM emulator."""
    image_boot: str | None             # kernel, bios, uefi; None: not known yet
    host_swtpm: bool | None            # the host can emulate a TPM; None: not known before its libvirt starts it
    host_name: str | None
    image_name: str | None = None
    checkable: bool = True             # the machine and image are valid (else Secure Boot is not judged on them)


def firmware_problems(path: str, own, facts: FirmwareFacts) -> list[tuple[str, str]]:
    """What is wrong with a desktop's secure_boot and tpm (of `own`, its settings), as (`<path>.<field>`,
    message) pairs."""
    found = []     # (that each is true or false is its declaration's to say)
    secure_boot, tpm, machine = own.secure_boot, own.tpm, own.machine
    if secure_boot is True and facts.checkable:
        image = f"image {facts.image_name!r}" if facts.image_name else "its image"
        if facts.image_boot == "kernel":
            found.append((f"{path}.secure_boot", f"{image} boots its kernel directly (firmware bios), so nothing "
                                                 "is verified: use an image built for UEFI (a recipe with "
                                                 "firmware: uefi, or a path image with boot: uefi)"))
        elif facts.image_boot == "bios":
            found.append((f"{path}.secure_boot", f"{image} boots with BIOS: use an image built for UEFI (a recipe "
                                                 "with firmware: uefi, or a path image with boot: uefi)"))
        if machine is None or not (machine == "q35" or machine.startswith("pc-q35-")):
            found.append((f"{path}.secure_boot", f"needs the q35 machine type (Secure Boot's firmware needs SMM), "
                                                 f"got machine {machine or 'unset (pc)'!r}: set machine: q35"))
    if tpm is True and facts.host_swtpm is False:
        found.append((f"{path}.tpm", f"host {facts.host_name!r} cannot emulate a TPM: swtpm and swtpm_setup are not "
                                     "installed (Debian: apt-get install swtpm swtpm-tools)"))
    return found


@dataclasses.dataclass(frozen=True)
class DomainInput:
    """Where a setting goes among the domain provider's inputs (components.resources.domain), as its state
    stores them: under `name` (default: the setting's own), in units of `unit` bytes, and unset (None) when off
    if `unset_when_off`, so the domains of desktops made before such a setting existed stay as they are."""
    name: str | None = None
    unit: int | None = None
    unset_when_off: bool = False


@dataclasses.dataclass(frozen=True)
class UserMay:
    """Marks a setting a user (the stack file's users[]) may set over their profile's."""


BY_USER = UserMay()


@dataclasses.dataclass(frozen=True)
class KubevirtCarries:
    """Marks a setting a KubeVirt VirtualMachine carries (components.kubevirt); any other one set on a desktop
    placed on a kubevirt host is reported at preview."""


ON_KUBEVIRT = KubevirtCarries()


def _duration(value) -> int:
    """Seconds, from an integer or a text like 30s, 15m, 12h, 30d."""
    try:
        seconds = parse_duration(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None
    return seconds



def _pci_problem(value: str) -> str | None:
    try:
        split_pci_address(value)
    except ValueError as exc:
        return str(exc)
    return None



# The kinds of values a desktop's settings take.

DiskSize = Annotated[int, _size("GiB")]
Resolution = Annotated[str, Field(pattern=r"^\d{3,5}x\d{3,5}$"),
                       Wording(invalid="{input} is not WIDTHxHEIGHT, e.g. 1280x800")]
Duration = Annotated[int | str, PlainValidator(lambda v: _duration(v), json_schema_input_type=int | str)]
KernelArgs = Annotated[str, _rule(kernel_args_problem), Wording(expected="kernel parameters as one string, got {got}")]
PciAddress = Annotated[str, _rule(lambda v: _pci_problem(v)),
                       Wording(expected="a PCI address (domain:bus:slot.function, e.g. 0000:01:00.0), got {got}")]
MdevTypeId = Annotated[str, Field(pattern=_MDEV_TYPE),
                       Wording(invalid="{input} is not a mediated device type id (e.g. nvidia-222)")]



class DesktopDisplay(Settings):
    """A desktop's display password."""
    noun: ClassVar[str] = "display setting"
    password_rotation: str = Field("", description="Any new value makes a new display password, applied live.")
    password_valid_for: Duration | None = Field(None, description="How long a display password works after it "
                                                                  "is made, e.g. 30d (default: until rotated).")



_TOPOLOGY = Wording(expected="{sockets, cores, threads}, each an integer >= 1")


class Cpu(Settings):
    """The CPU the guest sees and the host CPUs its vCPUs run on; checked against the host at preview."""
    key_noun: ClassVar[str] = "CPU setting"
    mode: CpuMode | None = Field(None, description="host-passthrough, host-model, or custom (a named "
                                                              "model; implied by `model`). Default: libvirt's.")
    model: CpuModelName | None = Field(None, description="A named CPU model the host can run, e.g. Haswell-noTSX.")
    pinning: Annotated[list[CpuSet], Field(min_length=1),
                       Wording(expected="a list with one set of host CPUs per vCPU, e.g. [2, 3] or ['2-3', "
                                        "'2-3']")] | None = Field(
        None, description="Host CPUs per vCPU, in vCPU order: [2, 3] pins vCPU 0 to CPU 2 and vCPU 1 to CPU 3.")


class Gpu(Settings):
    """A GPU for the desktop: a whole PCI device of the host, or a mediated device (vGPU) of a type."""
    noun: ClassVar[str] = "GPU"
    record: ClassVar[bool] = True
    pci: PciAddress | None = Field(None, description="The host PCI device to pass through whole, e.g. "
                                                     "0000:01:00.0.")
    mdev: MdevTypeId | None = Field(None, description="A mediated device type (vGPU) to make for the desktop, "
                                                      "e.g. nvidia-222.")
    parent: PciAddress | None = Field(None, description="With mdev: the PCI device to make it on (default: any "
                                                        "that offers the type).")


_GPUS = Wording(expected="a list of GPUs, each {pci: <address>} or {mdev: <type>}")



class DesktopSettings(Settings):
    """What a desktop is, apart from where it runs and what it is made from: the settings of every desktop."""
    memory: Annotated[MemorySize, DomainInput(), BY_USER, ON_KUBEVIRT] = Field(
        "1GiB", description="Memory, e.g. 1GiB or 768MiB (an integer is in MiB); at least 256MiB.")
    vcpus: Annotated[Count, DomainInput(), BY_USER, ON_KUBEVIRT] = Field(1, description="Virtual CPUs.")
    max_vcpus: Annotated[Count | None, DomainInput(), BY_USER] = Field(
        None, description="vCPUs it can be hot-plugged up to without a restart (default: vcpus, i.e. no room).")
    cpu_topology: Annotated[Annotated[CpuTopology, _TOPOLOGY] | None, DomainInput()] = Field(
        None, description="{sockets, cores, threads}, whose product is the vCPU maximum (max_vcpus, else vcpus).")
    machine: Annotated[MachineType | None, DomainInput()] = Field(
        None, description="Machine type: q35, pc or a versioned name (pc-q35-7.2).")
    disk: Annotated[DiskSize, BY_USER, ON_KUBEVIRT] = Field("8GiB", description="Disk size, e.g. 8GiB (an integer is in GiB).")
    disk_clone: Annotated[Literal[DISK_CLONES], BY_USER, ON_KUBEVIRT] = Field(
        "linked", description="linked: a qcow2 clone on the image (the image must stay); full: an independent copy.")
    home: Annotated[DiskSize | None, BY_USER, ON_KUBEVIRT] = Field(
        None, description="A volume of its own mounted at /home, e.g. 10GiB (an integer is in GiB): kept when the "
                          "system disk is replaced; formatted only when empty.")
    home_on_removal: Annotated[Literal[HOME_ON_REMOVAL], ON_KUBEVIRT] = Field(
        "keep", description="When the desktop (its user) is removed from the stack: keep its home volume on the "
                            "host (found again if the user comes back), or delete it.")
    disk_backup_days: BackupDays = Field(
        7, description="When a change replaces the system disk (a new image, a new disk_clone), keep the old one "
                       "this many days (0: do not); `make restore` puts it back. Never kept at destroy.")
    running: Annotated[bool, DomainInput(), BY_USER, ON_KUBEVIRT] = Field(
        True, description="Keep it running (false: defined, shut off).")
    autostart: Annotated[bool, DomainInput(), BY_USER] = Field(
        False, description="Start it when the host (libvirtd) starts.")
    kernel_args: KernelArgs | None = Field(None, description="Parameters appended to a golden image's kernel "
                                                             "command line, e.g. 'quiet'.")
    cpu: Annotated[Cpu | None, BY_USER] = Field(
        None, description="{mode, model, pinning}: the guest CPU and vCPU pins, checked against the host.")
    gpus: Annotated[list[Gpu], _GPUS, BY_USER] = Field(
        [], description="GPUs: [{pci: 0000:01:00.0}] or [{mdev: nvidia-222}], checked against the host's devices.")
    display: DesktopDisplay | None = Field(None, description="Its display password's rotation and validity.")
    autologin: Annotated[bool, BY_USER, ON_KUBEVIRT] = Field(
        False, description="Log the first user in to the graphical session at boot (an image with a desktop "
                           "environment).")
    resolution: Annotated[Resolution | None, BY_USER, ON_KUBEVIRT] = Field(
        None, description="The display's size, WIDTHxHEIGHT (default 1280x800 on a desktop image).")
    # off is unset among the domain's inputs: the domains of desktops made before these existed stay as they are
    secure_boot: Annotated[bool, DomainInput(unset_when_off=True)] = Field(
        False, description="Boot with UEFI Secure Boot enforced (OVMF with Microsoft's keys enrolled): needs an "
                           "image built for UEFI (recipe firmware: uefi) and machine: q35. A change makes a new VM "
                           "(the disk stays).")
    tpm: Annotated[bool, DomainInput(unset_when_off=True)] = Field(
        False, description="A TPM 2.0 (tpm-crb), emulated by the host's swtpm; its state goes with the VM. A change "
                           "makes a new VM (the disk stays).")
    checks: Annotated[Checks, BY_USER] = Field(
        [], description="Checks run over SSH once cloud-init is done; all must pass.")
    idle: Annotated[IdlePolicy | None, DomainInput(), BY_USER] = Field(
        None, description="{after, action, warn}: with no key or pointer input for `after`, the host's lifecycle "
                          "service warns the person in their session, then suspends (managed save: opening it "
                          "wakes it as it was) or shuts it down. Default: never.")
    schedule: Annotated[Schedule | None, DomainInput(), BY_USER] = Field(
        None, description="{days, start, stop, timezone}: when it runs; the host's lifecycle service starts it at "
                          "start and shuts it down at stop (not drift: `up` leaves it off). Default: always.")
    apply_when: Annotated[ApplyWhen | None, DomainInput()] = Field(
        None, description="now (the default): a change that needs a restart restarts a running desktop at `up`; "
                          "idle: it waits, pending, until the desktop has had no input for a while (the host's "
                          "lifecycle service then restarts it); window: it waits, pending, for the desktop's "
                          "maintenance_window, and is made then, used or not.")
    maintenance_window: Annotated[MaintenanceWindow | None, DomainInput()] = Field(
        None, description="{days, start, stop, timezone}: when a change held by apply_when: window restarts the "
                          "desktop (the host's lifecycle service does it inside the window). Default: none.")


def overridable(names: tuple[str, ...], default: str) -> dict[str, Any]:
    """The named settings, each optional (unset: `default`), for pydantic.create_model: what a user may
    override of a profile, declared by naming it rather than again."""
    fields = {}
    for name in names:
        field = DesktopSettings.model_fields[name]
        declared = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        fields[name] = (declared | None, Field(None, description=f"{field.description} Default: {default}."))
    return fields


def domain_inputs(own: DesktopSettings) -> dict[str, Any]:
    """The domain provider's inputs that are settings as declared (DomainInput on each)."""
    inputs = {}
    for name, field in type(own).model_fields.items():
        for mark in (m for m in field.metadata if isinstance(m, DomainInput)):
            value = getattr(own, name)
            value = value.model_dump() if isinstance(value, BaseModel) else value
            if mark.unit and value is not None:
                value //= mark.unit
            inputs[mark.name or name] = (True if value else None) if mark.unset_when_off else value
    return inputs
