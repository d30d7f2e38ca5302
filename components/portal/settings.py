"""What a host's portal is told by its administrator: where it listens, its TLS certificate, how long things last.

A stack never sets these: the portal serves every stack on the host.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from pathlib import Path

DEFAULT_SESSION_S = 8 * 3600
DEFAULT_LINK_VALIDITY_S = 300     # a console link from the portal is opened at once: it need not last


@dataclasses.dataclass(frozen=True)
class PortalSettings:
    """A host's portal; the defaults serve this machine only, over plain HTTP on loopback."""

    bind: str = "127.0.0.1"
    port: int = 0                            # 0: a free port
    tls_cert: str | None = None              # PEM certificate: https only, and the cookies are Secure
    tls_key: str | None = None
    session_s: int = DEFAULT_SESSION_S       # how long a sign-in lasts
    link_validity_s: int = DEFAULT_LINK_VALIDITY_S

    def problems(self, where: str) -> list[tuple[str, str]]:
        found = []
        try:
            ipaddress.ip_address(self.bind)
        except ValueError:
            found.append((f"{where}.bind", f"{self.bind!r} is not an IP address"))
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            found.append((f"{where}.port", f"{self.port!r} is not a port (0-65535; 0 picks a free one)"))
        for field in ("session_s", "link_validity_s"):
            value = getattr(self, field)
            if not isinstance(value, int) or not 0 < value <= 7 * 86400:
                found.append((f"{where}.{field}", "must be 1 s to 7 days"))
        for field in ("tls_cert", "tls_key"):
            path = getattr(self, field)
            if path is not None and not os.path.isfile(path):
                found.append((f"{where}.{field}", f"{path} is not a file"))
        if self.tls_key and not self.tls_cert:
            found.append((f"{where}.tls_key", "needs tls_cert too"))
        return found

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @classmethod
    def from_file(cls, path: Path) -> "PortalSettings":
        return cls(**json.loads(Path(path).read_text()))
