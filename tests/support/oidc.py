"""A real OpenID provider on loopback for the portal's tests: node's oidc-provider (tests/support/oidc_provider).

tools/setup.sh installs its lockfile's packages into $VDESK_OIDC_PROVIDER (per user, outside the clone);
`provider.mjs` runs it with the one client a test registers, and prints its issuer once it listens.
"""
from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

SCRIPT = Path(__file__).resolve().parent / "oidc_provider" / "provider.mjs"
START_S = 30


def installed() -> Path | None:
    """Where setup.sh put the provider's packages; None when there is no node or they are not installed."""
    where = os.environ.get("VDESK_OIDC_PROVIDER")
    if not shutil.which("node") or not where or not (Path(where) / ".complete").exists():
        return None
    return Path(where)


@contextlib.contextmanager
def openid_provider(tmp: Path, *, client_id: str, client_secret: str, redirect_uris: list[str],
                    post_logout_redirect_uris: list[str] = (), groups: dict[str, list[str]] | None = None
                    ) -> Iterator[str]:
    """Run the provider with this client registered (its secret in a 0600 file), the accounts of `groups`
    (login -> group names) in those groups; yields its issuer URL."""
    install_dir = installed()
    if install_dir is None:
        raise RuntimeError("the test OpenID provider is not installed: run tools/setup.sh (needs Node.js 20)")
    tmp.mkdir(parents=True, exist_ok=True)
    secret_file = tmp / "client.secret"
    secret_file.touch(mode=0o600)
    secret_file.write_text(client_secret)
    settings = tmp / "provider.json"
    settings.write_text(json.dumps({"install_dir": str(install_dir), "client_id": client_id,
                                    "client_secret_file": str(secret_file), "redirect_uris": redirect_uris,
                                    "post_logout_redirect_uris": list(post_logout_redirect_uris),
                                    "groups": groups or {}}))
    with open(tmp / "provider.log", "w") as log:
        proc = subprocess.Popen(["node", str(SCRIPT), str(settings)], stdout=subprocess.PIPE, stderr=log,
                                text=True)
    try:
        yield _issuer(proc, tmp / "provider.log")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _issuer(proc: subprocess.Popen, log: Path) -> str:
    """The issuer the provider prints once it listens, within START_S."""
    deadline = time.monotonic() + START_S
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if sel.select(timeout=left):
                line = proc.stdout.readline()
                if line:
                    return json.loads(line)["issuer"]
            if proc.poll() is not None:
                break
    raise AssertionError(f"the OpenID provider did not start within {START_S}s:\n{log.read_text()[-2000:]}")
