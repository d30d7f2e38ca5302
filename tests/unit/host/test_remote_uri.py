"""A remote host's URI: how its guests are reached, and what happens when it does not answer."""
from __future__ import annotations

import pytest

from components.host import resolve
from components.host.resolve import HostUnreachable, ssh_jump


@pytest.mark.parametrize("uri,jump", [
    ("qemu+ssh://admin@kvm2/system", "admin@kvm2:22"),
    ("qemu+ssh://admin@kvm2:2222/system?no_tty=1", "admin@kvm2:2222"),
    ("qemu+libssh2://ops@10.0.0.9/system", "ops@10.0.0.9:22"),
    ("qemu+tls://kvm2/system", None),            # no sshd to go through: guests must be routable
    ("qemu:///system", None),
])
def test_the_jump_host_comes_from_the_uri(uri, jump):
    assert ssh_jump(uri) == jump


def test_a_host_that_refuses_is_unreachable_naming_it_quickly():
    # Port 1 on this machine's loopback: refused at once (no test traffic leaves loopback).
    with pytest.raises(HostUnreachable) as err:
        resolve.resolve_host("far", "qemu+ssh://root@127.0.0.1:1/system?no_tty=1", "tcg", probe_kernel=None)
    assert err.value.host == "far" and "Connection refused" in err.value.reason
    assert str(err.value).startswith("host 'far' (qemu+ssh://root@127.0.0.1:1/system?no_tty=1) cannot be reached: ")


def test_a_host_that_does_not_answer_in_time_is_unreachable(monkeypatch):
    import threading
    import libvirt
    hang = threading.Event()

    def never_answers(uri):
        hang.wait(5)
        raise libvirt.libvirtError("gave up")

    monkeypatch.setattr("libvirt.open", never_answers)
    from components.host.connection import probe
    assert probe("qemu+ssh://root@far/system", 0.2) == "no answer within 0.2s"
    hang.set()
