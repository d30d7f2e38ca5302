"""Ask the qemu guest agent what is wrong inside a guest that SSH cannot reach.

"Connection refused" says nothing; the agent (a virtio channel, no network)
can say that sshd failed and why. Used only to explain a failure, never to
decide that a guest is ready.
"""
from __future__ import annotations

import base64
import json
import logging

import libvirt

from ..waiting import WaitTimeout, wait_for

log = logging.getLogger(__name__)

_SSH_STATUS = ["/bin/sh", "-c", "echo \"sshd: $(systemctl is-active ssh.service)\"; "
               "systemctl --no-pager --lines=0 status ssh.service 2>&1 | sed -n '1,3p' | cut -c1-160; "
               "journalctl --no-pager -b -u ssh.service -n 4 -o cat 2>&1 | cut -c1-200"]


def _command(dom, payload: dict, timeout_s: int) -> dict:
    import libvirt_qemu
    return json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(payload), timeout_s, 0))


def run(dom, argv: list[str], *, timeout_s: float = 10) -> tuple[int, str]:
    """Run a command in the guest through the agent: (exit code, stdout+stderr). Raises libvirtError."""
    pid = _command(dom, {"execute": "guest-exec", "arguments": {"path": argv[0], "arg": argv[1:],
                                                                "capture-output": True}}, 5)["return"]["pid"]

    def exited() -> dict | None:
        status = _command(dom, {"execute": "guest-exec-status", "arguments": {"pid": pid}}, 5)["return"]
        return status if status.get("exited") else None

    try:
        status = wait_for(exited, timeout_s, interval_s=0.2)
    except WaitTimeout:
        return -1, "(the command did not finish in time)"
    out = b"".join(base64.b64decode(status.get(k, "")) for k in ("out-data", "err-data"))
    return int(status.get("exitcode", -1)), out.decode(errors="replace")


def explain_ssh(conn, domain_name: str) -> str | None:
    """What the guest says about its sshd, in a few lines, or None when the agent cannot tell."""
    try:
        dom = conn.lookupByName(domain_name)
        _rc, text = run(dom, _SSH_STATUS)
    except (libvirt.libvirtError, KeyError, ValueError) as exc:
        log.info("guest agent of %s cannot explain: %s", domain_name, exc)
        return None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines) if lines else None
