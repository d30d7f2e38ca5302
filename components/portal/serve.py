"""Run a host's portal under uvicorn: `python -m components.portal.serve <portal dir>`.

The portal dir holds `settings.json` (PortalSettings, the host's libvirt URI and name, the console dir),
written by whoever starts it; once listening, the portal records its address in `portal.json`.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from pathlib import Path

import uvicorn

from ..console.gateway import configure_logging
from .app import PortalConfig, create_app
from .settings import RUNTIME_FILE, SETTINGS_FILE, PortalSettings

log = logging.getLogger("vdesk.portal")


def config_from(portal_dir: Path) -> PortalConfig:
    spec = json.loads((portal_dir / SETTINGS_FILE).read_text())
    return PortalConfig(portal_dir=portal_dir, libvirt_uri=spec["libvirt_uri"], host=spec["host"],
                        console_dir=Path(spec["console_dir"]) if spec.get("console_dir") else None,
                        settings=PortalSettings(**spec.get("settings", {})))


def listen(settings: PortalSettings) -> socket.socket:
    """The portal's listening socket, bound before uvicorn starts so a port of 0 is known at once."""
    family = socket.AF_INET6 if ":" in settings.bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.bind, settings.port))
    sock.listen(128)
    return sock


def url_of(settings: PortalSettings, sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{'https' if settings.tls else 'http'}://{f'[{host}]' if ':' in host else host}:{port}"


def server(config: PortalConfig) -> uvicorn.Server:
    """uvicorn, with TLS when the administrator gave a certificate; no access log (the app logs what counts)."""
    s = config.settings
    return uvicorn.Server(uvicorn.Config(create_app(config), ssl_certfile=s.tls_cert, ssl_keyfile=s.tls_key,
                                         log_config=None, access_log=False, proxy_headers=False,
                                         server_header=False, timeout_keep_alive=5))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vdesk-portal")
    parser.add_argument("portal_dir", type=Path)
    args = parser.parse_args(argv)
    configure_logging()
    config = config_from(args.portal_dir.resolve())
    sock = listen(config.settings)
    runtime = {"pid": os.getpid(), "url": url_of(config.settings, sock)}
    tmp = config.portal_dir / (RUNTIME_FILE + ".tmp")
    tmp.write_text(json.dumps(runtime) + "\n")
    tmp.replace(config.portal_dir / RUNTIME_FILE)
    log.info("portal listening on %s", runtime["url"])
    server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
