"""One check engine over one backend seam: the same declared checks, through the same check objects, give the same
outcomes over a shell backend (what the SSH session is to a desktop) and the nsenter backend of containers."""
from __future__ import annotations

import os
import shutil

import pytest

from components.guest.checkrun import PROBES, run_checks
from components.guest.checks import GuestHost
from components.guest.checkspec import KINDS, parse_checks
from components.guest.nsenter import NamespaceExec
from tests.unit.guest.test_guest_checks import LocalBackend

pytestmark = pytest.mark.skipif(shutil.which("nsenter") is None or os.geteuid() != 0,
                                reason="nsenter into this process's own namespaces needs root")

DECLARED = [{"package": "bash"}, {"absent_package": "vdesk-no-such-package"}, {"file": "/etc/hostname"},
            {"file": "/etc/passwd", "contains": "root:x:0:0"}, {"user": "root", "groups": ["root"]},
            {"command": "echo 12.5", "output_matches": r"^12\.\d$"}, {"command": "id -u", "sudo": True},
            {"package": "vdesk-no-such-package"}, {"file": "/nonexistent/vdesk"}, {"command": "exit 3"}]


def test_every_declared_kind_is_one_table_entry():
    assert set(PROBES) == set(KINDS)


def test_a_container_backend_and_a_shell_backend_give_the_same_outcomes():
    """Our own process stands in for a container's init: nsenter enters its (our) namespaces."""
    checks = parse_checks(DECLARED)
    over_shell = run_checks(GuestHost(LocalBackend()), checks)
    over_nsenter = run_checks(NamespaceExec("this-machine", os.getpid), checks)
    summary = [[(o.check.sentence, o.passed, o.command, o.rc, o.reason) for o in outcomes]
               for outcomes in (over_shell, over_nsenter)]
    assert summary[0] == summary[1]
    assert [o.passed for o in over_shell] == [True] * 7 + [False] * 3


def test_the_init_is_asked_at_every_command():
    asked = []
    backend = NamespaceExec("this-machine", lambda: asked.append(1) or os.getpid())
    run_checks(backend, parse_checks([{"command": "true"}, {"user": "root", "groups": ["root"]}]))
    assert len(asked) == 3        # true; getent, id
