"""Display passwords on the project's own libvirtd: a real VNC handshake decides, and rotation is live.

An OS-less guest (firmware only) is enough: qemu's VNC server answers whatever
the guest runs. The password is rotated through DomainProvider.update, as a new
DisplayPassword value reaches the domain: the qemu process stays the same, the
old password is refused and the new one accepted. A validity in the past makes
even the right password fail.
"""
from __future__ import annotations

import os
import socket

import libvirt
import pytest

from components.resources.domain import DomainProvider
from tests.support.host import qemu_pid
from tests.support.providers import checked
from tests.support.rfb import RfbRefused, handshake

pytestmark = [pytest.mark.integration, pytest.mark.guests]


def vnc_login(path: str, password: str) -> tuple[int, int, str]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        return handshake(sock, password)


@pytest.fixture
def desktop(own_host):
    dp = DomainProvider()
    name = "display-rotate"
    vnc = str(own_host.state_dir / "displays" / f"{name}.vnc")
    os.makedirs(os.path.dirname(vnc), exist_ok=True)
    props = checked(dp, {"host_uri": own_host.uri, "name": name, "domain_type": "qemu", "boot": "bios",
                         "memory": 128 * 1024**2, "vcpus": 1, "graphics_socket": vnc, "spice": True,
                         "display_password": "first-pw", "shutdown_timeout_s": 2})
    created = dp.create(props)
    yield dp, created, props, vnc
    dp.delete(created.id, created.outs)
    assert not os.path.exists(vnc) and not os.path.exists(vnc[:-4] + ".spice"), "display sockets left behind"


def test_a_rotated_password_is_live_without_a_restart(own_host, desktop, caplog):
    dp, created, props, vnc = desktop
    name = props["name"]
    pid = qemu_pid(own_host, name)
    assert vnc_login(vnc, "first-pw")[2] == f"QEMU ({name})"   # qemu names the VNC desktop after the domain
    with pytest.raises(RfbRefused):
        vnc_login(vnc, "wrong-pw")

    caplog.set_level("INFO", logger="components.resources.display")
    rotated = dict(props, display_password="second!")
    outs = dp.update(created.id, created.outs, rotated).outs
    assert qemu_pid(own_host, name) == pid, "the guest was restarted for a new password"
    assert outs["pending_restart"] is False and "display password changed live" in caplog.text
    with pytest.raises(RfbRefused):
        vnc_login(vnc, "first-pw")
    assert vnc_login(vnc, "second!")[2] == f"QEMU ({name})"

    # The persistent definition has it too (a later boot keeps it), and only secure XML shows it.
    conn = libvirt.open(own_host.uri)
    try:
        dom = conn.lookupByName(name)
        secure = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE)
        assert secure.count("passwd='second!'") == 2            # VNC and SPICE
        assert "second!" not in dom.XMLDesc(0) + dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    finally:
        conn.close()
    # A refresh reads what libvirt has: nothing to do.
    assert dp.diff(created.id, dp.read(created.id, outs).outs, rotated).changes is False


def test_a_password_past_its_validity_is_refused_live(own_host, desktop):
    dp, created, props, vnc = desktop
    pid = qemu_pid(own_host, props["name"])
    expired = dict(props, display_password_valid_to="2020-01-01T00:00:00")
    outs = dp.update(created.id, created.outs, expired).outs
    with pytest.raises(RfbRefused):
        vnc_login(vnc, "first-pw")
    renewed = dict(props, display_password_valid_to="2099-01-01T00:00:00")
    dp.update(created.id, outs, renewed)
    assert vnc_login(vnc, "first-pw")[2] == f"QEMU ({props['name']})"
    assert qemu_pid(own_host, props["name"]) == pid
