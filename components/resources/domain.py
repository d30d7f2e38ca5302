"""Domain: the desktop's virtual machine, declared through the typed XML model.

Small changes never replace the VM: memory, vCPUs, disks, NICs, kernel and
power state are applied to the existing domain (live where libvirt allows,
otherwise at a controlled restart chosen by restart_policy).
"""
from __future__ import annotations

import logging
import os
import time

import libvirt
import pulumi
from pulumi.dynamic import CreateResult, ReadResult, Resource, UpdateResult

from .. import xmlmodel
from ..host.connection import connect, lookup
from ..errors import VdeskError
from ..names import name_problem
from . import faults
from .provider import ADOPT, DeclaredProvider, Prop

log = logging.getLogger(__name__)

BOOT_MODES = ("kernel", "bios", "uefi")
DOMAIN_TYPES = ("kvm", "qemu", "test")  # test: libvirt's test driver (unit tests)
RESTART_POLICIES = ("on-change", "never")
GUEST_AGENT = "org.qemu.guest_agent.0"
_UNDEFINE_FLAGS = (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                   | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
# Changing these only takes effect when the guest boots again.
_NEEDS_RESTART = ("domain_type", "memory_mib", "vcpus", "max_vcpus", "kernel", "initrd", "cmdline", "disks", "nics",
                  "cpu_mode", "cpu_topology", "machine", "cpu_model", "cpu_pinning", "hostdevs")
# Of those, what a running guest may take without a reboot (see DomainProvider._apply_live).
_LIVE_CAPABLE = {"memory_mib", "vcpus", "max_vcpus"}


def _one_of(options):
    return lambda v: None if v in options else f"{v!r} must be one of {', '.join(options)}"


def _positive(v):
    return None if v > 0 else "must be a positive integer"


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


def _topology_problem(topology) -> str | None:
    keys = ("sockets", "cores", "threads")
    def whole(v):  # the wire may carry 2 as 2.0
        return isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() and v > 0
    if set(topology) != set(keys) or not all(whole(topology[k]) for k in keys):
        return "must be {sockets, cores, threads}, each a positive integer"
    return None


def _pinning_problem(pins) -> str | None:
    for i, cpuset in enumerate(pins):
        try:
            xmlmodel.parse_cpuset(cpuset)
        except ValueError as exc:
            return f"[{i}]: {exc}"
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


def max_vcpus_of(props) -> int:
    """The boot-time vCPU maximum: max_vcpus, or (unset) vcpus, so no hot-plug room is reserved."""
    return int(props.get("max_vcpus") or props["vcpus"])


def desired_model(props) -> xmlmodel.Domain:
    memory_kib = int(props["memory_mib"]) * 1024
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
        kernel=props.get("kernel") if boot == "kernel" else None,
        initrd=props.get("initrd") if boot == "kernel" else None,
        cmdline=props.get("cmdline") if boot == "kernel" else None,
        boot_dev="hd" if boot != "kernel" else None,
        acpi=True, apic=True,
        on_poweroff="destroy", on_reboot="restart", on_crash="destroy",
        owner=xmlmodel.Owner(stack=props.get("owner") or "", resource=props["name"]),
    )
    for index, disk in enumerate(props.get("disks") or []):
        dom.disks.append(xmlmodel.Disk(
            type="file", device=disk.get("device", "disk"), driver_name="qemu",
            driver_type=disk.get("format", "qcow2"), source_file=disk["path"],
            target_dev=disk.get("target") or "vd" + "abcdefghijklmnopqrstuvwxyz"[index],
            target_bus=disk.get("bus", "virtio"), readonly=bool(disk.get("readonly"))))
    for nic in props.get("nics") or []:
        dom.interfaces.append(xmlmodel.Interface(type="network", source_network=nic["network"],
                                                 mac=nic["mac"], model="virtio"))
    dom.channels.append(xmlmodel.Channel(type="unix", target_type="virtio", target_name=GUEST_AGENT))
    if props.get("graphics_socket"):
        dom.graphics.append(xmlmodel.Graphics(type="vnc", listen_type="socket",
                                              listen_socket=props["graphics_socket"]))
    else:
        dom.graphics.append(xmlmodel.Graphics(type="vnc", autoport=True, listen_type="address",
                                              listen_address="127.0.0.1"))
    dom.serials.append(xmlmodel.Serial(type="pty"))
    dom.consoles.append(xmlmodel.Console(type="pty", target_type="serial"))
    dom.rngs.append(xmlmodel.Rng(model="virtio", backend_model="random", backend="/dev/urandom"))
    _hardware(dom, props)
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
        "memory_mib": (live.current_memory_kib or live.memory_kib) // 1024,
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
    }


def _disk_as_input(disk: xmlmodel.Disk, props) -> dict:
    declared = {d.get("path"): d for d in props.get("disks") or []}.get(disk.source_file, {})
    out = {"path": disk.source_file, "format": disk.driver_type}
    for key, value in (("bus", disk.target_bus), ("readonly", disk.readonly), ("device", disk.device),
                       ("target", disk.target_dev)):
        if key in declared:  # only echo what was declared, so libvirt's defaults never look like drift
            out[key] = value
    return out


def undefine(dom) -> None:
    """Undefine with NVRAM, managed save and snapshot metadata, so nothing is left behind.

    Drivers that do not know a flag (libvirt's test driver has no NVRAM) get the
    strongest subset they accept.
    """
    for flags in (_UNDEFINE_FLAGS, _UNDEFINE_FLAGS & ~libvirt.VIR_DOMAIN_UNDEFINE_NVRAM, 0):
        try:
            dom.undefineFlags(flags)
            return
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT) or flags == 0:
                raise


def start_or_undefine(dom, *, autostart: bool, running: bool) -> None:
    """Finish a create transactionally: if the new domain cannot start, it does not stay defined."""
    try:
        dom.setAutostart(1 if autostart else 0)
        if running:
            dom.create()
    except libvirt.libvirtError:
        if dom.isActive():
            dom.destroy()
        undefine(dom)
        raise


def wait_until(condition, timeout_s: float, poll_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


def shut_down(dom, timeout_s: float) -> str:
    """Ask the guest to power off; force it after timeout_s. Returns how it stopped."""
    if not dom.isActive():
        return "already off"
    try:
        dom.shutdown()
    except libvirt.libvirtError as exc:
        log.info("graceful shutdown of %s refused: %s", dom.name(), exc.get_error_message())
    if wait_until(lambda: not dom.isActive(), timeout_s):
        return "shut down"
    return force_off(dom)


def force_off(dom) -> str:
    """Pull the plug, unless the guest went down by itself meanwhile."""
    try:
        dom.destroy()
    except libvirt.libvirtError:
        if dom.isActive():
            raise
    return "forced off"


def _remove_display_socket(path: str | None) -> None:
    """qemu leaves its VNC unix socket behind; a destroyed desktop leaves no file."""
    if path and os.path.exists(path):
        os.unlink(path)


def _remove_logs(path: str | None) -> None:
    """qemu's log and its rotations: on an embedded host they are vdesk's files, and go with the domain."""
    if not path:
        return
    folder, name = os.path.split(path)
    for entry in os.listdir(folder) if os.path.isdir(folder) else ():
        if entry == name or entry.startswith(name + "."):
            os.unlink(os.path.join(folder, entry))


class DomainProvider(DeclaredProvider):
    PROPS = {
        "host_uri": Prop(str, required=True, replaces=True),
        "name": Prop(str, required=True, replaces=True, validate=name_problem),
        "owner": Prop(str, default="", replaces=True, doc="stack that owns the domain (metadata)"),
        "domain_type": Prop(str, default="qemu", validate=_one_of(DOMAIN_TYPES)),
        "boot": Prop(str, default="kernel", replaces=True, validate=_one_of(BOOT_MODES)),
        "memory_mib": Prop(int, required=True, validate=_positive),
        "vcpus": Prop(int, required=True, validate=_positive,
                      doc="live (hot-plug) within max_vcpus on a running guest, else at a restart"),
        "max_vcpus": Prop(int, validate=_positive,
                          doc="vCPUs the guest can be hot-plugged up to (default: vcpus); a change needs a restart"),
        "cpu_mode": Prop(str, doc="host-passthrough, host-model or custom (checked against the host at preview)"),
        "cpu_model": Prop(str, doc="a named CPU model (mode custom, fallback forbid)"),
        "cpu_pinning": Prop(list, validate=_pinning_problem, doc="host CPU set per vCPU (cputune vcpupin)"),
        "hostdevs": Prop(list, validate=_hostdevs_problem,
                         doc="host devices: {type: pci, address} (whole device, managed) or {type: mdev, uuid}"),
        "cpu_topology": Prop(dict, validate=_topology_problem,
                             doc="{sockets, cores, threads}; their product is the vCPU maximum"),
        "machine": Prop(str, doc="machine type, e.g. q35 or pc (libvirt's versioned name reads back as the same)"),
        "kernel": Prop(str), "initrd": Prop(str), "cmdline": Prop(str),
        "disks": Prop(list, default=[], validate=_disks_problem),
        "nics": Prop(list, default=[], validate=_nics_problem),
        "graphics_socket": Prop(str, replaces=True),
        "log_file": Prop(str, inert=True, doc="qemu's log of this domain, removed on delete (embedded hosts)"),
        "running": Prop(bool, default=True, doc="desired power state"),
        "autostart": Prop(bool, default=False),
        "restart_policy": Prop(str, default="on-change", validate=_one_of(RESTART_POLICIES)),
        "shutdown_timeout_s": Prop(int, default=60, validate=_positive),
        "adopt": ADOPT,
    }
    OUTPUTS = ("uuid", "state", "pending_restart", "display_port")
    JOURNAL_KIND = "domain"

    def check_more(self, inputs):
        problems = []
        if inputs.get("boot") == "kernel" and not inputs.get("kernel"):
            problems.append(("kernel", "boot 'kernel' needs a kernel path (or use boot 'bios' / 'uefi' "
                                       "for an image with its own bootloader)"))
        vcpus, max_vcpus = inputs.get("vcpus"), inputs.get("max_vcpus")
        # unknowns (previews) wait; a non-positive max_vcpus is reported by its own rule
        if _is_int(vcpus) and _is_int(max_vcpus) and 0 < max_vcpus < vcpus:
            problems.append(("max_vcpus", f"max_vcpus: must be >= vcpus ({vcpus}), got {max_vcpus}"))
        topology = inputs.get("cpu_topology")
        if isinstance(topology, dict) and not _topology_problem(topology) and _is_int(vcpus) \
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
            dom = conn.defineXML(desired_model(props).to_xml())
            faults.point("define")              # defined, not started
            start_or_undefine(dom, autostart=props["autostart"], running=props["running"])
            return CreateResult(dom.UUIDString(), self._outputs(props, dom, pending=False))

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
            live = xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            pending = props.get("pending_restart", False)
            outs = self._outputs(props, dom, pending=pending)
            # A restart still pending means the guest runs the old count on purpose: report the config.
            outs.update(observed_inputs(live, props, None if pending else _live_vcpus(dom)))
            return ReadResult(id_, outs)

    def update(self, _id, olds, news):
        return self._update(olds, news)

    def _update(self, olds, news, *, boot_again: bool = False):
        """Apply news in place; boot_again: the guest must boot once more even if nothing else changed."""
        changed = {k for k in self.PROPS if olds.get(k) != news.get(k)}
        with connect(news["host_uri"]) as conn:
            dom = conn.lookupByName(news["name"])
            desired = desired_model(news)
            desired.uuid = dom.UUIDString()
            conn.defineXML(desired.to_xml())
            dom = conn.lookupByName(news["name"])
            dom.setAutostart(1 if news["autostart"] else 0)
            needs_restart = (boot_again or bool(changed & set(_NEEDS_RESTART))) and dom.isActive()
            if needs_restart and (boot_again or not self._apply_live(dom, olds, news, changed)):
                if news["restart_policy"] == "on-change" and news["running"]:
                    how = shut_down(dom, news["shutdown_timeout_s"])
                    log.info("restarted %s to apply %s (%s)", news["name"], sorted(changed), how)
                    dom.create()
                    needs_restart = False
            else:
                needs_restart = False
            if news["running"] and not dom.isActive():
                dom.create()
            elif not news["running"] and dom.isActive():
                shut_down(dom, news["shutdown_timeout_s"])
            return UpdateResult(self._outputs(news, dom, pending=needs_restart))

    def _apply_live(self, dom, olds, news, changed) -> bool:
        """Apply to the running guest what it takes without a reboot; True when nothing needs a restart.

        Memory decreases go through the balloon; a vCPU count within the boot-time maximum is
        hot-plugged (or unplugged, which needs the guest's cooperation). Anything else, or a
        refusal, leaves the change to restart_policy; the log says why.
        """
        pending = changed & set(_NEEDS_RESTART)
        if pending - _LIVE_CAPABLE:
            return False
        name = news["name"]
        if "memory_mib" in pending and news["memory_mib"] > olds["memory_mib"]:
            log.info("%s: memory grows to %d MiB, above the boot-time maximum: needs a restart",
                     name, news["memory_mib"])
            return False
        if pending & {"vcpus", "max_vcpus"}:
            # The running guest's own maximum decides, not the old state: it may have drifted.
            boot_max = dom.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_VCPU_MAXIMUM)
            if max_vcpus_of(news) != boot_max:
                log.info("%s: vCPU maximum %d -> %d needs a restart", name, boot_max, max_vcpus_of(news))
                return False
        if "memory_mib" in pending:
            try:
                dom.setMemoryFlags(news["memory_mib"] * 1024, libvirt.VIR_DOMAIN_AFFECT_LIVE)
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
        _remove_display_socket(props.get("graphics_socket"))
        _remove_logs(props.get("log_file"))

    def _outputs(self, props, dom, *, pending):
        state = "running" if dom.isActive() else "stopped"
        port = None
        if dom.isActive():
            live = xmlmodel.Domain.from_xml(dom.XMLDesc(0))
            port = next((g.port for g in live.graphics if g.port and g.port > 0), None)
        return {**self.inputs_of(props), "uuid": dom.UUIDString(), "state": state,
                "running": state == "running", "autostart": bool(dom.autostart()),
                "pending_restart": bool(pending), "display_port": port}


class Domain(Resource):
    """A libvirt domain; see DomainProvider.PROPS for what it declares."""

    uuid: pulumi.Output[str]
    state: pulumi.Output[str]
    display_port: pulumi.Output[int]

    def __init__(self, name: str, props: dict, opts=None):
        super().__init__(DomainProvider(), name, DomainProvider.resource_props("Domain", props), opts)
