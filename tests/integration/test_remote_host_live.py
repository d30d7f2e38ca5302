"""The remote host of the multi-host tests, on its own: libvirt over SSH, the jump, and the reachability gate.

tests/support/remote_host.py makes it (a libvirtd in namespaces of its own with an sshd inside them); the
runner reaches it from a namespace of its own with a ~/.ssh of the test's. No guest boots here.
"""
from __future__ import annotations

import json
import socket
import subprocess
import textwrap

import libvirt
import pytest

from components.guest import HostKeyMismatch
from components.guest.jump import JumpHost, open_channel, open_transport
from components.guest.netns import connect_tcp

pytestmark = pytest.mark.integration


def as_runner(remote, code: str) -> subprocess.CompletedProcess:
    """Python run as the runner (its netns, its ~/.ssh), like the engine's providers."""
    import os
    env = remote.as_runner(dict(os.environ))
    return subprocess.run(["as-runner", "python", "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=120)


def test_libvirt_over_ssh_lands_on_the_hosts_own_daemon(remote_host, tmp_path):
    run = as_runner(remote_host, f"""
        import libvirt
        conn = libvirt.open({remote_host.uri!r})
        conn.storagePoolDefineXML("<pool type='dir'><name>over-ssh</name><target><path>/var/lib/libvirt/images/x"
                                  "</path></target></pool>", 0)
        print(conn.getURI())
    """)
    assert run.returncode == 0, run.stderr
    local = libvirt.open(remote_host.local_uri)
    try:
        pool = local.storagePoolLookupByName("over-ssh")     # defined over SSH, found on the socket
        pool.undefine()
    finally:
        local.close()


def test_a_service_on_the_hosts_private_side_is_reached_only_through_its_sshd(remote_host):
    # A listener on the host's own loopback, as a guest on its NAT network is: nobody else can route to it.
    server = subprocess.Popen(["nsenter", f"--net={remote_host.libvirtd.netns}", "python3", "-c", textwrap.dedent("""
        import socket
        s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1); print(s.getsockname()[1], flush=True)
        c, _ = s.accept(); c.sendall(b"hello from inside " + c.recv(64)); c.close()
    """)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        with pytest.raises(OSError):
            connect_tcp("127.0.0.1", port, netns=remote_host.runner_netns, timeout_s=3).close()
        transport = open_transport(remote_host.jump(), 10)
        try:
            channel = open_channel(transport, "127.0.0.1", port, 10)
            channel.sendall(b"far")
            assert channel.recv(64) == b"hello from inside far"
            channel.close()
        finally:
            transport.close()
    finally:
        server.kill()
        server.wait()


def test_the_hosts_key_must_be_pinned_and_match(remote_host, tmp_path):
    jump = remote_host.jump()
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyMismatch, match="is not in the runner's known_hosts"):
        open_transport(JumpHost(jump.host, 22, "root", known_hosts=(str(empty),), identities=jump.identities,
                                netns=jump.netns), 10)
    empty.write_text(f"{jump.host} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9xHmMbWnJ7zS0pZm4n1l3E2b0h5n7cPz4q2W9kYt3u\n")
    with pytest.raises(HostKeyMismatch, match="host key mismatch for jump host root@10.251.0.2:22"):
        open_transport(JumpHost(jump.host, 22, "root", known_hosts=(str(empty),), identities=jump.identities,
                                netns=jump.netns), 10)


def test_the_reachability_gate_names_a_host_that_is_gone_and_passes_once_it_is_back(remote_host):
    code = f"""
        import json
        from components.resources.hostcheck import HostReachableProvider
        p = HostReachableProvider()
        props = p.check({{}}, {{"host": "far", "uri": {remote_host.uri!r}, "desktops": ["ben", "cy"]}}).inputs
        try:
            print(json.dumps(p.create(props).outs))
        except Exception as exc:
            print(json.dumps({{"error": str(exc)}}))
    """
    remote_host.stop_sshd()
    try:
        gone = json.loads(as_runner(remote_host, code).stdout)
    finally:
        remote_host.start_sshd()
    assert gone["error"].startswith("host 'far' (qemu+ssh://root@10.251.0.2/system?no_tty=1) cannot be reached: ")
    assert "Its desktops (ben, cy) were not brought up or changed" in gone["error"]
    assert json.loads(as_runner(remote_host, code).stdout)["reachable"] is True
