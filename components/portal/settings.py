"""What a host's portal is told by its administrator: where it listens, its TLS certificate, how long things last.

A stack never sets these: the portal serves every stack on the host.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path
from urllib.parse import urlsplit

from ..console.settings import ConsoleSettings
from .admins import Admins

DEFAULT_SESSION_S = 8 * 3600
# The portal's files in its dir, named here so that the service which starts and finds it need not import
# the web application (uvicorn, starlette, OpenID Connect) on every `up`.
SETTINGS_FILE = "settings.json"   # written by whoever starts it: these settings, the host's libvirt URI and name
RUNTIME_FILE = "portal.json"      # written by the portal once listening: pid, url
DEFAULT_LINK_VALIDITY_S = 300     # a console link from the portal is opened at once: it need not last


@dataclasses.dataclass(frozen=True)
class OidcSettings:
    """The host's identity provider, as its administrator registered the portal there."""

    issuer: str                  # e.g. https://login.example.org/realms/staff (its discovery document below it)
    client_id: str
    client_secret_file: str      # a file only root reads; the secret itself is never in a setting
    admin_groups: tuple[str, ...] = ()   # a member of any of these groups (at the provider) administers the portal
    groups_claim: str = "groups"         # the claim of the ID token (or UserInfo) that lists the identity's groups
    groups_scope: str | None = None      # a scope to ask for so that the provider sends that claim (e.g. groups)

    def __post_init__(self):             # as read back from settings.json or the policy (lists)
        if isinstance(self.admin_groups, list):
            object.__setattr__(self, "admin_groups", tuple(self.admin_groups))

    def grants_admin(self, groups) -> bool:
        """Whether an identity in these groups (the verified claim's values) is one of the portal's administrators."""
        return any(group in self.admin_groups for group in groups)

    def problems(self, where: str) -> list[tuple[str, str]]:
        found = []
        parts = urlsplit(self.issuer) if isinstance(self.issuer, str) else None
        if parts is None or not parts.hostname or parts.query or parts.fragment or parts.username:
            found.append((f"{where}.issuer", "must be the provider's issuer URL, e.g. https://login.example.org"))
        elif parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname)):
            found.append((f"{where}.issuer", "must be https (plain http only on a loopback address)"))
        if not isinstance(self.client_id, str) or not self.client_id or not self.client_id.isprintable() \
                or " " in self.client_id or len(self.client_id) > 255:
            found.append((f"{where}.client_id", "must be the client id the provider registered for the portal"))
        if not isinstance(self.client_secret_file, str) or not Path(self.client_secret_file).is_absolute():
            found.append((f"{where}.client_secret_file", "must be the absolute path of a file holding the secret"))
        if not isinstance(self.admin_groups, tuple) or not all(_token(g, 255) for g in self.admin_groups):
            found.append((f"{where}.admin_groups", "must be a list of group names as the provider sends them"))
        if not _token(self.groups_claim, 64):
            found.append((f"{where}.groups_claim", "must be the name of a claim, e.g. groups"))
        if self.groups_scope is not None and not _token(self.groups_scope, 64):
            found.append((f"{where}.groups_scope", "must be the name of a scope, e.g. groups"))
        return found

    @property
    def metadata_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    def client_secret(self) -> str:
        return Path(self.client_secret_file).read_text().strip()

    @classmethod
    def of(cls, value: "OidcSettings | dict | None") -> "OidcSettings | None":
        return cls(**value) if isinstance(value, dict) else value


def _token(value, longest: int) -> bool:
    """A name as OpenID Connect carries it (a claim, a scope, a group): printable, no space, not too long."""
    return isinstance(value, str) and 0 < len(value) <= longest and value.isprintable() and " " not in value


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclasses.dataclass(frozen=True)
class PortalSettings:
    """A host's portal; the defaults serve this machine only, over plain HTTP on loopback."""

    bind: str = "127.0.0.1"
    port: int = 0                            # 0: a free port
    tls_cert: str | None = None              # PEM certificate: https only, and the cookies are Secure
    tls_key: str | None = None
    session_s: int = DEFAULT_SESSION_S       # how long a sign-in lasts
    link_validity_s: int = DEFAULT_LINK_VALIDITY_S
    oidc: OidcSettings | None = None         # sign-in with the organisation's identity provider too
    admins: Admins = Admins()                # the host's portal administrators (the policy's portal_admins)

    def __post_init__(self):
        object.__setattr__(self, "oidc", OidcSettings.of(self.oidc))   # as read back from settings.json
        object.__setattr__(self, "admins", Admins.of(self.admins))

    def problems(self, where: str) -> list[tuple[str, str]]:
        # the address, port and TLS files are checked as the console gateway's are
        listener = ConsoleSettings(bind=self.bind, port=self.port, tls_cert=self.tls_cert, tls_key=self.tls_key)
        found = listener.problems(where)
        for field in ("session_s", "link_validity_s"):
            value = getattr(self, field)
            if not isinstance(value, int) or not 0 < value <= 7 * 86400:
                found.append((f"{where}.{field}", "must be 1 s to 7 days"))
        if self.oidc is not None:
            found += self.oidc.problems(f"{where}.oidc")
        return sorted(found)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @classmethod
    def from_file(cls, path: Path) -> "PortalSettings":
        return cls(**json.loads(Path(path).read_text()))
