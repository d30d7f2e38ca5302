"""Pick kvm or tcg by booting a real probe guest, since /dev/kvm existing does not mean guests run."""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import libvirt

from .. import xmlmodel
from ..errors import VdeskError

log = logging.getLogger(__name__)

ACCELERATORS = ("auto", "kvm", "tcg")
DOMAIN_TYPES = {"kvm": "kvm", "tcg": "qemu"}
PROBE_PREFIX = "vdesk-accel-probe-"
PROBE_CMDLINE = "console=ttyS0 panic=-1"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_CACHE_VERSION = 1
_POLL_S = 0.1


class AcceleratorError(VdeskError):
    """The requested accelerator is invalid or cannot run guests on the host."""


@dataclass(frozen=True)
class AcceleratorChoice:
    accelerator: str   # "kvm" | "tcg"
    domain_type: str   # "kvm" | "qemu"  (libvirt <domain type=...>)
    reason: str


@dataclass(frozen=True)
class ProbeResult:
    domain_type: str
    booted: bool       # the kernel ran to its panic and the domain went away
    detail: str        # what happened, for humans
    elapsed_s: float


def _open(uri: str) -> libvirt.virConnect:
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise AcceleratorError(f"cannot connect to libvirt host {uri!r}: {exc.get_error_message()}") from exc


def host_domain_types(conn: libvirt.virConnect) -> tuple[str, set[str]]:
    """(host arch, libvirt domain types offered for hvm guests of that arch)."""
    caps = xmlmodel.HostCapabilities.of(conn)
    arch = caps.arch or "x86_64"
    return arch, caps.domain_types("hvm", arch)


def _probe_xml(name: str, domain_type: str, arch: str, kernel: str, console: str) -> str:
    # The kernel finds no root fs, panics, panic=-1 reboots, and libvirt destroys the domain.
    return xmlmodel.Domain(
        type=domain_type, name=name, memory_kib=256 * 1024, vcpus=1, os_type="hvm", arch=arch, kernel=kernel,
        cmdline=PROBE_CMDLINE, on_poweroff="destroy", on_reboot="destroy", on_crash="destroy",
        serials=[xmlmodel.Serial(type="file", source_path=console, target_port=0)], memballoon_model="none",
    ).to_xml()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:120] if lines else ""


def _domain_gone(conn: libvirt.virConnect, name: str) -> bool:
    try:
        return not conn.lookupByName(name).isActive()
    except libvirt.libvirtError as exc:
        # A transient domain can vanish between the lookup and the question.
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return True
        raise


def _destroy_quietly(conn: libvirt.virConnect, name: str) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        dom = conn.lookupByName(name)
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            dom.undefine()


def _probe(conn: libvirt.virConnect, domain_type: str, arch: str, kernel: str, timeout_s: float) -> ProbeResult:
    name = PROBE_PREFIX + uuid.uuid4().hex[:8]
    workdir = tempfile.mkdtemp(prefix="vdesk-accel-")
    os.chmod(workdir, 0o755)
    console = os.path.join(workdir, "console.log")
    start = time.monotonic()
    log.info("probing %s: booting %s on %s", domain_type, kernel, name)
    try:
        try:
            conn.createXML(_probe_xml(name, domain_type, arch, kernel, console), 0)
        except libvirt.libvirtError as exc:
            return ProbeResult(domain_type, False, f"could not start ({exc.get_error_message()})",
                               time.monotonic() - start)
        deadline = start + timeout_s
        while not _domain_gone(conn, name) and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        elapsed = time.monotonic() - start
        gone = _domain_gone(conn, name)
        if not gone:
            _destroy_quietly(conn, name)
        try:
            text = Path(console).read_text(errors="replace")
        except OSError:
            text = ""
        ran = "Linux version" in text
        panicked = "Kernel panic" in text
        if gone and ran:
            return ProbeResult(domain_type, True, f"booted the kernel to its expected panic in {elapsed:.1f}s",
                               elapsed)
        if not gone:
            what = f"timed out after {timeout_s:g}s"
        else:
            what = f"stopped after {elapsed:.1f}s"
        if not text.strip():
            why = "guest did not reach the kernel; no console output"
        elif not ran:
            why = f"guest did not reach the kernel; last console line: {_last_line(text)!r}"
        elif not panicked:
            why = f"kernel started but did not finish; last console line: {_last_line(text)!r}"
        else:
            why = "kernel panicked but the domain did not go away"
        return ProbeResult(domain_type, False, f"{what} ({why})", elapsed)
    finally:
        _destroy_quietly(conn, name)
        shutil.rmtree(workdir, ignore_errors=True)


def probe_boot(uri: str, domain_type: str, kernel: str, timeout_s: float = 20.0) -> ProbeResult:
    """Boot `kernel` in a throw-away domain of `domain_type` ("kvm"/"qemu") on the host at `uri`.

    The host must be local: the kernel path and the console file are on this machine.
    """
    if not os.path.isfile(kernel):
        raise AcceleratorError(f"accelerator probe kernel {kernel!r} does not exist")
    conn = _open(uri)
    try:
        arch, _types = host_domain_types(conn)
        return _probe(conn, domain_type, arch, os.path.abspath(kernel), timeout_s)
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


# --- verdict cache -----------------------------------------------------------

def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return "unknown"


def _cache_key(uri: str, boot_id: str, kernel: str) -> str:
    return json.dumps([uri, boot_id, kernel])


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable accelerator cache %s: %s", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
        return {}
    verdicts = data.get("verdicts")
    return verdicts if isinstance(verdicts, dict) else {}


def _write_cache(path: Path, key: str, boot_id: str, choice: AcceleratorChoice) -> None:
    verdicts = {k: v for k, v in _read_cache(path).items()
                if isinstance(v, dict) and v.get("boot_id") == boot_id}  # older boots are stale
    verdicts[key] = {**asdict(choice), "boot_id": boot_id, "decided_at": time.time()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": _CACHE_VERSION, "verdicts": verdicts}, indent=2) + "\n")
    os.replace(tmp, path)


def _cached(path: Path, key: str) -> AcceleratorChoice | None:
    entry = _read_cache(path).get(key)
    if not isinstance(entry, dict):
        return None
    try:
        choice = AcceleratorChoice(entry["accelerator"], entry["domain_type"], entry["reason"])
    except (KeyError, TypeError):
        return None
    if DOMAIN_TYPES.get(choice.accelerator) != choice.domain_type:
        return None
    return AcceleratorChoice(choice.accelerator, choice.domain_type, f"{choice.reason} (cached verdict)")


# --- public API --------------------------------------------------------------

def resolve_accelerator(uri: str, requested: str, *, kernel: str | None, timeout_s: float = 20.0,
                        cache_path: Path | None = None) -> AcceleratorChoice:
    """Turn the `accelerator` setting ("kvm", "tcg" or "auto") into what libvirt should run."""
    if requested not in ACCELERATORS:
        raise AcceleratorError(
            f"accelerator: must be one of {', '.join(repr(a) for a in ACCELERATORS)}, got {requested!r}")
    if requested != "auto":
        domain_type = DOMAIN_TYPES[requested]
        conn = _open(uri)
        try:
            arch, types = host_domain_types(conn)
        finally:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
        if domain_type not in types:
            offered = ", ".join(sorted(types)) or "none"
            raise AcceleratorError(
                f"accelerator: {requested!r} is not available on {uri} "
                f"(it offers libvirt domain types for {arch} hvm guests: {offered})")
        return AcceleratorChoice(requested, domain_type, f"{requested} requested explicitly")

    if not kernel:
        raise AcceleratorError("accelerator: 'auto' needs a kernel to boot a probe guest, and none was given")
    kernel = os.path.abspath(kernel)
    if not os.path.isfile(kernel):
        raise AcceleratorError(f"accelerator: 'auto' probe kernel {kernel} does not exist")
    boot_id = _boot_id()
    key = _cache_key(uri, boot_id, kernel)
    if cache_path is not None:
        hit = _cached(Path(cache_path), key)
        if hit is not None:
            log.debug("accelerator for %s from cache: %s", uri, hit.accelerator)
            return hit

    conn = _open(uri)
    try:
        arch, types = host_domain_types(conn)
        notes = []
        choice = None
        for accel in ("kvm", "tcg"):
            domain_type = DOMAIN_TYPES[accel]
            if domain_type not in types:
                notes.append(f"host offers no {accel}")
                continue
            result = _probe(conn, domain_type, arch, kernel, timeout_s)
            notes.append(f"{accel} probe {result.detail}")
            log.info("%s probe on %s: %s", accel, uri, result.detail)
            if result.booted:
                choice = AcceleratorChoice(accel, domain_type, f"{'; '.join(notes)}; using {accel}")
                break
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
    if choice is None:
        raise AcceleratorError(
            f"accelerator: 'auto' found nothing that boots a guest on {uri}: {'; '.join(notes)}")
    if cache_path is not None:
        _write_cache(Path(cache_path), key, boot_id, choice)
    return choice
