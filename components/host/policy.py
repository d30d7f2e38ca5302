"""What a stack may make vdesk touch on this machine and its hosts: the administrator's policy.

A stack file is untrusted input (in GitOps, whoever opens a change request
writes it, and a runner applies it as root). So the host paths it names, the
libvirt URIs it connects to and the files it calls disk images are checked
against a policy that only the machine's administrator writes:

    /etc/vdesk/policy.yaml   (or the file named by $VDESK_POLICY)

    images: [/srv/vdesk/images]          # disk image files a stack may import
    pools: [/var/lib/libvirt/images]     # directories a dir/netfs pool may live in
    shares: [/srv/vdesk/shares]          # host directories a stack may share into desktops
    container_mounts: [/srv/vdesk/shares]
    devices: [/dev/sdb, /dev/nvme1n*]     # block devices a logical pool may be built on (patterns allowed)
    certificates: [/etc/vdesk]           # TLS certificates and keys the console may serve
    kubeconfigs: [/etc/vdesk]            # kubeconfig files (credentials) a kubevirt host may reach a cluster with
    transports: [unix, ssh, libssh2, tls]

    # Exposure: what a stack may open beyond this machine, or hand from the host to a guest.
    libvirt_hosts: [kvm2.example.org]    # hosts a stack's URIs may name (localhost: qemu:///system)
    display_listen: [192.0.2.10]         # addresses beyond loopback desktops' displays may listen on
    console:                             # the embedded host's console gateway, shared by every stack on it:
      bind: 192.0.2.10                   #   its settings are the host's, never a stack's (beyond loopback:
      port: 6080                         #   only with TLS, its certificate under `certificates`)
      tls_cert: /etc/vdesk/console.pem
    containers_without_userns: false     # containers whose root is the host's root
    bridges: [br0]                       # host bridges a bridge network may join
    pci_devices: ['0000:01:00.0']        # PCI devices a desktop may take whole (patterns allowed)
    mdev_parents: ['0000:02:00.0']       # devices vGPUs may be made on (patterns allowed)
    writable_shares: [/srv/vdesk/shares/team]   # roots under which a share may be writable
    netfs_servers: [nas.example.org]     # file servers a netfs pool may mount
    volume_groups: [vg_desktops]         # existing volume groups a logical pool may use
    kubevirt_namespaces: [desktops]      # namespaces a kubevirt host may put desktops in (patterns allowed)

    # The host portal's OpenID Connect sign-in (the portal serves every stack on this machine); a stack
    # maps its users to identities by their `email`, for its own desktops only.
    portal_oidc:
      issuer: https://login.example.org/realms/staff
      client_id: vdesk-portal
      client_secret_file: /etc/vdesk/portal-oidc.secret   # readable by root only; never in a stack
      admin_groups: [vdesk-admins]       # optional: members of these groups at the provider administer the
      groups_claim: groups               #   portal, by this claim (default groups) of the verified ID token or
      groups_scope: groups               #   UserInfo; and a scope to ask for it with (default: none)
    portal_admins:                       # who sees every desktop and session in the portal, and ends sessions:
      - ops@example.org                  #   an identity the OpenID Connect provider proves, or a local
      - {user: hostadmin, password_hash: "$6$..."}   # administrator with this file's hash (portal/admins.py)

Without a file, vdesk's own directories are allowed and nothing else: its
image cache, and the state directory where the embedded host keeps pools;
and no exposure at all. Every check returns a message (None when allowed)
that the caller attaches to the stack field it came from.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import functools
import json
import os
import re
import subprocess
import urllib.parse
from pathlib import Path

import yaml

from ..console.settings import ConsoleSettings
from ..errors import VdeskError
from ..paths import cache_dir, state_dir
from ..portal import admins as portal_admins
from ..portal.admins import Admins
from ..portal.settings import OidcSettings

POLICY_FILE = Path("/etc/vdesk/policy.yaml")
KINDS = ("images", "pools", "shares", "container_mounts", "devices", "certificates", "kubeconfigs")
DRIVERS = ("qemu", "lxc")
TRANSPORTS = ("unix", "ssh", "libssh", "libssh2", "tls", "tcp")
DEFAULT_TRANSPORTS = ("unix", "ssh", "libssh2", "tls")
# Query parameters a stack may put in a URI; others can run programs (command=, netcat=) or read
# files (keyfile=, known_hosts=, pkipath=, socket=) on the runner, so they are the administrator's.
URI_PARAMS = frozenset({"mode", "no_tty", "sshauth"})
# ... and these turn off or weaken the checks that the host is the one meant: never from a stack.
CHECK_SWITCHES = frozenset({"no_verify", "known_hosts_verify", "tls_priority"})
# Exposure keys: lists of names or patterns (none allowed without a policy file), and one yes/no.
EXPOSURE_LISTS = ("libvirt_hosts", "display_listen", "bridges", "pci_devices", "mdev_parents", "netfs_servers",
                  "volume_groups", "kubevirt_namespaces")
CONSOLE_KEYS = ("bind", "port", "tls_cert", "tls_key")     # the gateway's settings a policy's `console` holds
EXPOSURE_ROOTS = ("writable_shares",)
EXPOSURE_FLAGS = ("containers_without_userns",)
PORTAL_OIDC = "portal_oidc"
PORTAL_ADMINS = "portal_admins"
_CASELESS = ("libvirt_hosts", "netfs_servers", "pci_devices", "mdev_parents")
LOCALHOST = "localhost"     # in libvirt_hosts: a URI that names no host (qemu:///system on this machine)
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                       r"[A-Za-z0-9])?)*$")
_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_PATHS = {"system", "session"}


class PolicyError(VdeskError):
    """The policy file itself is unreadable or malformed (the administrator's to fix)."""


@dataclasses.dataclass(frozen=True)
class Policy:
    images: tuple[str, ...]
    pools: tuple[str, ...]
    shares: tuple[str, ...]
    container_mounts: tuple[str, ...]
    devices: tuple[str, ...]
    certificates: tuple[str, ...] = ()
    kubeconfigs: tuple[str, ...] = ()
    transports: tuple[str, ...] = DEFAULT_TRANSPORTS
    source: str = "built-in defaults"
    libvirt_hosts: tuple[str, ...] = ()
    display_listen: tuple[str, ...] = ()
    console: ConsoleSettings = ConsoleSettings()
    bridges: tuple[str, ...] = ()
    pci_devices: tuple[str, ...] = ()
    mdev_parents: tuple[str, ...] = ()
    netfs_servers: tuple[str, ...] = ()
    volume_groups: tuple[str, ...] = ()
    kubevirt_namespaces: tuple[str, ...] = ()
    writable_shares: tuple[str, ...] = ()
    containers_without_userns: bool = False
    portal_oidc: OidcSettings | None = None     # the host portal's identity provider (None: local sign-in only)
    portal_admins: Admins = Admins()            # the host portal's administrators (a stack names none)

    def allows(self, key: str, value: str) -> bool:
        """Whether exposure list `key` (e.g. bridges) names `value`, as written or by a pattern (host names
        and PCI addresses in any case)."""
        fold = str.lower if key in _CASELESS else str
        return any(fnmatch.fnmatchcase(fold(value), fold(entry)) for entry in getattr(self, key))

    def refusal(self, key: str, value: str | None = None) -> str:
        """The message for an exposure this policy does not allow: which key, in which file, would."""
        listed = getattr(self, key)
        if isinstance(listed, bool):
            return f"not allowed on this machine: its administrator may allow it with `{key}: true` in {self.source}"
        allowed = ", ".join(listed) or "none"
        return (f"{value!r} is not allowed on this machine: its administrator may add it to `{key}` in "
                f"{self.source} (allowed now: {allowed})")

    # -- paths ------------------------------------------------------------------------------
    def path_problem(self, kind: str, path, *, local: bool = True) -> str | None:
        """Why `path` may not be used as a `kind` (images, pools, ...), or None.

        Local paths are resolved (symlinks followed) before they are compared, so a link
        inside an allowed root cannot lead out of it; a path on a remote host is compared
        as written, and may not contain '..' at all.
        """
        roots = getattr(self, kind)
        if not isinstance(path, str) or not path or "\0" in path or "\n" in path:
            return "must be an absolute path on the host"
        if not os.path.isabs(path):
            return f"{path!r} must be an absolute path on the host"
        if ".." in Path(path).parts:
            return f"{path!r} must not contain '..'"
        real = os.path.realpath(path) if local else os.path.normpath(path)
        if any(_inside(real, root) or (kind == "devices" and fnmatch.fnmatchcase(real, root)) for root in roots):
            return None
        allowed = ", ".join(roots) or "none"
        via = f" (it resolves to {real})" if real != os.path.normpath(path) else ""
        return (f"{path!r}{via} is outside the {kind.replace('_', ' ')} roots this machine's administrator allows "
                f"({allowed}; set in {self.source})")

    # -- URIs --------------------------------------------------------------------------------
    def uri_problem(self, uri) -> str | None:
        """Why a libvirt URI may not be connected to, checked before any connection is made."""
        if not isinstance(uri, str) or not uri or any(c.isspace() or ord(c) < 32 for c in uri):
            return "must be 'embedded' or a libvirt URI such as qemu:///system or qemu+ssh://admin@kvm2/system"
        try:
            parsed = urllib.parse.urlsplit(uri)
            port = parsed.port
        except ValueError as exc:
            return f"{uri!r} is not a URI ({exc})"
        driver, _, transport = parsed.scheme.partition("+")
        if uri == "test:///default":       # libvirt's in-memory test driver: touches nothing
            return None
        if driver not in DRIVERS:
            return (f"{uri!r}: scheme {parsed.scheme or '(none)'!r} is not a libvirt driver vdesk uses "
                    f"(use {' or '.join(d + '://' for d in DRIVERS)}, optionally +ssh, +tls, ...)")
        transport = transport or ("unix" if not parsed.hostname else "tls")
        if transport not in TRANSPORTS:
            return f"{uri!r}: transport {transport!r} is not one vdesk allows (allowed: {', '.join(self.transports)})"
        if transport not in self.transports:
            return (f"{uri!r}: transport {transport!r} is not allowed on this machine (allowed: "
                    f"{', '.join(self.transports)}; set in {self.source})")
        if parsed.hostname and not _HOSTNAME.match(parsed.hostname) and not _is_ip(parsed.hostname):
            return f"{uri!r}: {parsed.hostname!r} is not a host name"
        if parsed.username is not None and not _USER.match(parsed.username):
            return f"{uri!r}: {parsed.username!r} is not a user name"
        if parsed.password is not None:
            return f"{uri!r}: a URI must not carry a password (use SSH keys or TLS certificates)"
        if port is not None and not 0 < port < 65536:
            return f"{uri!r}: port {port} is out of range"
        if transport == "unix" and parsed.hostname:
            return f"{uri!r}: a unix socket URI names no host"
        if parsed.path.strip("/") not in _PATHS:
            return f"{uri!r}: the path must be /system or /session"
        if parsed.fragment:
            return f"{uri!r}: a libvirt URI has no fragment"
        for key, _ in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True):
            if key in CHECK_SWITCHES:
                return (f"{uri!r}: parameter {key!r} turns off or weakens the check that the host is the one "
                        "meant (its certificate or host key): never from a stack")
            if key not in URI_PARAMS:
                return (f"{uri!r}: parameter {key!r} is not allowed in a stack (it can run a program or read a "
                        f"file on this machine; allowed: {', '.join(sorted(URI_PARAMS))})")
        if not self.allows("libvirt_hosts", (parsed.hostname or LOCALHOST).lower()):
            return f"{uri!r}: host " + self.refusal("libvirt_hosts", parsed.hostname or LOCALHOST)
        return None


def _inside(path: str, root: str) -> bool:
    """`path` is `root` or under it; a root may hold patterns, each matching one name (hosts/*/pools)."""
    root = os.path.normpath(root)
    if not any(c in root for c in "*?["):
        return path == root or path.startswith(root.rstrip("/") + "/")
    parts, pattern = Path(path).parts, Path(root).parts
    return len(parts) >= len(pattern) and all(fnmatch.fnmatchcase(p, q) for p, q in zip(parts, pattern))


def _is_loopback(address: str) -> bool:
    import ipaddress
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return True           # not an address: ConsoleSettings.problems says so


def _is_ip(value: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def defaults() -> Policy:
    """vdesk's own directories only: its image cache, and each embedded host's own pools (not the rest of its
    state: its sockets, console key and logs are no place for a pool)."""
    cache, state = os.path.realpath(cache_dir()), os.path.realpath(state_dir())
    return Policy(images=(f"{cache}/images",), pools=(f"{state}/hosts/*/pools", "/var/lib/libvirt/images"),
                  shares=(f"{state}/shares",), container_mounts=(f"{state}/shares",), devices=(),
                  certificates=(f"{state}/certificates", "/etc/vdesk"), kubeconfigs=("/etc/vdesk",))


def load(path: Path | None = None) -> Policy:
    """The administrator's policy ($VDESK_POLICY, else /etc/vdesk/policy.yaml), or the defaults."""
    path = Path(path or os.environ.get("VDESK_POLICY") or POLICY_FILE)
    return _load(str(path), *(_stat(path)))


def _stat(path: Path) -> tuple:
    try:
        st = path.stat()
        return st.st_mtime_ns, st.st_size
    except FileNotFoundError:
        return None, None


@functools.lru_cache(maxsize=8)
def _load(path: str, _mtime, _size) -> Policy:
    if _mtime is None:
        return defaults()
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read the host policy {path}: {exc}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: must be a mapping of {', '.join(KINDS)} and transports")
    keys = (*KINDS, "transports", *EXPOSURE_LISTS, *EXPOSURE_ROOTS, *EXPOSURE_FLAGS, "console", PORTAL_OIDC, PORTAL_ADMINS)
    unknown = set(data) - set(keys)
    if unknown:
        raise PolicyError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(keys)})")
    base = defaults()
    fields = {}
    for kind in KINDS:
        roots = data.get(kind, list(getattr(base, kind)))
        if not isinstance(roots, list) or not all(isinstance(r, str) and os.path.isabs(r) for r in roots):
            raise PolicyError(f"{path}: {kind} must be a list of absolute paths")
        fields[kind] = tuple(r if kind == "devices" else os.path.realpath(r) for r in roots)
    transports = data.get("transports", list(DEFAULT_TRANSPORTS))
    if not isinstance(transports, list) or any(t not in TRANSPORTS for t in transports):
        raise PolicyError(f"{path}: transports must be a list of {', '.join(TRANSPORTS)}")
    for key in EXPOSURE_LISTS:
        values = data.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise PolicyError(f"{path}: {key} must be a list of names (patterns allowed)")
        fields[key] = tuple(values)
    for key in EXPOSURE_ROOTS:
        roots = data.get(key, [])
        if not isinstance(roots, list) or not all(isinstance(r, str) and os.path.isabs(r) for r in roots):
            raise PolicyError(f"{path}: {key} must be a list of absolute paths")
        fields[key] = tuple(os.path.realpath(r) for r in roots)
    for key in EXPOSURE_FLAGS:
        if not isinstance(data.get(key, False), bool):
            raise PolicyError(f"{path}: {key} must be true or false")
        fields[key] = data.get(key, False)
    if PORTAL_OIDC in data:
        fields[PORTAL_OIDC] = _portal_oidc(path, data[PORTAL_OIDC])
    if PORTAL_ADMINS in data:
        if problems := portal_admins.problems(data[PORTAL_ADMINS], PORTAL_ADMINS):
            raise PolicyError(f"{path}: " + "; ".join(f"{where}: {message}" for where, message in problems))
        fields[PORTAL_ADMINS] = portal_admins.from_policy(data[PORTAL_ADMINS])
    policy = Policy(**fields, transports=tuple(transports), source=path)
    return dataclasses.replace(policy, console=_console(path, data.get("console"), policy))


def _console(path: str, data, policy: Policy) -> ConsoleSettings:
    """The host's console gateway, as its administrator set it: beyond loopback only over TLS."""
    data = {} if data is None else data
    if not isinstance(data, dict) or set(data) - set(CONSOLE_KEYS):
        raise PolicyError(f"{path}: console must be a mapping of {', '.join(CONSOLE_KEYS)}")
    console = ConsoleSettings(**data)
    # (that the gateway can listen there and load its files is judged at each preview: against_host.py)
    problems = [f"{field}: {message}" for field, message in console.problems("console")
                if field not in ("console.tls_cert", "console.tls_key")]
    problems += [f"console.{field}: {why}" for field in ("tls_cert", "tls_key")
                 if getattr(console, field) and (why := policy.path_problem("certificates", getattr(console, field)))]
    if not _is_loopback(console.bind) and not console.tls_cert:
        problems.append(f"console.bind: {console.bind!r} is beyond loopback: the console is served there only over "
                        "TLS (set console.tls_cert), never plain HTTP")
    if problems:
        raise PolicyError(f"{path}: " + "; ".join(problems))
    return console


def _portal_oidc(path: str, value) -> OidcSettings:
    fields = dataclasses.fields(OidcSettings)
    required = [f.name for f in fields if f.default is dataclasses.MISSING]
    optional = [f.name for f in fields if f.default is not dataclasses.MISSING]
    if not isinstance(value, dict) or not set(required) <= set(value) <= set(required + optional):
        raise PolicyError(f"{path}: {PORTAL_OIDC} must be a mapping of exactly {', '.join(required)}, and "
                          f"optionally {', '.join(optional)}")
    oidc = OidcSettings(**value)
    if problems := oidc.problems(PORTAL_OIDC):
        raise PolicyError(f"{path}: " + "; ".join(f"{where}: {message}" for where, message in problems))
    return oidc


# -- disk images -------------------------------------------------------------------------------

_QCOW2_MAGIC = b"QFI\xfb"


def disk_image_problem(path: str) -> str | None:
    """Why a file is not a disk image vdesk may import: qcow2 without a backing file or external
    data file, or raw with a partition table (MBR or GPT). Anything else (/etc/shadow, a text
    file, a qcow2 that points at another file) is refused."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError as exc:
        return f"{path!r} cannot be read ({exc.strerror})"
    if head.startswith(_QCOW2_MAGIC):
        info = _qemu_img_info(path)
        if info is None:
            return f"{path!r} looks like qcow2 but qemu-img cannot read it"
        if info.get("format") != "qcow2":
            return f"{path!r} is not a qcow2 image (qemu-img says {info.get('format')!r})"
        if info.get("backing-filename") or info.get("full-backing-filename"):
            return (f"{path!r} is a qcow2 image on a backing file ({info.get('backing-filename')}): "
                    "import a standalone image (qemu-img convert -O qcow2)")
        data_file = (info.get("format-specific") or {}).get("data", {}).get("data-file")
        if data_file:
            return f"{path!r} is a qcow2 image with an external data file ({data_file}): import a standalone image"
        return None
    if len(head) >= 1024 and (head[510:512] == b"\x55\xaa" or head[512:520] == b"EFI PART"):
        return None
    return (f"{path!r} is not a disk image: vdesk imports qcow2 images and raw disks with a partition table "
            "(MBR or GPT)")


def _qemu_img_info(path: str) -> dict | None:
    try:
        out = subprocess.run(["qemu-img", "info", "--output=json", "-f", "qcow2", path], capture_output=True,
                             text=True, timeout=30, check=True)
        return json.loads(out.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
