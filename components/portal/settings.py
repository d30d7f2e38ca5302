"""What a host's portal is told by its administrator: where it listens, its TLS certificate, how long things last.

A stack never sets these: the portal serves every stack on the host.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..console.settings import ConsoleSettings

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
        # the address, port and TLS files are checked as the console gateway's are
        listener = ConsoleSettings(bind=self.bind, port=self.port, tls_cert=self.tls_cert, tls_key=self.tls_key)
        found = listener.problems(where)
        for field in ("session_s", "link_validity_s"):
            value = getattr(self, field)
            if not isinstance(value, int) or not 0 < value <= 7 * 86400:
                found.append((f"{where}.{field}", "must be 1 s to 7 days"))
        return sorted(found)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @classmethod
    def from_file(cls, path: Path) -> "PortalSettings":
        return cls(**json.loads(Path(path).read_text()))
