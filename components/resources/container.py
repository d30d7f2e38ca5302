"""Container: a libvirt LXC container declared like a desktop.

A *system* container boots the image's own `/sbin/init` (systemd) on a copy of
the image's root tree; an *application* container runs one command (`command`
is its argv) on such a copy. Both get memory and CPU limits, NICs on vdesk's
libvirt networks with stable MACs, host directories mounted read-only unless
`readonly: false` is written, autostart and a desired power state.

User namespaces are on unless `userns: false` is written: root inside is an
unprivileged uid on the host. Each container gets its own 65536-id range
(`uid_base`), chosen from its name and checked against every other vdesk
container on the host, and its root tree is chowned into that range.

The root tree lives at `<containers_dir>/<name>/rootfs`, beside a marker file
saying it is vdesk's; delete removes the directory along with the domain.

Over 500 lines on purpose: the id range, root tree, controller wrapper and cgroup steps serve only this
provider and are ordered by its create and delete; the exec backend is guest/nsenter.py.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Sequence

import libvirt
import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, ReadResult, Resource, UpdateResult

from .. import xmlmodel
from ..images import rootfs
from ..host.connection import connect, lookup
from .lifecycle import force_off, start_or_undefine, undefine
from ..errors import VdeskError
from ..kinds import (RESTART_POLICIES, Argv, Count, EnvLines, MiB, Mounts,   # (the container's settings' kinds)
                     RestartPolicy, WholeMiB)
from ..guest import GuestError
from ..guest.nsenter import NamespaceExec
from ..names import name_problem, stable_mac
from .. import processes
from ..waiting import WaitTimeout, wait_for
from .provider import PROJECT, UNKNOWN, DeclaredProvider, Prop, declared
from . import atuse
from ..xmlmodel.container import Container as ContainerXML
from ..xmlmodel.container import ContainerOwner, Filesystem, IdMap, InitEnv
from ..xmlmodel.domain import Console, Interface

log = logging.getLogger(__name__)

SYSTEM_INIT = "/sbin/init"
ID_COUNT = rootfs.ID_RANGE
UID_FIRST = 100000                 # the first id range starts here (as /etc/subuid's usually do)
UID_SLOTS = 4096                   # ranges UID_FIRST + slot * 65536, slot 0..4095: all below 2**29
CPU_PERIOD_US = 100000
USERNS_OFF_WARNING = ("userns is false: root in container {name!r} is root on the host "
                      "(no user namespace); write `userns: true` (the default) unless you need this")
# Changing these takes effect when the container starts again.
_NEEDS_RESTART = ("command", "env", "networks", "mounts", "memory")
_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")


# --- validation -------------------------------------------------------------------

_POSITIVE = "must be a positive integer"


def _lxc_uri_problem(v: str) -> str | None:
    parsed = urllib.parse.urlsplit(v)
    driver, _, transport = parsed.scheme.partition("+")
    if driver != "lxc":
        return f"{v!r} is not an lxc:// URI (containers need libvirt's LXC driver)"
    if parsed.hostname or transport not in ("", "unix"):
        return (f"{v!r} is a remote host: a container's root tree is made on this machine, "
                "so only local lxc:// URIs are supported")
    return None


def _absolute(v: str) -> str | None:
    return None if v.startswith("/") else f"{v!r} is not an absolute path"


def _shares_problem(v) -> str | None:
    return None if 2 <= v <= 262144 else "must be between 2 and 262144 (1024 is the default weight)"


def _networks_problem(nets) -> str | None:
    for i, net in enumerate(nets):
        if not isinstance(net, dict):
            return f"networks[{i}] must be a mapping with a network name, got {net!r}"
        extra = set(net) - {"network", "mac"}
        if extra:
            return f"networks[{i}] has unknown key(s) {', '.join(sorted(extra))} (allowed: network, mac)"
        if not isinstance(net.get("network"), str) or not net["network"]:
            return f"networks[{i}] needs a network (a libvirt network's name)"
        mac = net.get("mac")
        if mac is not None and mac != UNKNOWN and (not isinstance(mac, str) or not _MAC.match(mac.lower())):
            return f"networks[{i}].mac: {mac!r} is not a MAC address like 52:54:00:12:34:56"
    return None


def _normal_networks(name: str, nets: list) -> list[dict]:
    out = []
    for net in nets:
        mac = net.get("mac")
        if mac is None:
            # stable: the same container on the same network always has the same MAC
            mac = UNKNOWN if net["network"] == UNKNOWN else stable_mac("container", name, net["network"])
        out.append({"network": net["network"], "mac": mac.lower() if mac != UNKNOWN else mac})
    return out


def _normal_mounts(mounts: list) -> list[dict]:
    return [{"source": m["source"], "target": m["target"], "readonly": m.get("readonly", True)} for m in mounts]


# --- the model ----------------------------------------------------------------------

def container_dir(props) -> Path:
    return Path(props["containers_dir"]) / props["name"]


def rootfs_path(props) -> Path:
    return container_dir(props) / "rootfs"


def controller_path(props) -> Path:
    return container_dir(props) / "lxc-controller"


def cgroup_name(props) -> str:
    """This container's own directory in the name=systemd cgroup hierarchy (unique per host dir)."""
    digest = hashlib.sha256(str(container_dir(props).resolve()).encode()).hexdigest()[:8]
    return f"vdesk-lxc/{props['name']}-{digest}"


_SYSTEMD_HIERARCHY = "/sys/fs/cgroup/systemd"
_CONTROLLER_SCRIPT = """#!/bin/sh
# Made by vdesk (components/container.py) for container {name}: libvirt's LXC
# controller, started in a name=systemd cgroup of the container's own. On a
# cgroup v1 host libvirt never creates a cgroup in that hierarchy, so the
# container would get libvirtd's own (often the root), shared with every other
# container, and libvirt would chown it to the container's root user.
set -eu
hierarchy={hierarchy}
own=$hierarchy/{cgroup}
if [ -f "$hierarchy/cgroup.procs" ]; then
    if [ -d "$own" ]; then
        # what an earlier run left behind (systemd's sub-cgroups): the empty ones
        find "$own" -mindepth 1 -depth -type d -exec rmdir {{}} + 2>/dev/null || true
    fi
    mkdir -p "$own"
    echo $$ > "$own/cgroup.procs"
fi
exec {controller} "$@"
"""


def write_controller(props, libvirt_lxc: str) -> Path:
    path = controller_path(props)
    text = _CONTROLLER_SCRIPT.format(name=props["name"], hierarchy=shlex.quote(_SYSTEMD_HIERARCHY),
                                     cgroup=shlex.quote(cgroup_name(props)), controller=shlex.quote(libvirt_lxc))
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return path


def libvirt_lxc_path(conn) -> str:
    """The host's LXC controller binary, from the driver's capabilities."""
    return xmlmodel.HostCapabilities.of(conn).emulator("exe") or "/usr/lib/libvirt/libvirt_lxc"


def remove_cgroup(props) -> None:
    """Remove the container's name=systemd cgroups (empty once it is stopped)."""
    own = Path(_SYSTEMD_HIERARCHY) / cgroup_name(props)
    if not own.is_dir():
        return
    for top, dirs, _files in sorted(os.walk(own), key=lambda t: -t[0].count("/")):
        with contextlib.suppress(OSError):
            os.rmdir(top)
    with contextlib.suppress(OSError):
        os.rmdir(own.parent)       # vdesk-lxc itself, when no other container has one


def desired_model(props, *, uid_base: int | None, root: str | os.PathLike,
                  emulator: str | None = None) -> ContainerXML:
    """The LXC domain vdesk declares for `props`, its root tree at `root`."""
    props = ContainerProvider().renamed(props)  # (props written before memory was bytes read the same)
    memory_kib = int(props["memory"]) // 1024
    command = list(props.get("command") or []) or [SYSTEM_INIT]
    vcpus = int(props.get("vcpus") or 1)
    model = ContainerXML(
        type="lxc", name=props["name"], memory_kib=memory_kib, current_memory_kib=memory_kib,
        vcpus=vcpus, cpu_shares=props.get("cpu_shares"),
        # vcpus caps CPU time: at most `vcpus` CPUs' worth per period
        cpu_period=CPU_PERIOD_US, cpu_quota=vcpus * CPU_PERIOD_US,
        os_type="exe", arch="x86_64", init=command[0], init_args=command[1:],
        init_env=[InitEnv(name=k, value=v) for k, v in (e.split("=", 1) for e in props.get("env") or [])],
        privnet=True,   # its own network namespace, with or without NICs
        on_poweroff="destroy", on_reboot="restart", on_crash="destroy",
        owner=ContainerOwner(stack=props.get("owner") or "", resource=props["name"],
                             project=props.get("project") or None),
        emulator=emulator,
    )
    if uid_base is not None:
        model.uid_maps = [IdMap(start=0, target=uid_base, count=ID_COUNT)]
        model.gid_maps = [IdMap(start=0, target=uid_base, count=ID_COUNT)]
    model.filesystems.append(Filesystem(type="mount", accessmode="passthrough", source_dir=str(root),
                                        target_dir="/"))
    for m in _normal_mounts(props.get("mounts") or []):
        model.filesystems.append(Filesystem(type="mount", accessmode="passthrough", source_dir=m["source"],
                                            target_dir=m["target"], readonly=bool(m["readonly"])))
    for net in props.get("networks") or []:
        model.interfaces.append(Interface(type="network", source_network=net["network"], mac=net["mac"]))
    model.consoles.append(Console(type="pty", target_type="lxc"))
    return model


def mounts_at_use(props) -> list[dict]:
    """The mounts as libvirt gets them: on this machine, each source checked against the policy again now and
    resolved (resources/atuse.py), so a directory swapped for a symlink since preview cannot lead out."""
    mounts = _normal_mounts(props.get("mounts") or [])
    if not atuse.on_this_machine(props.get("host_uri", "")):
        return mounts
    return [{**m, "source": atuse.resolved("container_mounts", m["source"], f"mounts[{i}].source")}
            for i, m in enumerate(mounts)]


def observed_inputs(live: ContainerXML, props) -> dict:
    """The declared properties as libvirt has them, so drift shows up as a diff."""
    declared_mounts = {m.get("target"): m.get("source") for m in props.get("mounts") or [] if isinstance(m, dict)}
    command = [live.init or SYSTEM_INIT, *live.init_args]
    vcpus = live.vcpus
    if live.cpu_quota and live.cpu_quota > 0 and live.cpu_period:
        vcpus = max(1, live.cpu_quota // live.cpu_period)
    return {
        "memory": (live.memory_kib or 0) * 1024,
        "vcpus": vcpus,
        "cpu_shares": live.cpu_shares if props.get("cpu_shares") is not None else None,
        "command": [] if command == [SYSTEM_INIT] else command,
        "env": [f"{e.name}={e.value or ''}" for e in live.init_env],
        "networks": [{"network": i.source_network, "mac": (i.mac or "").lower()} for i in live.interfaces],
        "mounts": [{"source": atuse.as_declared(declared_mounts.get(f.target_dir), f.source_dir,
                                                props.get("host_uri", "")),
                    "target": f.target_dir, "readonly": bool(f.readonly)} for f in live.mounts],
        "userns": bool(live.uid_maps),
    }


# --- id ranges ---------------------------------------------------------------------

def uid_ranges_in_use(conn, containers_dir: Path, *, except_name: str | None = None) -> dict[int, str]:
    """uid_base -> who uses it: every LXC domain's idmap on the host, and every vdesk container
    directory under containers_dir (defined or not)."""
    used: dict[int, str] = {}
    for dom in conn.listAllDomains(0):
        if dom.name() == except_name:
            continue
        with contextlib.suppress(libvirt.libvirtError, ValueError):
            live = ContainerXML.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            for m in live.uid_maps + live.gid_maps:
                used[m.target] = f"domain {dom.name()}"
    if containers_dir.is_dir():
        for marker in containers_dir.glob(f"*/{rootfs.MARKER}"):
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(marker.read_text())
                if data.get("uid_base") is not None and data.get("name") != except_name:
                    used[int(data["uid_base"])] = f"container dir {marker.parent}"
    return used


def _overlaps(base: int, other: int, count: int = ID_COUNT) -> bool:
    return base < other + count and other < base + count


def pick_uid_base(name: str, used: Sequence[int]) -> int:
    """The first free range, probing from a slot derived from the name (stable when uncontended)."""
    start = int.from_bytes(hashlib.sha256(f"vdesk-userns/{name}".encode()).digest()[:4], "big") % UID_SLOTS
    for i in range(UID_SLOTS):
        base = UID_FIRST + ((start + i) % UID_SLOTS) * ID_COUNT
        if not any(_overlaps(base, u) for u in used):
            return base
    raise VdeskError("no free uid range left for a container (all 4096 are in use)")


def _allocation_lock(containers_dir: str) -> Path:
    """Where uid ranges are allocated under a lock: /run/lock, so destroy leaves no file in the tree."""
    digest = hashlib.sha256(os.path.abspath(containers_dir).encode()).hexdigest()[:16]
    return Path("/run/lock/vdesk") / f"containers-{digest}.lock"


def unreachable_dirs(paths: Sequence[str | os.PathLike], uid: int) -> list[str]:
    """Directories among `paths` and their ancestors that `uid` cannot enter (ACLs included:
    the test runs as that uid). libvirt sets up a user-namespaced container's root and its
    mounts as the container's root user, so every directory on the way must let it pass."""
    wanted: list[str] = []
    for path in paths:
        p = Path(path).resolve()
        for d in [*reversed(p.parents), p]:
            if str(d) not in wanted:
                wanted.append(str(d))
    script = 'for d; do [ -x "$d" ] || echo "$d"; done'
    proc = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
                           "/bin/sh", "-c", script, "sh", *wanted],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise VdeskError(f"cannot test directory access as uid {uid}: {proc.stderr.strip()}")
    return proc.stdout.split()


def _require_reachable(props, uid_base: int | None) -> None:
    """Fail early, naming the property, when the container's root could not reach its tree or mounts."""
    if uid_base is None:
        return
    problems = []
    blocked = unreachable_dirs([props["containers_dir"]], uid_base)
    if blocked:
        problems.append(f"containers_dir: {blocked[0]} cannot be entered by the container's root "
                        f"(host uid {uid_base}); put containers_dir where every directory on the way is "
                        "world-executable (e.g. /var/lib/vdesk/containers), or `chmod o+x` it")
    for i, m in enumerate(props.get("mounts") or []):
        blocked = unreachable_dirs([m["source"]], uid_base)
        if blocked:
            problems.append(f"mounts[{i}].source: {blocked[0]} cannot be entered by the container's root "
                            f"(host uid {uid_base}); `chmod o+x` it or mount another directory")
    if problems:
        raise VdeskError("\n".join(problems))


def _read_marker(props) -> dict | None:
    try:
        data = json.loads((container_dir(props) / rootfs.MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("name") == props["name"] else None


# --- stopping ----------------------------------------------------------------------

def stop_container(dom, timeout_s: float) -> str:
    """Ask the container to stop, force it off after timeout_s; returns how it stopped.

    A system container's systemd powers off on SIGRTMIN+4 (its documented request in a
    container). Until systemd has installed its handlers, the kernel drops signals to a
    namespace's pid 1, so the request is repeated every second while we wait. libvirt's
    own shutdown goes through /dev/initctl, which only works once systemd listens
    there, and otherwise sends SIGTERM, which systemd takes as "re-execute". Other
    inits get libvirt's shutdown.
    """
    if not dom.isActive():
        return "already off"
    system = (ContainerXML.from_xml(dom.XMLDesc(0)).init or SYSTEM_INIT) == SYSTEM_INIT
    asked = 0.0

    def off() -> bool:
        nonlocal asked
        if not dom.isActive():
            return True
        if time.monotonic() - asked >= 1.0:
            asked = time.monotonic()
            try:
                if system:
                    os.kill(init_pid(dom.connect(), dom.name()), signal.SIGRTMIN + 4)
                else:
                    dom.shutdown()
            except (GuestError, ProcessLookupError, libvirt.libvirtError) as exc:
                log.debug("stop request to %s: %s", dom.name(), exc)
        return False

    try:
        wait_for(off, timeout_s, interval_s=0.1)
    except WaitTimeout:
        return force_off(dom)
    return "shut down"


# --- the provider --------------------------------------------------------------------

class ContainerProvider(DeclaredProvider):
    OWNER_KIND = "container"         # its owner is its metadata: no other stack's refresh or destroy takes it
    # Memory was stored in MiB (memory_mib) before sizes were bytes inside vdesk.
    RENAMED = {"memory_mib": ("memory", MiB)}
    PROPS = {
        "host_uri": Prop(str, required=True, replaces=True, validate=_lxc_uri_problem,
                         doc="libvirt LXC URI, e.g. the embedded host's `lxc:///system?socket=…`"),
        "name": Prop(str, required=True, replaces=True, validate=name_problem),
        "owner": Prop(str, default="", doc="stack that owns the container (metadata)"),
        "project": PROJECT,
        "image": Prop(str, required=True, replaces=True, validate=_absolute,
                      doc="golden image directory (or qcow2/raw ext4 file) the root tree is copied from"),
        "containers_dir": Prop(str, required=True, replaces=True, validate=_absolute,
                               doc="host directory; the root tree is `<containers_dir>/<name>/rootfs`"),
        "command": declared(Argv, default=[],
                            doc="argv of an application container; empty: a system container (/sbin/init)"),
        "env": declared(EnvLines, default=[], doc="NAME=value for the init/command"),
        "memory": declared(WholeMiB, "must be a positive whole number of MiB, in bytes", required=True,
                           doc="memory limit in bytes (a whole number of MiB); lowering is applied live, raising at a "
                               "restart"),
        "vcpus": declared(Count, _POSITIVE, default=1, doc="CPU time cap in whole CPUs (CFS quota); live"),
        "cpu_shares": Prop(int, validate=_shares_problem, doc="relative CPU weight; live"),
        "networks": Prop(list, default=[], validate=_networks_problem,
                         doc="NICs {network, mac}; mac defaults to one derived from name and network"),
        "mounts": declared(Mounts, default=[],
                           doc="host directories {source, target, readonly (default true)}"),
        "userns": Prop(bool, default=True, replaces=True,
                       doc="root inside is an unprivileged host uid; false is explicit and warned about"),
        "running": Prop(bool, default=True, doc="desired power state"),
        "autostart": Prop(bool, default=False),
        "restart_policy": declared(RestartPolicy, f"{{input}} must be one of {', '.join(RESTART_POLICIES)}",
                                   default="on-change"),
        "shutdown_timeout_s": declared(Count, _POSITIVE, default=30),
    }
    OUTPUTS = ("uuid", "state", "kind", "uid_base", "rootfs", "warnings", "pending_restart")

    def check(self, olds, news):
        result = super().check(olds, news)
        inputs, bad = result.inputs, {f.property for f in result.failures}
        name = inputs.get("name")
        if "networks" not in bad and isinstance(inputs.get("networks"), list) and isinstance(name, str) \
                and name != UNKNOWN:
            inputs["networks"] = _normal_networks(name, inputs["networks"])
            macs = [n["mac"] for n in inputs["networks"] if n["mac"] != UNKNOWN]
            if len(set(macs)) != len(macs):
                result.failures.append(CheckFailure(
                    "networks", "networks: two NICs would have the same MAC; give each a distinct mac"))
        if "mounts" not in bad and isinstance(inputs.get("mounts"), list):
            inputs["mounts"] = _normal_mounts(inputs["mounts"])
        return CheckResult(inputs, result.failures)

    # -- create ---------------------------------------------------------------------
    def create(self, props):
        folder = container_dir(props)
        with connect(props["host_uri"]) as conn:
            if lookup(conn.lookupByName, props["name"]):
                raise VdeskError(f"container {props['name']!r} already exists on {props['host_uri']}; "
                                 "adopt it with `pulumi import` or choose another name")
            with rootfs.exclusive_lock(_allocation_lock(props["containers_dir"])):
                if os.path.lexists(folder):
                    raise VdeskError(f"container directory {folder} already exists; remove it or choose "
                                     "another name (vdesk never reuses a root filesystem it did not make)")
                uid_base = None
                if props["userns"]:
                    used = uid_ranges_in_use(conn, Path(props["containers_dir"]))
                    uid_base = pick_uid_base(props["name"], list(used))
                folder.mkdir(parents=True)
                try:
                    _require_reachable(props, uid_base)
                except BaseException:
                    rootfs.remove_tree(folder)
                    raise
                marker = {"name": props["name"], "image": props["image"], "host_uri": props["host_uri"],
                          "uid_base": uid_base, "made_by": "vdesk ContainerProvider"}
                (folder / rootfs.MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            try:
                made = rootfs.provision(props["image"], rootfs_path(props), hostname=props["name"],
                                        uid_base=uid_base, system=not props["command"])
                marker.update(image_key=rootfs.image_key(props["image"]), provision_seconds=made.seconds,
                              rootfs_bytes=made.bytes, files=made.files)
                (folder / rootfs.MARKER).write_text(json.dumps(marker, indent=2) + "\n")
                log.info("container %s: rootfs %s in %.1f s (%d MiB, uid base %s)", props["name"],
                         made.rootfs, made.seconds, made.bytes // 2**20, uid_base)
                if not props["userns"]:
                    log.warning(USERNS_OFF_WARNING.format(name=props["name"]))
                controller = write_controller(props, libvirt_lxc_path(conn))
                dom = conn.defineXML(desired_model({**props, "mounts": mounts_at_use(props)}, uid_base=uid_base,
                                                   root=made.rootfs,
                                                   emulator=str(controller)).to_xml())
            except BaseException:
                rootfs.remove_tree(folder)
                raise
            try:
                start_or_undefine(dom, autostart=props["autostart"], running=props["running"])
            except libvirt.libvirtError:
                remove_cgroup(props)
                rootfs.remove_tree(folder)
                raise
            return CreateResult(dom.UUIDString(), self._outputs(props, dom, uid_base, pending=False))

    # -- read -----------------------------------------------------------------------
    def read(self, id_, props):
        with connect(props["host_uri"]) as conn:
            dom = lookup(conn.lookupByName, props["name"])
            if dom is None or dom.UUIDString() != id_:
                return ReadResult("", {})
            live = ContainerXML.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            outs = self._outputs(props, dom, live.uid_base, pending=props.get("pending_restart", False))
            outs.update(observed_inputs(live, props))
            marker = _read_marker(props)
            root = live.root
            if marker is None or root is None or not os.path.isdir(root.source_dir or ""):
                outs["image"] = None      # the root tree vdesk made is gone: only a replace brings it back
            else:
                outs["image"] = marker.get("image")
                outs["rootfs"] = root.source_dir
            return ReadResult(id_, outs)

    # -- update ---------------------------------------------------------------------
    def update(self, _id, olds, news):
        changed = {k for k in self.PROPS if olds.get(k) != news.get(k)}
        with connect(news["host_uri"]) as conn:
            dom = conn.lookupByName(news["name"])
            current = ContainerXML.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            uid_base = current.uid_base
            if "mounts" in changed:
                _require_reachable(news, uid_base)
            controller = write_controller(news, libvirt_lxc_path(conn))
            desired = desired_model({**news, "mounts": mounts_at_use(news)}, uid_base=uid_base,
                                    root=olds.get("rootfs") or rootfs_path(news),
                                    emulator=str(controller))
            desired.uuid = dom.UUIDString()
            conn.defineXML(desired.to_xml())
            dom = conn.lookupByName(news["name"])
            dom.setAutostart(1 if news["autostart"] else 0)
            needs_restart = False
            if dom.isActive():
                self._apply_live(dom, news, changed)
                needs_restart = self._needs_restart(dom, news, changed)
                if needs_restart and news["restart_policy"] == "on-change" and news["running"]:
                    how = stop_container(dom, news["shutdown_timeout_s"])
                    log.info("restarted container %s to apply %s (%s)", news["name"], sorted(changed), how)
                    dom.create()
                    needs_restart = False
            if news["running"] and not dom.isActive():
                dom.create()
                needs_restart = False
            elif not news["running"] and dom.isActive():
                how = stop_container(dom, news["shutdown_timeout_s"])
                log.info("stopped container %s (%s)", news["name"], how)
                needs_restart = False
            return UpdateResult(self._outputs(news, dom, uid_base, pending=needs_restart))

    @staticmethod
    def _apply_live(dom, news, changed) -> None:
        if changed & {"vcpus", "cpu_shares"}:
            params = {"vcpu_period": CPU_PERIOD_US, "vcpu_quota": int(news["vcpus"]) * CPU_PERIOD_US}
            if news.get("cpu_shares") is not None:
                params["cpu_shares"] = int(news["cpu_shares"])
            dom.setSchedulerParametersFlags(params, libvirt.VIR_DOMAIN_AFFECT_LIVE)
        if "memory" in changed and news["memory"] // 1024 <= dom.maxMemory():
            # the memory cgroup limit, below the size the container was started with
            dom.setMemoryFlags(news["memory"] // 1024, libvirt.VIR_DOMAIN_AFFECT_LIVE)

    @staticmethod
    def _needs_restart(dom, news, changed) -> bool:
        others = changed & (set(_NEEDS_RESTART) - {"memory"})
        grows = "memory" in changed and news["memory"] // 1024 > dom.maxMemory()
        return bool(others) or grows

    # -- delete ---------------------------------------------------------------------
    def delete(self, _id, props):
        with connect(props["host_uri"]) as conn:
            dom = lookup(conn.lookupByName, props["name"])
            if dom is not None:
                how = stop_container(dom, props.get("shutdown_timeout_s") or 30)
                log.info("container %s: %s", props["name"], how)
                undefine(dom)
        remove_cgroup(props)
        folder = container_dir(props)
        if _read_marker(props) is not None:
            rootfs.remove_tree(folder)
        elif os.path.lexists(folder):
            log.warning("leaving %s: it has no vdesk marker naming container %s", folder, props["name"])

    def _outputs(self, props, dom, uid_base, *, pending):
        state = "running" if dom.isActive() else "stopped"
        warnings = [] if props.get("userns", True) else [USERNS_OFF_WARNING.format(name=props["name"])]
        return {**self.inputs_of(props), "uuid": dom.UUIDString(), "state": state,
                "running": state == "running", "autostart": bool(dom.autostart()),
                "kind": "application" if props.get("command") else "system",
                "uid_base": uid_base, "rootfs": str(rootfs_path(props)), "warnings": warnings,
                "pending_restart": bool(pending)}


class LxcContainer(Resource):
    """A libvirt LXC container; see ContainerProvider.PROPS for what it declares."""

    uuid: pulumi.Output[str]
    state: pulumi.Output[str]
    uid_base: pulumi.Output[int]
    rootfs: pulumi.Output[str]
    warnings: pulumi.Output[list]

    def __init__(self, name: str, props: dict, opts=None):
        resource_props = ContainerProvider.resource_props("Container", props)
        if props.get("userns", True) is False:
            pulumi.log.warn(USERNS_OFF_WARNING.format(name=props.get("name", name)))
        super().__init__(ContainerProvider(), name, resource_props, opts)


# --- running commands inside ---------------------------------------------------------

def init_pid(conn, name: str) -> int:
    """Host pid of the container's init (pid 1 inside): the child of libvirt's LXC controller."""
    dom = lookup(conn.lookupByName, name)
    if dom is None:
        raise GuestError(f"container {name!r} does not exist")
    if not dom.isActive():
        raise GuestError(f"container {name!r} is not running")
    controller = dom.ID()     # libvirt_lxc, which forked the container's init
    children = processes.children(controller)
    if len(children) != 1:
        raise GuestError(f"container {name!r}: expected one init under controller {controller}, "
                         f"found {children or 'none'}")
    return int(children[0])


class ContainerExec(NamespaceExec):
    """The container backend of the checks (guest/nsenter.py), finding the container's init through libvirt."""

    def __init__(self, host_uri: str, name: str, *, user: str | None = None, timeout_s: float = 120):
        super().__init__(name, self._lookup_init, user=user, timeout_s=timeout_s)
        self.host_uri = host_uri

    def __repr__(self):
        return f"ContainerExec({self.name!r} on {self.host_uri!r})"

    def _lookup_init(self) -> int:
        with connect(self.host_uri) as conn:
            return init_pid(conn, self.name)
