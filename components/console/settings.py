"""What a host's console gateway is told: where it listens, its TLS certificate, how long links last."""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from pathlib import Path

DEFAULT_LINK_VALIDITY_S = 3600
# The gateway's files, named here so that the service which starts and finds it need not import the gateway
# (websockify, libvirt, the lifecycle's modules) on every `up`.
NOVNC_DIR = "/usr/share/novnc"
SETTINGS_FILE = "settings.json"      # written by service.ensure_running: ConsoleSettings + host
RUNTIME_FILE = "gateway.json"        # written by the gateway once listening: pid, port, url
MAX_LINK_VALIDITY_S = 7 * 86400


@dataclasses.dataclass(frozen=True)
class ConsoleSettings:
    """A host's browser console; the defaults serve this machine only, over plain HTTP on loopback."""

    bind: str = "127.0.0.1"                  # the address the gateway listens on
    port: int = 0                            # 0: a free port, chosen once and kept while it stays free
    tls_cert: str | None = None              # PEM certificate (and key, unless tls_key): https and wss only
    tls_key: str | None = None
    link_validity_s: int = DEFAULT_LINK_VALIDITY_S   # how long a printed console link works

    def problems(self, where: str) -> list[tuple[str, str]]:
        found = []
        try:
            ipaddress.ip_address(self.bind)
        except ValueError:
            found.append((f"{where}.bind", f"{self.bind!r} is not an IP address"))
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            found.append((f"{where}.port", f"{self.port!r} is not a port (0-65535; 0 picks a free one)"))
        if not isinstance(self.link_validity_s, int) or not 0 < self.link_validity_s <= MAX_LINK_VALIDITY_S:
            found.append((f"{where}.link_validity", f"must be 1 s to {MAX_LINK_VALIDITY_S // 86400} days"))
        for field in ("tls_cert", "tls_key"):
            path = getattr(self, field)
            if path is not None and not os.path.isfile(path):
                found.append((f"{where}.{field}", f"{path} is not a file"))
        if self.tls_key and not self.tls_cert:
            found.append((f"{where}.tls_key", "needs tls_cert too"))
        return found

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    def as_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_file(cls, path: Path) -> "ConsoleSettings":
        return cls(**json.loads(path.read_text()))
