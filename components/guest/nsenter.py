"""The container backend of the checks: a command run in every namespace of a container's init, with nsenter.

It answers the same `run(command, sudo=False) -> CommandResult` as a desktop's SSH session (guest/ssh.py),
so guest/checks.py's objects and guest/checkrun.py's declared checks run on both. Which process is the
container's init is the caller's to say (resources/container.py asks libvirt).
"""
from __future__ import annotations

import os
import subprocess
from typing import Callable, Sequence

from . import GuestError, GuestTimeout
from .ssh import CommandResult, render_command

_EXEC_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class NamespaceExec:
    """Run commands inside a container.

    Commands run through `nsenter` in every namespace of the container's init
    (mount, UTS, IPC, network, PID, cgroup and, with userns, the user namespace),
    as root inside, or as `user` when one is given and sudo is not asked for.
    """

    def __init__(self, name: str, init_pid: Callable[[], int], *, user: str | None = None, timeout_s: float = 120):
        self.name, self.user, self.timeout_s = name, user, timeout_s
        self._init_pid = init_pid      # asked at every command: a restarted container has another init

    def pid(self) -> int:
        """The host pid of the container's init (pid 1 inside)."""
        return self._init_pid()

    def argv(self, pid: int, line: str, *, sudo: bool = False) -> list[str]:
        namespaces = ["--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup"]
        if _ns(pid, "user") != _ns(os.getpid(), "user"):
            namespaces.append("--user")
        inner = ["/bin/sh", "-c", line]
        if self.user and not sudo:
            inner = ["runuser", "-u", self.user, "--"] + inner
        return ["nsenter", f"--target={pid}", *namespaces, "--root", "--wd", "--",
                "env", "-i", f"PATH={_EXEC_PATH}", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb", *inner]

    def run(self, command: str | Sequence[str], sudo: bool = False, *, timeout_s: float | None = None
            ) -> CommandResult:
        line = render_command(command)
        pid = self.pid()
        timeout = timeout_s or self.timeout_s
        try:
            proc = subprocess.run(self.argv(pid, line, sudo=sudo), stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, errors="replace", timeout=timeout)
        except subprocess.TimeoutExpired:
            raise GuestTimeout(f"`{line}` in container {self.name!r}", timeout) from None
        if proc.returncode != 0 and proc.stderr.startswith("nsenter: "):
            raise GuestError(f"cannot enter container {self.name!r}: {proc.stderr.strip()}")
        shown = f"sudo {line}" if sudo and self.user else line
        return CommandResult(command=shown, rc=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)


def _ns(pid: int, kind: str) -> tuple[int, int] | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
