"""connect_tcp reaches a server that exists only inside a network namespace this test creates."""

import os
import select
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest

from components.guest import GuestError
from components.guest.netns import connect_tcp

pytestmark = pytest.mark.integration

# Runs inside the namespace: listen on 127.0.0.1:PORT, say "ready", greet each client.
SERVER = """
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(4)
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    conn.sendall(b"hello from netns\\n")
    conn.close()
"""


@pytest.fixture
def netns():
    """A fresh namespace with lo up; removed afterwards."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    name = f"vdesk-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def reserved_port():
    """A port bound (not listening) in the root namespace, so nothing can listen on it there."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def netns_server(netns, reserved_port):
    proc = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/{netns}", sys.executable, "-c", SERVER, str(reserved_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            pytest.fail(f"server in netns did not start: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}")
        yield netns, reserved_port
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_connect_inside_netns_reaches_server_only_there(netns_server):
    netns, port = netns_server
    with pytest.raises(ConnectionRefusedError):
        connect_tcp("127.0.0.1", port, netns=None, timeout_s=2).close()

    for ns in (netns, f"/run/netns/{netns}"):
        sock = connect_tcp("127.0.0.1", port, netns=ns, timeout_s=5)
        try:
            sock.settimeout(5)
            assert sock.recv(64) == b"hello from netns\n"
        finally:
            sock.close()


def test_main_thread_namespace_is_untouched(netns_server):
    netns, port = netns_server
    before = os.stat("/proc/thread-self/ns/net").st_ino
    assert before != os.stat(f"/run/netns/{netns}").st_ino
    connect_tcp("127.0.0.1", port, netns=netns, timeout_s=5).close()
    assert os.stat("/proc/thread-self/ns/net").st_ino == before


def test_refused_inside_netns_is_a_connection_error(netns, reserved_port):
    with pytest.raises(ConnectionRefusedError):
        connect_tcp("127.0.0.1", reserved_port, netns=netns, timeout_s=2)


def test_missing_netns_is_a_readable_error():
    with pytest.raises(GuestError, match="does not exist"):
        connect_tcp("127.0.0.1", 22, netns=f"vdesk-missing-{uuid.uuid4().hex[:8]}", timeout_s=2)
