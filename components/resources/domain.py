"""Domain: the desktop's virtual machine, declared through the typed XML model.

(Over 500 lines: one provider's CRUD contract; its lifecycle helpers leave for a module of their own, issue 22.)

Small changes never replace the VM: memory, vCPUs, disks, NICs, kernel and
power state are applied to the existing domain (live where libvirt allows,
otherwise at a controlled restart chosen by restart_policy).
"""
from __future__ import annotations

import logging
import os
import re
import secrets

import libvirt
import pulumi
from pydantic import ValidationError
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from .. import xmlmodel
from ..host.connection import connect, lookup
from ..errors import VdeskError
from ..kinds import (APPLY_WHEN, HELD_WHEN, RESTART_POLICIES, ApplyWhen, Count, CpuMode, CpuModelName, CpuSet, CpuTopology,
                     MachineType, MiB, RestartPolicy, WholeMiB)
from ..names import name_problem
from .. import rootexec
from ..lifecycle import actions as idling
from ..lifecycle.policy import IdlePolicy, policy_of, set_policy
from ..lifecycle.schedule import WINDOW_NEEDED, MaintenanceWindow, Schedule, schedule_of, set_schedule, set_window
from . import atuse, display, faults
from .lifecycle import shut_down, start_or_undefine, undefine
from .provider import ADOPT, PROJECT, UNKNOWN, DeclaredProvider, Prop, declared

log = logging.getLogger(__name__)

BOOT_MODES = ("kernel", "bios", "uefi")
DOMAIN_TYPES = ("kvm", "qemu", "test")  # test: libvirt's test driver (unit tests)
GUEST_AGENT = "org.qemu.guest_agent.0"
VDAGENT = "com.redhat.spice.0"          # spice-vdagent's port: qemu's own vdagent serves it for VNC
VIDEO_MODELS = ("virtio", "vga", "qxl", "cirrus", "bochs")
TPM_MODEL, TPM_VERSION = "tpm-crb", "2.0"     # a TPM 2.0 with the CRB interface, emulated by swtpm
# Changing these only takes effect when the guest boots again.
_NEEDS_RESTART = ("domain_type", "memory", "vcpus", "max_vcpus", "kernel", "initrd", "cmdline", "disks", "nics",
                  "shares", "cpu_mode", "cpu_topology", "machine", "video", "tablet", "vdagent", "graphics_listen",
                  "spice", "cpu_model", "cpu_pinning", "hostdevs")
# Of those, what a running guest may take without a reboot (see DomainProvider._apply_live).
_LIVE_CAPABLE = {"memory", "vcpus", "max_vcpus"}


def _one_of_words(options) -> str:
    return f"{{input}} must be one of {', '.join(options)}"


def _one_of(options):
    return lambda v: None if v in options else _one_of_words(options).replace("{input}", repr(v))


_POSITIVE = "must be a positive integer"
_WHOLE_MIB = "must be a positive whole number of MiB, in bytes"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _live_vcpus(dom) -> int | None:
    """The running guest's vCPU count, or None when it is not running."""
    try:
        return dom.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE) if dom.isActive() else None
    except libvirt.libvirtError:
        if dom.isActive():
            raise
        return None  # it stopped meanwhile


def _idle_policy(idle) -> IdlePolicy | None:
    return IdlePolicy(**idle) if idle else None


def _schedule(declared) -> Schedule | None:
    return Schedule(**declared) if declared else None


def _window(declared) -> MaintenanceWindow | None:
    return MaintenanceWindow(**declared) if declared else None


def _model_problem(parse):
    """A Prop's rule from a declared model: its problems, worded with their place in it."""
    def problem(value) -> str | None:
        try:
            parse(value)
        except ValidationError as exc:
            return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors())
        except TypeError as exc:
            return str(exc)
        return None
    return problem


def _set_lifecycle(dom, props) -> None:
    """The domain's idle policy, schedule and maintenance window (apply_when: window), in its metadata, where
    the host's lifecycle service reads them."""
    set_policy(dom, _idle_policy(props.get("idle")))
    set_schedule(dom, _schedule(props.get("schedule")))
    set_window(dom, _window(props.get("maintenance_window")) if props.get("apply_when") == "window" else None)


def _disks_problem(disks) -> str | None:
    for i, disk in enumerate(disks):
        if not isinstance(disk, dict) or not disk.get("path"):
            return f"disks[{i}] needs a path"
    return None


def _nics_problem(nics) -> str | None:
    for i, nic in enumerate(nics):
        if not isinstance(nic, dict) or not nic.get("network") or not nic.get("mac"):
            return f"nics[{i}] needs a network and a mac"
    return None


# vdesk's virtiofsd, by share mode: installed root-owned (components/rootexec.py), never run from the checkout
VIRTIOFSD = {True: "virtiofsd-ro", False: "virtiofsd-rw"}
_TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,35}$")


def _shares_problem(shares) -> str | None:
    for i, share in enumerate(shares):
        if not isinstance(share, dict) or set(share) - {"source", "tag", "readonly"}:
            return f"shares[{i}] must be {{source, tag, readonly}}"
        source, tag = share.get("source"), share.get("tag")
        if not isinstance(source, str) or not os.path.isabs(source) or any(c in source for c in ",\n\0"):
            return f"shares[{i}].source must be an absolute directory path without commas"
        if not isinstance(tag, str) or not _TAG.match(tag):
            return f"shares[{i}].tag must be 1-36 lowercase letters, digits and '-'"
        if not isinstance(share.get("readonly", True), bool):
            return f"shares[{i}].readonly must be true or false"
    return None


def _video_problem(video) -> str | None:
    """{model, width, height}: a model libvirt knows, and a resolution (both or neither) of at least 640x400."""
    if not isinstance(video, dict) or set(video) - {"model", "width", "height"}:
        return "must be {model, width, height}"
    if video.get("model") not in VIDEO_MODELS:
        return f"model {video.get('model')!r} must be one of {', '.join(VIDEO_MODELS)}"
    size = [video.get("width"), video.get("height")]
    if size != [None, None] and not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                        and float(v).is_integer() for v in size):
        return "width and height must be whole numbers of pixels, given together"
    if size != [None, None] and (size[0] < 640 or size[1] < 400):
        return f"{size[0]}x{size[1]} is smaller than 640x400"
    return None


def _hostdevs_problem(hostdevs) -> str | None:
    for i, dev in enumerate(hostdevs):
        kind = dev.get("type") if isinstance(dev, dict) else None
        if kind == "pci":
            try:
                xmlmodel.split_pci_address(dev.get("address") or "")
            except ValueError as exc:
                return f"hostdevs[{i}]: {exc}"
        elif kind != "mdev" or not dev.get("uuid"):
            return f"hostdevs[{i}] must be {{type: pci, address}} or {{type: mdev, uuid}}"
    return None


def _hardware(dom: xmlmodel.Domain, props) -> None:
    """CPU model, vCPU pins and host devices, from the declared properties."""
    if props.get("cpu_model"):
        dom.cpu_mode, dom.cpu_model, dom.cpu_model_fallback = "custom", props["cpu_model"], "forbid"
    for vcpu, cpuset in enumerate(props.get("cpu_pinning") or []):
        dom.vcpupins.append(xmlmodel.VcpuPin(vcpu=vcpu, cpuset=xmlmodel.format_cpuset(xmlmodel.parse_cpuset(cpuset))))
    for dev in props.get("hostdevs") or []:
        dom.hostdevs.append(xmlmodel.Hostdev.pci(dev["address"]) if dev["type"] == "pci"
                            else xmlmodel.Hostdev.mdev(dev["uuid"]))


def _hostdev_as_input(dev: xmlmodel.Hostdev) -> dict:
    if dev.type == "pci":
        return {"type": "pci", "address": dev.pci_address}
    return {"type": dev.type, "uuid": dev.address_uuid}


def same_machine(declared: str | None, live: str | None) -> bool:
    """libvirt stores the versioned machine an alias stands for: q35 reads back as pc-q35-7.2, pc as pc-i440fx-7.2."""
    if declared is None or declared == live:
        return True
    alias = {"pc": "pc-i440fx", "q35": "pc-q35"}.get(declared, declared)
    return bool(live) and live.startswith(alias + "-")


def disks_as_before(old_disks, new_disks):
    """New disks as comparable with old ones: a `source` the old entry never had (a stack made before vdesk
    recorded sources) is no change, so the first run after an upgrade restarts no guest."""
    if not isinstance(old_disks, list) or not isinstance(new_disks, list):
        return new_disks
    out = []
    for i, new in enumerate(new_disks):
        old = old_disks[i] if i < len(old_disks) else None
        if isinstance(new, dict) and isinstance(old, dict) and "source" in new and "source" not in old:
            new = {k: v for k, v in new.items() if k != "source"}
        out.append(new)
    return out


def max_vcpus_of(props) -> int:
    """The boot-time vCPU maximum: max_vcpus, or (unset) vcpus, so no hot-plug room is reserved."""
    return int(props.get("max_vcpus") or props["vcpus"])


def desired_model(props) -> xmlmodel.Domain:
    props = DomainProvider().renamed(props)     # (props written before memory was bytes read the same)
    memory_kib = int(props["memory"]) // 1024
    boot = props.get("boot", "kernel")
    vcpus, max_vcpus = int(props["vcpus"]), max_vcpus_of(props)
    # <vcpu placement='static' current='N'>MAX</vcpu>; with no room above vcpus, plain <vcpu>N</vcpu>
    # (libvirt drops current='N' when it equals MAX, so setting it would read back as drift).
    spare = max_vcpus > vcpus
    dom = xmlmodel.Domain(
        type=props.get("domain_type", "qemu"), name=props["name"],
        memory_kib=memory_kib, current_memory_kib=memory_kib, vcpus=max_vcpus,
        vcpu_placement="static" if spare else None, vcpu_current=vcpus if spare else None,
        cpu_mode=props.get("cpu_mode"),
        **_topology_fields(props.get("cpu_topology")),
        os_type="hvm", arch="x86_64", machine=props.get("machine"),
        firmware="efi" if boot == "uefi" else None,
        # Secure Boot: libvirt picks firmware with Microsoft's keys enrolled and Secure Boot on
        # (OVMF_CODE_4M.ms.fd + a copy of OVMF_VARS_4M.ms.fd), which needs SMM.
        loader_secure=True if props.get("secure_boot") else None,
        smm=True if props.get("secure_boot") else None,
        kernel=props.get("kernel") if boot == "kernel" else None,
        initrd=props.get("initrd") if boot == "kernel" else None,
        cmdline=props.get("cmdline") if boot == "kernel" else None,
        boot_dev="hd" if boot != "kernel" else None,
        acpi=True, apic=True,
        on_poweroff="destroy", on_reboot="restart", on_crash="destroy",
        owner=xmlmodel.Owner(stack=props.get("owner") or "", resource=props["name"],
                             project=props.get("project") or None),
    )
    if props.get("secure_boot"):
        # (in libvirt's order, so a re-read shows no difference)
        dom.firmware_features.extend([xmlmodel.FirmwareFeature(enabled=True, name="enrolled-keys"),
                                      xmlmodel.FirmwareFeature(enabled=True, name="secure-boot")])
    for index, disk in enumerate(props.get("disks") or []):
        dom.disks.append(xmlmodel.Disk(
            type="file", device=disk.get("device", "disk"), driver_name="qemu",
            driver_type=disk.get("format", "qcow2"), source_file=disk["path"],
            target_dev=disk.get("target") or "vd" + "abcdefghijklmnopqrstuvwxyz"[index],
            target_bus=disk.get("bus", "virtio"), readonly=bool(disk.get("readonly")), serial=disk.get("serial")))
    for share in props.get("shares") or []:
        dom.shared_dirs.append(xmlmodel.SharedDirectory(
            type="mount", accessmode="passthrough", driver_type="virtiofs", source_dir=share["source"],
            tag=share["tag"], binary=rootexec.installed_path(VIRTIOFSD[share.get("readonly", True)])))
    if props.get("shares"):
        dom.memory_source, dom.memory_access = "memfd", "shared"    # virtiofsd reads the guest's memory
    for nic in props.get("nics") or []:
        dom.interfaces.append(xmlmodel.Interface(type="network", source_network=nic["network"],
                                                 mac=nic["mac"], model="virtio"))
    dom.channels.append(xmlmodel.Channel(type="unix", target_type="virtio", target_name=GUEST_AGENT))
    if props.get("vdagent"):
        # spice-vdagent in the guest talks to qemu's built-in agent: clipboard through VNC.
        dom.channels.append(xmlmodel.Channel(type="qemu-vdagent", target_type="virtio", target_name=VDAGENT,
                                             clipboard="yes", mouse_mode="client"))
    dom.graphics.extend(display.graphics_devices(props))
    video = props.get("video")
    if video:
        width, height = video.get("width"), video.get("height")
        dom.videos.append(xmlmodel.Video(model_type=video["model"], heads=1, primary="yes",
                                         resolution_x=int(width) if width else None,
                                         resolution_y=int(height) if height else None))
    if props.get("tablet"):
        # An absolute pointer: the remote pointer and the guest's never drift apart.
        dom.inputs.append(xmlmodel.Input(type="tablet", bus="virtio"))
    console_log = props.get("console_log_file")
    dom.serials.append(xmlmodel.Serial(type="pty", log_file=console_log, log_append="off" if console_log else None))
    dom.consoles.append(xmlmodel.Console(type="pty", target_type="serial"))
    dom.rngs.append(xmlmodel.Rng(model="virtio", backend_model="random", backend="/dev/urandom"))
    _hardware(dom, props)
    if props.get("tpm"):
        dom.tpms.append(xmlmodel.Tpm(model=TPM_MODEL, backend_type="emulator", backend_version=TPM_VERSION))
    return dom


def _topology_fields(topology: dict | None) -> dict:
    if not topology:
        return {}
    return {"cpu_sockets": int(topology["sockets"]), "cpu_cores": int(topology["cores"]),
            "cpu_threads": int(topology["threads"])}


def observed_inputs(live: xmlmodel.Domain, props, live_vcpus: int | None = None) -> dict:
    """The declared properties as libvirt really has them (drift shows up as a diff).

    live_vcpus: the running guest's vCPU count, so a `virsh setvcpus` behind vdesk's back shows.
    max_vcpus left unset reads back as unset while the maximum is still just the vCPU count.
    """
    boot_vcpus = live.vcpu_current or live.vcpus
    declared_max = props.get("max_vcpus") is not None
    return {
        "domain_type": live.type,
        "machine": props.get("machine") if same_machine(props.get("machine"), live.machine) else live.machine,
        "cpu_topology": ({"sockets": live.cpu_sockets, "cores": live.cpu_cores, "threads": live.cpu_threads}
                         if live.cpu_sockets else None),
        "memory": (live.current_memory_kib or live.memory_kib) * 1024,
        "vcpus": boot_vcpus if live_vcpus is None else live_vcpus,
        "max_vcpus": live.vcpus if declared_max or live.vcpus != boot_vcpus else None,
        "kernel": live.kernel if props.get("boot", "kernel") == "kernel" else props.get("kernel"),
        "initrd": live.initrd if props.get("boot", "kernel") == "kernel" else props.get("initrd"),
        "cmdline": live.cmdline if props.get("boot", "kernel") == "kernel" else props.get("cmdline"),
        "disks": [_disk_as_input(d, props) for d in live.disks],
        "nics": [{"network": i.source_network, "mac": i.mac} for i in live.interfaces],
        # Read back only when declared, so libvirt's own CPU defaults never look like drift.
        "cpu_mode": live.cpu_mode if props.get("cpu_mode") else None,
        "cpu_model": live.cpu_model if props.get("cpu_model") else None,
        "cpu_pinning": [p.cpuset for p in sorted(live.vcpupins, key=lambda p: p.vcpu)] or None,
        "hostdevs": [_hostdev_as_input(h) for h in live.hostdevs] or None,
        "shares": [_share_as_input(f, props) for f in live.shared_dirs if f.driver_type == "virtiofs"],
        # Only a declared adapter is compared: without one, libvirt's default is no drift.
        "video": _video_as_input(live, props.get("video")),
        "tablet": _flag_as_input(any(i.type == "tablet" and i.bus == "virtio" for i in live.inputs),
                                 props.get("tablet")),
        "vdagent": _flag_as_input(any(c.type == "qemu-vdagent" for c in live.channels), props.get("vdagent")),
        # read with VIR_DOMAIN_XML_SECURE: a password changed behind vdesk's back shows as drift
        "tpm": _flag_as_input(any(t.backend_type == "emulator" for t in live.tpms), props.get("tpm")),
        "display_password": next((g.passwd for g in live.graphics), None),
        "display_password_valid_to": next((g.passwd_valid_to for g in live.graphics), None) or (
            "" if props.get("display_password_valid_to") == "" else None),
    }


def _share_as_input(live: xmlmodel.SharedDirectory, props) -> dict:
    """A share as declared: libvirt has its resolved path, and readonly is which wrapper serves it (None for
    another virtiofsd, e.g. a domain defined before the wrappers were installed: drift, so it is redefined)."""
    modes = {rootexec.installed_path(name): readonly for readonly, name in VIRTIOFSD.items()}
    declared = next((s["source"] for s in props.get("shares") or [] if s.get("tag") == live.tag), None)
    return {"source": atuse.as_declared(declared, live.source_dir, props.get("host_uri", "")), "tag": live.tag,
            "readonly": modes.get(live.binary)}


def shares_at_use(props) -> dict:
    """props with each share's source as libvirt gets it: on this machine, checked against the host's
    policy again now and resolved, so a directory swapped for a symlink since preview cannot lead out
    of the roots (the wrapper refuses a path that is no longer its own resolution when it starts); and
    the wrappers installed. A share on another host is refused at preview (its wrapper is not there)."""
    if not props.get("shares") or not atuse.on_this_machine(props["host_uri"]):
        return props
    shares = []
    for i, share in enumerate(props["shares"]):
        source = atuse.resolved("shares", share["source"], f"shares[{i}].source")
        if not os.path.isdir(source):
            raise VdeskError(f"shares[{i}].source: {share['source']!r} is not a directory on the host any more")
        rootexec.install(VIRTIOFSD[share.get("readonly", True)])
        shares.append({**share, "source": source})
    return {**props, "shares": shares}


def _flag_as_input(present: bool, declared: bool | None) -> bool | None:
    """A device vdesk adds when a flag is true: true when there, false when declared but gone, else as declared."""
    return True if present else (False if declared else declared)


def _video_as_input(live: xmlmodel.Domain, declared: dict | None) -> dict | None:
    if not declared:
        return declared
    primary = next((v for v in live.videos if v.primary == "yes"), live.videos[0] if live.videos else None)
    if primary is None:
        return None
    shown = {"model": primary.model_type}
    if "width" in declared or "height" in declared:
        shown.update(width=primary.resolution_x, height=primary.resolution_y)
    return shown


def _disk_as_input(disk: xmlmodel.Disk, props) -> dict:
    declared = {d.get("path"): d for d in props.get("disks") or []}.get(disk.source_file, {})
    out = {"path": disk.source_file, "format": disk.driver_type}
    for key, value in (("bus", disk.target_bus), ("readonly", disk.readonly), ("device", disk.device),
                       ("target", disk.target_dev), ("serial", disk.serial)):
        if key in declared:  # only echo what was declared, so libvirt's defaults never look like drift
            out[key] = value
    if "source" in declared:   # what the volume at this path was made from: vdesk's, not libvirt's
        out["source"] = declared["source"]
    return out


def _remove_logs(path: str | None) -> None:
    """qemu's log and its rotations: on an embedded host they are vdesk's files, and go with the domain."""
    if not path:
        return
    folder, name = os.path.split(path)
    for entry in os.listdir(folder) if os.path.isdir(folder) else ():
        if entry == name or entry.startswith(name + "."):
            os.unlink(os.path.join(folder, entry))


class DomainProvider(DeclaredProvider):
    # Memory was stored in MiB (memory_mib) before sizes were bytes inside vdesk.
    RENAMED = {"memory_mib": ("memory", MiB)}
    PROPS = {
        "host_uri": Prop(str, required=True, replaces=True),
        "name": Prop(str, required=True, replaces=True, validate=name_problem),
        "owner": Prop(str, default="", replaces=True, doc="stack that owns the domain (metadata)"),
        "project": PROJECT,
        "domain_type": Prop(str, default="qemu", validate=_one_of(DOMAIN_TYPES)),
        "boot": Prop(str, default="kernel", replaces=True, validate=_one_of(BOOT_MODES)),
        "secure_boot": Prop(bool, replaces=True,
                            doc="UEFI with Secure Boot enforced and Microsoft's keys enrolled (needs boot uefi and a "
                                "q35 machine: SMM); a change makes a new domain (a fresh NVRAM)"),
        "tpm": Prop(bool, replaces=True,
                    doc="a TPM 2.0 (tpm-crb, emulated by the host's swtpm); its state goes with the domain, so a "
                        "change makes a new domain"),
        "memory": declared(WholeMiB, _WHOLE_MIB, required=True,
                           doc="bytes (a whole number of MiB); KiB only in the XML"),
        "vcpus": declared(Count, _POSITIVE, required=True,
                          doc="live (hot-plug) within max_vcpus on a running guest, else at a restart"),
        "max_vcpus": declared(Count, _POSITIVE, doc="vCPUs the guest can be hot-plugged up to (default: vcpus); a "
                                                    "change needs a restart"),
        "cpu_mode": declared(CpuMode,
                             doc="host-passthrough, host-model or custom (checked against the host at preview)"),
        "cpu_model": declared(CpuModelName, doc="a named CPU model (mode custom, fallback forbid)"),
        "cpu_pinning": declared(list[CpuSet], doc="host CPU set per vCPU (cputune vcpupin)"),
        "hostdevs": Prop(list, validate=_hostdevs_problem,
                         doc="host devices: {type: pci, address} (whole device, managed) or {type: mdev, uuid}"),
        "cpu_topology": declared(CpuTopology, "must be {sockets, cores, threads}, each a positive integer",
                                 doc="{sockets, cores, threads}; their product is the vCPU maximum"),
        "machine": declared(MachineType,
                            doc="machine type, e.g. q35 or pc (libvirt's versioned name reads back as the same)"),
        "kernel": Prop(str), "initrd": Prop(str), "cmdline": Prop(str),
        "disks": Prop(list, default=[], validate=_disks_problem,
                      doc="{path, format, readonly, ..., source}: `source` names what the volume was made from, so "
                          "a disk replaced at the same path restarts the guest on it"),
        "nics": Prop(list, default=[], validate=_nics_problem),
        "shares": Prop(list, default=[], validate=_shares_problem,
                       doc="host directories {source, tag, readonly} through virtiofs, served nosuid and nodev by "
                           "vdesk's installed virtiofsd: read-only (the default) on a read-only bind mount, writable "
                           "with the guest's ids mapped to 2**29 and up on the host"),
        "video": Prop(dict, validate=_video_problem,
                      doc="{model, width, height}: the display adapter and its preferred resolution "
                          "(default: libvirt's own adapter)"),
        "tablet": Prop(bool, doc="an absolute pointer (virtio tablet), for remote desktops"),
        "vdagent": Prop(bool,
                        doc="qemu's vdagent on com.redhat.spice.0 (spice-vdagent in the guest): clipboard via VNC"),
        "graphics_socket": Prop(str, replaces=True, doc="VNC unix socket (SPICE: the same path ending .spice)"),
        "graphics_listen": Prop(str, validate=display.address_problem,
                                doc="address VNC/SPICE listen on without a socket (default 127.0.0.1); needs a restart"),
        "spice": Prop(bool, default=False, doc="a SPICE display beside VNC; needs a restart"),
        "display_password": Prop(str, secret=True, validate=lambda v: None if 0 < len(v) <= 8 else "1-8 characters",
                                 doc="the displays' password; changed live by a graphics device update"),
        "display_password_valid_to": Prop(str, validate=display.valid_to_problem,
                                          doc="UTC time the password stops working (passwdValidTo; '' for never); "
                                              "changed live"),
        "log_file": Prop(str, inert=True, doc="qemu's log of this domain, removed on delete (embedded hosts)"),
        "tpm_log_file": Prop(str, inert=True, doc="swtpm's log of this domain's TPM, removed on delete (embedded "
                                                  "hosts)"),
        "console_log_file": Prop(str, inert=True, doc="what the guest printed on its serial console since it last "
                                                      "started, removed on delete (embedded hosts): the readiness "
                                                      "gate quotes its end when the guest never became reachable"),
        "idle": Prop(dict, validate=_model_problem(_idle_policy),
                     doc="{after, action, warn} in seconds: the host's lifecycle service suspends (managed save) or "
                         "shuts the domain down after `after` without input, warning `warn` before; kept in the "
                         "domain's metadata, changed live. Asleep or shut down for idleness, the domain still "
                         "counts as running"),
        "schedule": Prop(dict, validate=_model_problem(_schedule),
                         doc="{days, start, stop, timezone}: the host's lifecycle service starts the domain at start "
                             "and shuts it down at stop; stopped by its schedule, it still counts as running"),
        "apply_when": declared(ApplyWhen, _one_of_words(APPLY_WHEN),
                               doc="now (unset): a change that needs a restart restarts the running guest at once; "
                                   "idle: it is held (pending_restart) until the host's lifecycle service sees no "
                                   "input for a while, and restarts it then; window: held until its "
                                   "maintenance_window opens"),
        "maintenance_window": Prop(dict, validate=_model_problem(_window),
                                   doc="{days, start, stop, timezone}: with apply_when: window, when the host's "
                                       "lifecycle service restarts the domain on a held change, used or not"),
        "running": Prop(bool, default=True, doc="desired power state"),
        "autostart": Prop(bool, default=False),
        "restart_policy": declared(RestartPolicy, _one_of_words(RESTART_POLICIES), default="on-change"),
        "shutdown_timeout_s": declared(Count, _POSITIVE, default=60),
        "adopt": ADOPT,
    }
    OUTPUTS = ("uuid", "state", "pending_restart", "display_port", "spice_port", "boot_id")
    JOURNAL_KIND = "domain"

    def check_more(self, inputs):
        problems = []
        if inputs.get("apply_when") == "window" and not inputs.get("maintenance_window"):
            problems.append(("apply_when", WINDOW_NEEDED))
        if inputs.get("boot") == "kernel" and not inputs.get("kernel"):
            problems.append(("kernel", "boot 'kernel' needs a kernel path (or use boot 'bios' / 'uefi' "
                                       "for an image with its own bootloader)"))
        if inputs.get("secure_boot") is True:
            boot, machine = inputs.get("boot") or "kernel", inputs.get("machine")
            if isinstance(boot, str) and boot != "uefi" and boot != UNKNOWN:
                problems.append(("secure_boot", f"secure_boot needs boot 'uefi' (an image with its own UEFI "
                                                f"bootloader), got boot {boot!r}"))
            if machine is None or isinstance(machine, str) and machine != UNKNOWN and not same_machine("q35", machine):
                problems.append(("secure_boot", f"secure_boot needs the q35 machine type (its firmware needs SMM), "
                                                f"got machine {machine or 'unset (pc)'!r}"))
        vcpus, max_vcpus = inputs.get("vcpus"), inputs.get("max_vcpus")
        # unknowns (previews) wait; a non-positive max_vcpus is reported by its own rule
        if _is_int(vcpus) and _is_int(max_vcpus) and 0 < max_vcpus < vcpus:
            problems.append(("max_vcpus", f"max_vcpus: must be >= vcpus ({vcpus}), got {max_vcpus}"))
        if inputs.get("display_password_valid_to") and not inputs.get("display_password"):
            problems.append(("display_password_valid_to", "display_password_valid_to needs a display_password"))
        topology = inputs.get("cpu_topology")
        if isinstance(topology, dict) and not self.PROPS["cpu_topology"].validate(topology) and _is_int(vcpus) \
                and (max_vcpus is None or _is_int(max_vcpus)):
            product = int(topology["sockets"] * topology["cores"] * topology["threads"])
            if product != max_vcpus_of(inputs):
                problems.append(("cpu_topology", f"cpu_topology: sockets x cores x threads is {product}, but the "
                                                 f"vCPU maximum (max_vcpus, else vcpus) is {max_vcpus_of(inputs)}"))
        return problems

    def create(self, props):
        with connect(props["host_uri"]) as conn:
            if lookup(conn.lookupByName, props["name"]):
                raise VdeskError(f"domain {props['name']!r} already exists on {props['host_uri']}; "
                                 "set adopt: true to take it over, or choose another name")
            dom = conn.defineXML(desired_model(shares_at_use(props)).to_xml())
            faults.point("define")              # defined, not started
            try:
                _set_lifecycle(dom, props)
            except libvirt.libvirtError:
                undefine(dom)
                raise
            start_or_undefine(dom, autostart=props["autostart"], running=props["running"])
            return CreateResult(dom.UUIDString(), self._outputs(props, dom, pending=False, booted=True))

    def existing_id(self, props):
        with connect(props["host_uri"]) as conn:
            dom = lookup(conn.lookupByName, props["name"])
            return dom.UUIDString() if dom else None

    def update_adopted(self, _id, observed, props):
        """Its guest booted with someone else's seed (host key, instance-id): boot it once with ours."""
        return self._update(observed, props, boot_again=True)

    def read(self, id_, props):
        with connect(props["host_uri"]) as conn:
            dom = lookup(conn.lookupByName, props["name"])
            if dom is None or dom.UUIDString() != id_:
                return ReadResult("", {})
            live = xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE
                                                        | libvirt.VIR_DOMAIN_XML_SECURE))
            # (a change held for an idle moment is no longer pending once the lifecycle service applied it)
            pending = props.get("pending_restart", False) and (props.get("apply_when") not in HELD_WHEN
                                                               or bool(idling.held(dom)))
            outs = self._outputs(props, dom, pending=pending, boot_id=props.get("boot_id"))
            # A restart still pending means the guest runs the old count on purpose: report the config.
            outs.update(observed_inputs(live, props, None if pending else _live_vcpus(dom)))
            policy = policy_of(dom)
            outs["idle"] = policy.model_dump() if policy else None
            schedule = schedule_of(dom)
            outs["schedule"] = schedule.model_dump() if schedule else None
            return ReadResult(id_, outs)

    def update(self, _id, olds, news):
        return self._update(olds, news)

    def diff(self, id_, olds, news):
        return super().diff(id_, olds, {**news, "disks": disks_as_before(olds.get("disks"), news.get("disks"))})

    def _update(self, olds, news, *, boot_again: bool = False):
        """Apply news in place; boot_again: the guest must boot once more even if nothing else changed."""
        compared = {**news, "disks": disks_as_before(olds.get("disks"), news.get("disks"))}
        changed = {k for k in self.PROPS if olds.get(k) != compared.get(k)}
        with connect(news["host_uri"]) as conn:
            dom = conn.lookupByName(news["name"])
            held = idling.held(dom)              # changes an earlier `up` left for an idle moment: still to do
            sleeping = idling.runtime_state(dom)
            sleeping = sleeping if sleeping in idling.OFF_ON_PURPOSE else None
            desired = desired_model(shares_at_use(news))
            desired.uuid = dom.UUIDString()
            conn.defineXML(desired.to_xml())
            dom = conn.lookupByName(news["name"])
            dom.setAutostart(1 if news["autostart"] else 0)
            # (a definition replaces the metadata: the policy, and the note that idleness shut it down, go back)
            _set_lifecycle(dom, news)
            if sleeping in ("idle-off", "schedule-off"):
                idling.mark_off(dom, sleeping.removesuffix("-off"))
            pending = changed & set(_NEEDS_RESTART) | set(held)
            if sleeping:
                return self._asleep_update(dom, news, olds, pending)
            if changed & display.LIVE_PROPS and dom.isActive() and not (boot_again or pending - _LIVE_CAPABLE) \
                    and not display.set_password_live(dom, desired):
                pending |= changed & display.LIVE_PROPS    # refused: the next boot brings the new password
            needs_restart = (boot_again or bool(pending)) and dom.isActive()
            booted = False
            if needs_restart and (boot_again or not self._apply_live(dom, olds, news, pending)):
                if news.get("apply_when") in HELD_WHEN and news["running"] and not boot_again:
                    idling.hold(dom, sorted(pending))
                    log.info("%s: %s held until %s (apply_when: %s)", news["name"], sorted(pending),
                             "it is idle" if news["apply_when"] == "idle" else "its maintenance window",
                             news["apply_when"])
                elif news["restart_policy"] == "on-change" and news["running"]:
                    how = shut_down(dom, news["shutdown_timeout_s"])
                    log.info("restarted %s to apply %s (%s)", news["name"], sorted(changed), how)
                    dom.create()
                    needs_restart, booted = False, True
            else:
                needs_restart = False
            if news["running"] and not dom.isActive():
                dom.create()
                booted = True
            elif not news["running"] and dom.isActive():
                shut_down(dom, news["shutdown_timeout_s"])
            return UpdateResult(self._outputs(news, dom, pending=needs_restart, booted=booted,
                                              boot_id=olds.get("boot_id")))

    def _asleep_update(self, dom, news, olds, pending: set[str]) -> UpdateResult:
        """A desktop asleep stays asleep: what needs it running waits for its next boot (pending_restart says so;
        with apply_when: idle or window, still held for the lifecycle service); declared off, its sleep is
        discarded."""
        if pending and news["running"] and news.get("apply_when") in HELD_WHEN:
            idling.hold(dom, sorted(pending))
        if not news["running"]:
            if dom.hasManagedSaveImage(0):
                dom.managedSaveRemove(0)
            idling.mark_off(dom, None)
            log.info("%s: declared off while asleep: its sleep is discarded", news["name"])
        else:
            log.info("%s is asleep: left asleep%s", news["name"], ", the change waits for its next boot" if pending
                     else "")
        return UpdateResult(self._outputs(news, dom, pending=bool(pending) and news["running"],
                                          boot_id=olds.get("boot_id")))

    def _apply_live(self, dom, olds, news, changed) -> bool:
        """Apply to the running guest what it takes without a reboot; True when nothing needs a restart.

        Memory decreases go through the balloon; a vCPU count within the boot-time maximum is
        hot-plugged (or unplugged, which needs the guest's cooperation). Anything else, or a
        refusal, leaves the change to restart_policy; the log says why.
        """
        pending = set(changed)
        if pending - _LIVE_CAPABLE:
            return False
        name = news["name"]
        if "memory" in pending and news["memory"] > olds["memory"]:
            log.info("%s: memory grows to %d MiB, above the boot-time maximum: needs a restart",
                     name, news["memory"] // MiB)
            return False
        if pending & {"vcpus", "max_vcpus"}:
            # The running guest's own maximum decides, not the old state: it may have drifted.
            boot_max = dom.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_VCPU_MAXIMUM)
            if max_vcpus_of(news) != boot_max:
                log.info("%s: vCPU maximum %d -> %d needs a restart", name, boot_max, max_vcpus_of(news))
                return False
        if "memory" in pending:
            try:
                dom.setMemoryFlags(news["memory"] // 1024, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            except libvirt.libvirtError as exc:
                log.warning("%s: live memory change refused, falling back to restart_policy %r: %s",
                            name, news["restart_policy"], exc.get_error_message())
                return False
        if pending & {"vcpus", "max_vcpus"} and _live_vcpus(dom) != news["vcpus"]:
            try:
                # Also persistent, so the config libvirt keeps agrees even if redefined meanwhile.
                dom.setVcpusFlags(news["vcpus"], libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            except libvirt.libvirtError as exc:
                log.warning("%s: live vCPU change to %d refused, falling back to restart_policy %r: %s",
                            name, news["vcpus"], news["restart_policy"], exc.get_error_message())
                return False
            log.info("%s: vCPUs set to %d live (hot-plug), without a restart", name, news["vcpus"])
        return True

    def delete(self, _id, props):
        with connect(props["host_uri"]) as conn:
            dom = lookup(conn.lookupByName, props["name"])
            if dom is None:
                return
            shut_down(dom, props.get("shutdown_timeout_s") or 60)
            faults.point("destroy")             # off, still defined
            undefine(dom)
        display.remove_sockets(props.get("graphics_socket"))
        _remove_logs(props.get("log_file"))
        _remove_logs(props.get("tpm_log_file"))
        _remove_logs(props.get("console_log_file"))

    def _outputs(self, props, dom, *, pending, booted: bool = False, boot_id: str | None = None):
        """`boot_id` names the guest's current boot: new each time vdesk starts it, so that the readiness
        gate, which takes it as an input, checks the guest again after a restart (a new system disk)."""
        state = idling.runtime_state(dom)      # running | asleep | idle-off | schedule-off | stopped
        boot_id = (secrets.token_hex(8) if booted else boot_id) if state != "stopped" else None
        ports = {}
        if dom.isActive():
            live = xmlmodel.Domain.from_xml(dom.XMLDesc(0))
            ports = {g.type: g.port for g in reversed(live.graphics) if g.port and g.port > 0}
        return {**self.inputs_of(props), "uuid": dom.UUIDString(), "state": state,
                "running": state != "stopped", "autostart": bool(dom.autostart()),
                "pending_restart": bool(pending), "display_port": ports.get("vnc"), "spice_port": ports.get("spice"),
                "boot_id": boot_id}


class Domain(Resource):
    """A libvirt domain; see DomainProvider.PROPS for what it declares."""

    uuid: pulumi.Output[str]
    state: pulumi.Output[str]          # running | asleep | idle-off (both declared running, not drift) | stopped
    display_port: pulumi.Output[int]
    spice_port: pulumi.Output[int]
    boot_id: pulumi.Output[str]        # new at each start by vdesk: what the readiness gate re-checks after

    def __init__(self, name: str, props: dict, opts=None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["display_password"]))
        super().__init__(DomainProvider(), name, DomainProvider.resource_props("Domain", props), opts)
