"""components/processes.py over psutil, on real processes of this machine."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

from components import processes
from components.waiting import wait_for


def test_a_running_child_is_alive_and_its_zombie_is_not():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert processes.alive(child.pid)
        # Popen returns once the exec began; the kernel sets the new argv a moment later
        # (before that it reads as empty, or as the forking parent's)
        argv = wait_for(lambda: "-c" in (found := processes.command_line(child.pid) or []) and found, 10,
                        what="the child's exec")
        assert argv[1:] == ["-c", "import sys; sys.stdin.read()"]
        assert processes.executable(child.pid) == os.path.realpath(sys.executable)
        assert child.pid in processes.children(os.getpid())
    finally:
        child.stdin.close()
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)   # ended, not reaped: a zombie
    assert not processes.alive(child.pid)
    child.wait()
    assert not processes.alive(child.pid) and processes.command_line(child.pid) is None


def test_grandchildren_are_found_with_recursive():
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess; subprocess.run(['sleep', '30'])"])
    try:
        [sleeper] = wait_for(lambda: processes.children(parent.pid), 10, what="the sleeper to start")
        assert sleeper in processes.children(os.getpid(), recursive=True)
        assert sleeper not in processes.children(os.getpid())
    finally:
        for pid in processes.children(parent.pid):
            os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait()


def test_no_pid_is_not_alive():
    assert not processes.alive(0) and not processes.alive(-1)
