"""Read-only guest checks in the style of testinfra: host.service("ssh").is_running.

Every probe is written once, here, over one backend seam (`Backend.run`): the SSH session of a desktop
(guest/ssh.py) and the namespace exec of a container (guest/nsenter.py) both answer it, and the declared
checks of a stack (guest/checkrun.py) call these objects rather than run probes of their own.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Protocol, Sequence

from . import GuestError
from .ssh import CommandResult

log = logging.getLogger(__name__)

INSTALLED = "install ok installed"      # dpkg's status of an installed package


class Backend(Protocol):
    """Where commands run: a non-zero exit is a result, never an exception; `sudo` runs it as root."""

    def run(self, command: str | Sequence[str], sudo: bool = False) -> CommandResult: ...


class GuestHost:
    """Entry point for checks; every command goes through the backend's run()."""

    def __init__(self, session: Backend):
        self._backend = session

    @property
    def backend(self) -> Backend:
        return self._backend

    def run(self, command: str | Sequence[str], sudo: bool = False) -> CommandResult:
        """Run a command through the backend; a non-zero exit is returned, never raised."""
        return self._backend.run(command, sudo=sudo)

    def service(self, name: str) -> "Service":
        """A systemd service."""
        return Service(self, name)

    def package(self, name: str) -> "Package":
        """A Debian package."""
        return Package(self, name)

    def file(self, path: str) -> "File":
        """A path on the guest's filesystem."""
        return File(self, path)

    def user(self, name: str) -> "User":
        """A local user account."""
        return User(self, name)

    def socket(self, spec: str) -> "Socket":
        """A listening socket, e.g. "tcp://22", "tcp://0.0.0.0:22", "udp://53"."""
        return Socket(self, spec)

    def session(self, user: str) -> "Session":
        """A user's login session as systemd-logind knows it."""
        return Session(self, user)


class _Check:
    """Common base: a named thing checked through a GuestHost."""

    def __init__(self, host: GuestHost, name: str):
        if not isinstance(name, str) or not name:
            raise GuestError(f"{type(self).__name__.lower()} name must be a non-empty string")
        self.host = host
        self.name = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class Service(_Check):
    """A systemd unit; names without a suffix mean NAME.service."""

    @property
    def is_running(self) -> bool:
        """True if systemd reports the unit active."""
        return self.host.run(["systemctl", "is-active", "--", self.name]).rc == 0

    @property
    def is_enabled(self) -> bool:
        """True if systemd reports the unit enabled (systemctl is-enabled exits 0)."""
        return self.host.run(["systemctl", "is-enabled", "--", self.name]).rc == 0

    @property
    def enabled_state(self) -> str:
        """The word systemctl is-enabled prints: enabled, disabled, static, masked, ..."""
        result = self.host.run(["systemctl", "is-enabled", "--", self.name])
        return (result.stdout.strip().splitlines() or [""])[0]


class Package(_Check):
    """A dpkg package."""

    @property
    def status(self) -> str | None:
        """dpkg's status line ("install ok installed", "deinstall ok config-files"), None if dpkg does not know it."""
        result = self.host.run(["dpkg-query", "--show", "--showformat=${Status}\\n", "--", self.name])
        text = (result.stdout or "").strip()
        return text.splitlines()[0].strip() if result.rc == 0 and text else None

    def _query(self) -> tuple[str, str] | None:
        result = self.host.run(["dpkg-query", "--show", "--showformat=${Status}\t${Version}", "--", self.name])
        if result.rc != 0:
            return None
        status, _, version = result.stdout.strip().partition("\t")
        return status, version

    @property
    def is_installed(self) -> bool:
        """True if dpkg reports the package "install ok installed"."""
        return self.status == INSTALLED

    @property
    def version(self) -> str | None:
        """The installed version, or None if the package is not installed."""
        info = self._query()
        if info is None or info[0] != INSTALLED:
            return None
        return info[1]


class File(_Check):
    """A filesystem path."""

    def _test(self, flag: str) -> bool:
        return self.host.run(["test", flag, self.name]).rc == 0

    @property
    def exists(self) -> bool:
        """True if something exists at the path (a dangling symlink does not count).

        Asked with stat, so what it printed ("regular file, mode 644, owner root:root") tells a report what is there.
        """
        return self.host.run(["stat", "-L", "-c", "%F, mode %a, owner %U:%G", "--", self.name]).rc == 0

    @property
    def is_file(self) -> bool:
        """True if the path is a regular file (following symlinks)."""
        return self._test("-f")

    @property
    def is_directory(self) -> bool:
        """True if the path is a directory (following symlinks)."""
        return self._test("-d")

    @property
    def is_symlink(self) -> bool:
        """True if the path is a symbolic link."""
        return self._test("-L")

    def contains(self, text: str) -> bool:
        """True if the file contains text literally (no regex); False if the file is missing."""
        if not text:
            return self.exists
        if "\n" in text:       # grep -F would take each line for a pattern of its own
            result = self.host.run(["cat", "--", self.name])
            if result.rc == 0:
                return text in result.stdout
            if not self.exists:
                return False
            raise GuestError(f"cannot read {self.name}: {result.stderr.strip() or f'cat exit status {result.rc}'}")
        result = self.host.run(["grep", "-qF", "-e", text, "--", self.name])
        if result.rc in (0, 1):
            return result.rc == 0
        if not self.exists:
            return False
        raise GuestError(f"cannot search {self.name}: {result.stderr.strip() or f'grep exit status {result.rc}'}")

    @property
    def content_string(self) -> str:
        """The file's content as text (invalid UTF-8 replaced)."""
        result = self.host.run(["cat", "--", self.name])
        if result.rc != 0:
            raise GuestError(f"cannot read {self.name}: {result.stderr.strip() or f'cat exit status {result.rc}'}")
        return result.stdout

    def _stat(self) -> list[str]:
        result = self.host.run(["stat", "-c", "%a %U %G", "--", self.name])
        if result.rc != 0:
            raise GuestError(f"cannot stat {self.name}: {result.stderr.strip() or f'stat exit status {result.rc}'}")
        return result.stdout.split()

    @property
    def mode(self) -> int:
        """Permission bits, e.g. 0o600."""
        return int(self._stat()[0], 8)

    @property
    def owner(self) -> str:
        """Name of the owning user."""
        return self._stat()[1]

    @property
    def group(self) -> str:
        """Name of the owning group."""
        return self._stat()[2]


class User(_Check):
    """A user account as seen through NSS (getent)."""

    def _passwd(self) -> list[str] | None:
        result = self.host.run(["getent", "passwd", "--", self.name])
        if result.rc != 0 or not result.stdout.strip():
            return None
        fields = result.stdout.strip().splitlines()[0].split(":")
        return fields if len(fields) == 7 else None

    def _require(self) -> list[str]:
        fields = self._passwd()
        if fields is None:
            raise GuestError(f"user {self.name!r} does not exist on the guest")
        return fields

    @property
    def exists(self) -> bool:
        """True if the account exists."""
        return self._passwd() is not None

    @property
    def uid(self) -> int:
        """Numeric user id."""
        return int(self._require()[2])

    @property
    def home(self) -> str:
        """Home directory."""
        return self._require()[5]

    @property
    def shell(self) -> str:
        """Login shell."""
        return self._require()[6]

    @property
    def groups(self) -> list[str]:
        """Names of all groups the user belongs to, primary group first."""
        result = self.host.run(["id", "-Gn", "--", self.name])
        if result.rc != 0:
            self._require()
            raise GuestError(f"cannot list groups of {self.name!r}: {result.stderr.strip()}")
        return result.stdout.split()


@dataclass(frozen=True)
class _Listener:
    """One listening socket from `ss`."""

    protocol: str
    address: str
    port: int


class Socket(_Check):
    """A listening TCP or UDP socket, given as "tcp://PORT" or "tcp://ADDRESS:PORT"."""

    def __init__(self, host: GuestHost, spec: str):
        super().__init__(host, spec)
        self.protocol, self.address, self.port = parse_socket_spec(spec)

    @property
    def is_listening(self) -> bool:
        """True if a socket of this protocol listens on the port (and address, if given).

        A specific address also matches a wildcard listener of its family ("0.0.0.0", "::", "*").
        """
        result = self.host.run(["ss", "--no-header", "--listening", "--numeric", "--tcp", "--udp"])
        if result.rc != 0:
            raise GuestError(f"cannot list sockets with ss: {result.stderr.strip() or f'exit status {result.rc}'}")
        return is_listening_in(self.name, parse_ss(result.stdout))


def is_listening_in(spec: str, listeners: Sequence[_Listener]) -> bool:
    """True if one of the listeners satisfies the socket spec (see Socket.is_listening)."""
    protocol, address, port = parse_socket_spec(spec)
    for listener in listeners:
        if listener.protocol != protocol or listener.port != port:
            continue
        if address is None or listener.address in (address, "*"):
            return True
        wanted = ipaddress.ip_address(address)
        if not wanted.is_unspecified and listener.address == ("0.0.0.0" if wanted.version == 4 else "::"):
            return True
    return False


def parse_socket_spec(spec: str) -> tuple[str, str | None, int]:
    """Split "tcp://[addr:]port" into (protocol, normalized address or None, port)."""
    protocol, sep, rest = spec.partition("://")
    if not sep or protocol not in ("tcp", "udp"):
        raise GuestError(f"unsupported socket spec {spec!r}: use tcp://[ADDRESS:]PORT or udp://[ADDRESS:]PORT")
    address: str | None = None
    port_text = rest
    if ":" in rest:
        address, _, port_text = rest.rpartition(":")
        address = address.strip("[]")
        try:
            address = str(ipaddress.ip_address(address))
        except ValueError:
            raise GuestError(f"invalid address {address!r} in socket spec {spec!r}") from None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise GuestError(f"invalid port {port_text!r} in socket spec {spec!r}")
    return protocol, address, int(port_text)


def parse_ss(output: str) -> list[_Listener]:
    """Parse `ss -Hlntu` lines: NETID STATE RECV-Q SEND-Q LOCAL:PORT PEER:PORT ..."""
    listeners = []
    for line in output.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[0] not in ("tcp", "udp"):
            continue
        host, _, port = fields[4].rpartition(":")
        if not port.isdigit():
            continue
        host = host.strip("[]").split("%", 1)[0]
        if host not in ("*", ""):
            try:
                host = str(ipaddress.ip_address(host))
            except ValueError:
                continue
        listeners.append(_Listener(fields[0], host or "*", int(port)))
    return listeners


# --- login sessions (systemd-logind) -------------------------------------------------------------

GRAPHICAL_SESSION_TYPES = ("x11", "wayland")
_SESSION_PROPERTIES = ("Id", "Name", "Type", "Class", "Active", "State", "Seat")
# Every session's properties, one block each (an empty output when there is none).
SESSIONS_COMMAND = ("for s in $(loginctl list-sessions --no-legend | awk '{print $1}'); do "
                    f"loginctl show-session \"$s\" {' '.join('-p ' + p for p in _SESSION_PROPERTIES)}; echo; done")


def login_sessions(host: GuestHost) -> list["LoginSession"]:
    """Every login session logind knows of, anyone's."""
    result = host.run(SESSIONS_COMMAND)
    if result.rc != 0:
        raise GuestError(f"cannot list login sessions: {result.stderr.strip() or result.stdout.strip()}")
    return parse_sessions(result.stdout)


@dataclass(frozen=True)
class LoginSession:
    """One logind session: who, what kind (x11, wayland, tty), whether it is in the foreground."""

    id: str
    user: str
    type: str
    session_class: str = ""
    active: bool = False
    state: str = ""
    seat: str = ""

    @property
    def graphical(self) -> bool:
        return self.type in GRAPHICAL_SESSION_TYPES

    def describe(self) -> str:
        return (f"{self.id}: {self.user}, {self.type or 'no type'}, {self.session_class or 'no class'}, "
                f"{'active' if self.active else 'not active'}{', ' + self.state if self.state else ''}")


def parse_sessions(output: str) -> list[LoginSession]:
    """The blocks of `loginctl show-session -p ...` (Key=value lines, blank lines between sessions)."""
    sessions, fields = [], {}
    for line in [*output.splitlines(), ""]:
        if not line.strip():
            if fields.get("Id"):
                sessions.append(LoginSession(fields["Id"], fields.get("Name", ""), fields.get("Type", ""),
                                             fields.get("Class", ""), fields.get("Active") == "yes",
                                             fields.get("State", ""), fields.get("Seat", "")))
            fields = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return sessions


class Session(_Check):
    """host.session("alice").is_graphical_and_active: alice is logged in to an X11/Wayland session
    that is in the foreground of its seat (what a person at the screen sees)."""

    @property
    def all(self) -> list[LoginSession]:
        """Every session of this user."""
        return [s for s in login_sessions(self.host) if s.user == self.name]

    @property
    def is_graphical_and_active(self) -> bool:
        return any(s.graphical and s.active for s in self.all)
