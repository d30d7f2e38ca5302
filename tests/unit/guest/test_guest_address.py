"""Tests for finding a guest's address, on libvirt's in-process test:///default driver."""

import time
import uuid

import pytest

from components.guest import GuestError, GuestTimeout
from components.guest.address import wait_for_address
from components.guest.lifecycle import GuestStopped

# The stock "test" domain of test:///default runs with this NIC on network "default".
TEST_DOMAIN = "test"
TEST_MAC = "aa:bb:cc:dd:ee:ff"


def _desktop_xml(name: str, mac: str, network: str) -> str:
    return f"""<domain type='test'>
          <name>{name}</name>
          <memory unit='MiB'>64</memory>
          <os><type arch='x86_64'>hvm</type></os>
          <devices>
            <interface type='network'>
              <mac address='{mac}'/>
              <source network='{network}'/>
            </interface>
          </devices>
        </domain>"""


@pytest.fixture
def booting_desktop(conn):
    """A running domain whose only address is link-local (its network's range): it has no usable one yet.

    The test driver reports an address from the network's range for every running domain; a
    link-local range is how a guest looks before DHCP answered.
    """
    network = conn.networkCreateXML(
        f"""<network><name>vdesk-ll-{uuid.uuid4().hex[:6]}</name><bridge name='vdll{uuid.uuid4().hex[:6]}'/>
          <ip address='169.254.0.1' netmask='255.255.0.0'>
            <dhcp><range start='169.254.0.10' end='169.254.0.200'/></dhcp></ip></network>""")
    name, mac = f"vdesk-addr-{uuid.uuid4().hex[:8]}", "52:54:00:12:34:56"
    domain = conn.defineXML(_desktop_xml(name, mac, network.name()))
    domain.create()
    yield name, mac
    domain.destroy()
    domain.undefine()
    network.destroy()


@pytest.fixture
def stopped_desktop(conn):
    """A domain that was started and then powered off hard."""
    name, mac = f"vdesk-addr-{uuid.uuid4().hex[:8]}", "52:54:00:12:34:57"
    domain = conn.defineXML(_desktop_xml(name, mac, "default"))
    domain.create()
    domain.destroy()
    yield name, mac
    domain.undefine()


def test_static_returns_at_once_without_looking_up(conn):
    start = time.monotonic()
    # The domain does not even exist: a static address needs no lookup.
    assert wait_for_address(conn, "no-such-desktop", "52:54:00:00:00:01", sources=("static:10.0.0.5",)) == "10.0.0.5"
    assert time.monotonic() - start < 0.5


@pytest.mark.parametrize("source", ["lease", "agent", "arp"])
def test_running_domain_address_found(conn, source):
    address = wait_for_address(conn, TEST_DOMAIN, TEST_MAC.upper(), sources=(source,), timeout_s=5)
    assert address == "192.168.122.3"


def test_no_usable_address_times_out_naming_desktop_mac_sources(conn, booting_desktop):
    name, mac = booting_desktop
    start = time.monotonic()
    with pytest.raises(GuestTimeout) as info:
        wait_for_address(conn, name, mac, timeout_s=1.5, poll_s=0.2)
    elapsed = time.monotonic() - start
    assert 1.4 < elapsed < 10  # waited its 1.5 s bound, and stopped
    message = str(info.value)
    assert name in message
    assert mac in message
    assert "lease, agent" in message
    assert "1.5 s" in message
    assert "no address reported yet" in message


def test_a_guest_that_stopped_is_reported_at_once_with_libvirts_reason(conn, stopped_desktop):
    name, mac = stopped_desktop
    start = time.monotonic()
    with pytest.raises(GuestStopped) as info:
        wait_for_address(conn, name, mac, timeout_s=30)
    assert time.monotonic() - start < 5            # not the 30 s bound
    assert "shut off: it was destroyed" in str(info.value) and not info.value.crashed


def test_unknown_mac_is_an_error_not_a_wait(conn):
    with pytest.raises(GuestError, match="no network interface with MAC 52:54:00:99:99:99") as info:
        wait_for_address(conn, TEST_DOMAIN, "52:54:00:99:99:99", timeout_s=30)
    assert not isinstance(info.value, GuestTimeout)


def test_missing_domain_is_an_error(conn):
    with pytest.raises(GuestError, match="no libvirt domain"):
        wait_for_address(conn, "vdesk-no-such-domain", TEST_MAC, timeout_s=30)


@pytest.mark.parametrize(
    "sources, message",
    [
        (("dhcp",), "unknown address source 'dhcp'"),
        (("static:10.0.0.999",), "invalid static address"),
        ((), "non-empty"),
        ("lease", "non-empty tuple"),
    ],
)
def test_bad_sources(conn, sources, message):
    with pytest.raises(GuestError, match=message):
        wait_for_address(conn, TEST_DOMAIN, TEST_MAC, sources=sources, timeout_s=1)


def test_bad_mac(conn):
    with pytest.raises(GuestError, match="invalid MAC"):
        wait_for_address(conn, TEST_DOMAIN, "52:54:00", timeout_s=1)


def test_the_gate_quotes_the_serial_console_of_a_guest_that_got_no_address(conn, booting_desktop, tmp_path):
    """What the guest printed last is the first thing a person would look at: the gate says it, and where."""
    from components.errors import VdeskError
    from components.resources.readiness import ReadinessProvider
    name, mac = booting_desktop
    log = tmp_path / f"{name}-console.log"
    log.write_text("[  OK  ] Reached target network-pre.target - Preparation for Network.\n"
                   "         Starting networking.service - Raise network interfaces...\n")
    props = {"host_uri": "test:///default", "domain_name": name, "mac": mac, "address_sources": ["lease"],
             "address_timeout_s": 1, "console_log_file": str(log)}
    with pytest.raises(VdeskError) as info:
        ReadinessProvider().gate(props)
    assert str(info.value) == (
        f"desktop {name!r} is not ready: timed out after 1 s waiting for an IPv4 address for desktop {name!r} "
        f"NIC {mac} (sources: lease); last error: no address reported yet; its serial console last printed "
        f"({log}):\n    [  OK  ] Reached target network-pre.target - Preparation for Network.\n"
        "             Starting networking.service - Raise network interfaces...")
