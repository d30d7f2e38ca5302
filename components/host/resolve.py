"""Hosts: a KVM host vdesk declares things on, as a libvirt URI, a namespace and an accelerator.

`Host.embedded(...)` starts (or finds) the project's own libvirtd; `Host.at(uri)` names any other
libvirt host. A Host is a plain value, not a Pulumi resource: the pools, networks and desktops
declared on it are the resources.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import pwd
import urllib.parse
from pathlib import Path

from .accel import resolve_accelerator
from . import policy
from .connection import probe
from ..console.settings import ConsoleSettings
from ..errors import InputError, VdeskError
from ..paths import cache_dir

log = logging.getLogger(__name__)


EMBEDDED = "embedded"      # the URI that stands for the project's own libvirtd
ACCELERATORS = ("kvm", "tcg", "auto")
SOCKET, LOOPBACK = "socket", "loopback"   # display_listen: a unix socket, 127.0.0.1, or an address


@dataclasses.dataclass(frozen=True)
class ResolvedHost:
    name: str
    uri: str
    netns: str | None              # guests live in this network namespace (embedded host)
    domain_type: str               # kvm | qemu
    accelerator_reason: str
    pool_root: str                 # default parent directory of pools
    display_dir: str | None        # VNC sockets (embedded host: no TCP port reachable outside the netns)
    lxc_uri: str | None = None     # the same host's LXC driver (containers)
    containers_dir: str | None = None  # root trees; traversable by the containers' unprivileged uids
    qemu_log_dir: str | None = None    # qemu's per-domain logs, when they are vdesk's files (embedded host)
    ssh_jump: str | None = None        # user@host:port: how guests on its private networks are reached (qemu+ssh)
    unreachable: str | None = None     # why it could not be reached at preview (then nothing was asked of it)
    display_listen: str | None = None  # socket (under display_dir), loopback (127.0.0.1) or an IP address;
                                       # None: socket where the host has a display_dir, else loopback
    spice: bool = False                # desktops get a SPICE display beside VNC (the host's qemu has it)
    console: ConsoleSettings | None = None   # the browser console gateway (embedded host)
    console_dir: str | None = None     # its state: settings, signing key, log
    tpm_log_dir: str | None = None     # swtpm's per-domain logs, when they are vdesk's files (embedded host)
    swtpm: bool | None = None          # the host can emulate a TPM (swtpm and swtpm_setup); None: not known here

    @property
    def _listen(self) -> str:
        return self.display_listen or (SOCKET if self.display_dir else LOOPBACK)

    @property
    def graphics_socket_dir(self) -> str | None:
        """Where desktops' display sockets go, when the host's displays listen on sockets."""
        return self.display_dir if self._listen == SOCKET else None

    @property
    def graphics_listen(self) -> str | None:
        """The address displays listen on when not on a socket."""
        return {SOCKET: None, LOOPBACK: "127.0.0.1"}.get(self._listen, self._listen)

    @classmethod
    def embedded(cls, name: str = "local", *, accelerator: str = "auto", probe_kernel: str | None = None,
                 display_listen: str = SOCKET, spice: bool | None = None,
                 console: ConsoleSettings | None = None) -> "ResolvedHost":
        """The project's own libvirtd on this machine (started if it is not running), and its console gateway.

        display_listen: socket (default), loopback, or an address inside the host's network namespace;
        spice: None adds SPICE where the host's qemu supports it; console: how long its links last
        (the gateway's own settings are the host policy's `console`; None: all of them).
        """
        return resolve_host(name, EMBEDDED, accelerator, probe_kernel=probe_kernel, display_listen=display_listen,
                            spice=spice, console=console)

    @classmethod
    def at(cls, uri: str, *, name: str | None = None, accelerator: str = "kvm", probe_kernel: str | None = None,
           display_listen: str = LOOPBACK, spice: bool | None = None) -> "ResolvedHost":
        """A libvirt host by URI, e.g. qemu:///system or qemu+ssh://admin@kvm2/system."""
        return resolve_host(name or uri, uri, accelerator, probe_kernel=probe_kernel, display_listen=display_listen,
                            spice=spice)


Host = ResolvedHost   # the public name: `Host.embedded("local")`, `Host.at("qemu:///system")`
PROBE_TIMEOUT_S = 30.0


class HostUnreachable(VdeskError):
    """A remote host did not answer; `host` is its name in the stack."""

    def __init__(self, host: str, uri: str, reason: str):
        super().__init__(f"host {host!r} ({uri}) cannot be reached: {reason}")
        self.host, self.uri, self.reason = host, uri, reason


def ssh_jump(uri: str) -> str | None:
    """user@host:port of a libvirt URI over SSH (qemu+ssh, +libssh, +libssh2): the host's own sshd, through
    which vdesk reaches guests on the host's private (NAT) networks. None for other transports."""
    parsed = urllib.parse.urlsplit(uri)
    transport = parsed.scheme.partition("+")[2]
    if transport not in ("ssh", "libssh", "libssh2") or not parsed.hostname:
        return None
    user = parsed.username or pwd.getpwuid(os.getuid()).pw_name
    return f"{user}@{parsed.hostname}:{parsed.port or 22}"


def offline(host, reason: str) -> ResolvedHost:
    """A host that did not answer, described from the stack alone (its desktops fail at `up`, naming it)."""
    uri = host.uri
    domain_type = {"kvm": "kvm", "tcg": "qemu"}.get(host.accelerator, "kvm")
    lxc_uri = "lxc" + uri[uri.index(":"):] if uri.startswith("qemu") else None
    # (its display settings as declared: SPICE only where asked for, since its qemu cannot be asked)
    return ResolvedHost(host.name, uri, None, domain_type, f"not known: the host cannot be reached ({reason})",
                        "/var/lib/libvirt/images", None, lxc_uri, "/var/lib/vdesk/containers", None,
                        ssh_jump=ssh_jump(uri), unreachable=reason,
                        display_listen=getattr(host, "display_listen", None) or LOOPBACK,
                        spice=bool(getattr(host, "spice", None)))


def resolve(host, *, probe_kernel: str | None) -> ResolvedHost:
    """A stack file's host entry (name, uri, accelerator, display, console) as a Host."""
    listen = getattr(host, "display_listen", None)
    return resolve_host(host.name, host.uri, host.accelerator, probe_kernel=probe_kernel,
                        display_listen=listen, spice=getattr(host, "spice", None),
                        console=getattr(host, "console", None))


def resolve_host(name: str, uri: str, accelerator: str, *, probe_kernel: str | None,
                 display_listen: str | None = None, spice: bool | None = None,
                 console: ConsoleSettings | None = None) -> ResolvedHost:
    """Reach the host (starting the embedded one and its console) and settle its accelerator and displays;
    errors name `hosts.<name>`."""
    display_listen = display_listen or (SOCKET if uri == EMBEDDED else LOOPBACK)
    problems = _display_problems(name, uri, display_listen)
    if uri == EMBEDDED:
        # The gateway is the host's, shared by every stack on it: its settings are its administrator's (the
        # host policy), and a caller chooses only how long its own links last.
        host_policy = policy.load()
        console = console or host_policy.console
        if dataclasses.replace(console, link_validity_s=host_policy.console.link_validity_s) != host_policy.console:
            problems.append((f"hosts.{name}.console", "the console gateway's bind, port and certificate are the "
                             f"host's: its administrator sets them as `console` in {host_policy.source}"))
        problems += console.problems(f"hosts.{name}.console")
    if problems:
        raise InputError(problems)
    console_dir = None
    if uri == EMBEDDED:
        from . import embedded
        emb = embedded.embedded_host(name)
        if previewing() and not embedded.is_running(emb):
            _say(f"host {name}: the embedded host's libvirtd was down; the preview starts it to read what the host "
                 "has (its objects are left as they are; the console gateway and portal are started only by up)")
        emb = embedded.ensure_running(emb)
        uri, netns, state = emb.uri, emb.netns, Path(emb.state_dir)
        pool_root, display_dir = str(state / "pools"), str(state / "displays")
        # Not under the state dir: $HOME may be 0700, which a container's shifted root cannot traverse.
        lxc_uri, containers_dir = emb.lxc_uri, f"/var/lib/vdesk/{emb.netns_name}/containers"
        qemu_log_dir = str(state / "log" / "qemu")
        tpm_log_dir = str(state / "swtpm-log" / "libvirt" / "qemu")   # bound over /var/log/swtpm
        swtpm = swtpm_installed()
        os.makedirs(display_dir, exist_ok=True)
        # libvirt makes its qemu log folder only when it opens a domain's own log, after the serial console's
        # log that a desktop declares (virtlogd's): a host's first desktop would fail on the missing folder.
        os.makedirs(qemu_log_dir, exist_ok=True)
        console_dir = str(state / "console")
        # The gateway is the host's, shared by every stack on it: a preview (an unreviewed change request's
        # plan) leaves it as it is; `up` starts it when it is down, always with the host's settings.
        if not previewing():
            from ..console import service
            try:
                service.ensure_running(Path(console_dir), console, libvirt_uri=uri, netns=netns)
            except VdeskError as exc:
                raise InputError([(f"hosts.{name}.console", str(exc))]) from None
            _start_portal(name, uri, Path(console_dir))
            _start_lifecycle(name, uri, state / "lifecycle")
    else:
        if (why := probe(uri, PROBE_TIMEOUT_S)) is not None:
            raise HostUnreachable(name, uri, why)
        netns, pool_root, display_dir = None, "/var/lib/libvirt/images", None
        lxc_uri = "lxc" + uri[uri.index(":"):] if uri.startswith("qemu") else None
        containers_dir = "/var/lib/vdesk/containers"
        qemu_log_dir = tpm_log_dir = None  # a system host's logs are its administrator's (and logrotate's)
        swtpm = None         # libvirt on that host says so when a TPM domain starts
        console = None       # a gateway serves the embedded host's displays only
    if accelerator == "auto" and not probe_kernel:
        raise InputError([(f"hosts.{name}.accelerator",
                           "auto needs a kernel to probe with (declare the golden image) — or set kvm or tcg")])
    try:
        choice = resolve_accelerator(uri, accelerator, kernel=probe_kernel,
                                     cache_path=cache_dir() / "accelerator.json")
    except VdeskError as exc:
        raise InputError([(f"hosts.{name}.accelerator", str(exc))]) from None
    log.info("host %s: %s (%s)", name, choice.accelerator, choice.reason)
    if spice is None:
        spice = supports_spice(uri, choice.domain_type)
    return ResolvedHost(name, uri, netns, choice.domain_type, choice.reason, pool_root, display_dir,
                        lxc_uri, containers_dir, qemu_log_dir, ssh_jump=None if netns else ssh_jump(uri),
                        display_listen=display_listen, spice=spice, console=console, console_dir=console_dir,
                        tpm_log_dir=tpm_log_dir, swtpm=swtpm)


def previewing() -> bool:
    """Whether this is a dry run (`pulumi preview`, a plan): then nothing on the host is started or changed."""
    import pulumi.runtime
    return pulumi.runtime.is_dry_run()


def _say(message: str) -> None:
    """A line in the preview's own output (pulumi's log), not only this process's."""
    import pulumi
    log.info(message)
    pulumi.log.info(message)


def _start_portal(name: str, uri: str, console_dir: Path) -> None:
    """The host's portal, beside its console gateway (the people its desktops are for sign in there)."""
    from ..portal import service as portal
    from ..portal.accounts import portal_dir_of
    from ..portal.settings import PortalSettings
    from .policy import load as host_policy
    try:
        policy = host_policy()
        portal.ensure_running(portal_dir_of(console_dir),
                              PortalSettings(oidc=policy.portal_oidc, admins=policy.portal_admins),
                              libvirt_uri=uri, host=name,
                              console_dir=console_dir)
    except VdeskError as exc:
        raise InputError([(f"hosts.{name}.portal", str(exc))]) from None


def _start_lifecycle(name: str, uri: str, lifecycle_dir: Path) -> None:
    """The host's lifecycle service (idle desktops warned, then suspended or shut down), supervised like its
    gateway; its settings are the host's file, written only where there is none (no stack switches it off)."""
    from ..lifecycle import LifecycleSettings, supervisor
    try:
        supervisor.ensure_running(lifecycle_dir, LifecycleSettings(libvirt_uri=uri))
    except VdeskError as exc:
        raise InputError([(f"hosts.{name}.lifecycle", str(exc))]) from None


SWTPM_TOOLS = ("swtpm", "swtpm_setup")    # what libvirt runs for an emulated TPM (Debian: swtpm, swtpm-tools)


def swtpm_installed() -> bool:
    """Whether this machine can emulate a TPM for its embedded host's desktops."""
    import shutil
    path = os.pathsep.join(filter(None, (os.environ.get("PATH"), "/usr/sbin", "/usr/bin")))
    return all(shutil.which(tool, path=path) for tool in SWTPM_TOOLS)


def _display_problems(name: str, uri: str, listen: str) -> list[tuple[str, str]]:
    if listen == SOCKET and uri != EMBEDDED:
        return [(f"hosts.{name}.display.listen", "socket is for the embedded host; use loopback or an address")]
    if listen in (SOCKET, LOOPBACK):
        return []
    try:
        ipaddress.ip_address(listen)
    except ValueError:
        return [(f"hosts.{name}.display.listen", f"{listen!r} is not socket, loopback or an IP address")]
    return []


def supports_spice(uri: str, domain_type: str) -> bool:
    """Whether the host's qemu offers SPICE graphics (libvirt's domain capabilities say)."""
    import libvirt
    from .. import xmlmodel
    from .connection import connect
    try:
        with connect(uri) as conn:
            caps = xmlmodel.DomainCapabilities.of(conn, domain_type)
    except (libvirt.libvirtError, VdeskError) as exc:
        log.info("no domain capabilities from %s (%s): no SPICE", uri, exc)
        return False
    return "spice" in caps.graphics_types
