"""A guest that stopped while the gate waited: which stops are reported how, and which one earns a second boot."""
import uuid

import libvirt
import pytest

from components.errors import VdeskError
from components.guest.lifecycle import GuestStopped, raise_if_stopped, stopped, why_stopped
from components.resources.readiness import ReadinessProvider

TEST_DRIVER = "test:///default"


@pytest.mark.parametrize("state, reason", [
    (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_BOOTED),
    (libvirt.VIR_DOMAIN_BLOCKED, 0),
    (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_USER),          # a person may resume it in time
    (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_MIGRATION),
    (libvirt.VIR_DOMAIN_SHUTDOWN, libvirt.VIR_DOMAIN_SHUTDOWN_USER),      # still going down
])
def test_a_guest_that_runs_or_may_go_on_is_not_stopped(state, reason):
    assert stopped("d1", state, reason) is None


@pytest.mark.parametrize("state, reason, words, crashed", [
    (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED, "its emulator crashed", True),
    (libvirt.VIR_DOMAIN_CRASHED, libvirt.VIR_DOMAIN_CRASHED_PANICKED, "kernel panic", True),
    (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN, "the guest powered itself off", False),
    (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED, "it was destroyed", False),
    (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_FAILED, "it failed to start", False),
    (libvirt.VIR_DOMAIN_SHUTOFF, 99, "libvirt gives no reason (shut-off reason 99)", False),
    (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_IOERROR, "disk I/O error", False),
])
def test_a_stop_says_why_and_only_a_crash_is_worth_a_second_boot(state, reason, words, crashed):
    found = stopped("d1", state, reason)
    assert isinstance(found, GuestStopped) and words in str(found) and found.crashed is crashed
    assert str(found).startswith("the guest stopped: ")


def test_it_survives_the_trip_between_processes():
    import pickle
    found = pickle.loads(pickle.dumps(stopped("d1", libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED)))
    assert found.crashed and found.domain_name == "d1" and "crashed" in str(found)


@pytest.fixture
def powered_off(conn):
    name = f"vdesk-life-{uuid.uuid4().hex[:8]}"
    domain = conn.defineXML(f"""<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory>
        <os><type arch='x86_64'>hvm</type></os><devices><interface type='network'>
        <mac address='52:54:00:ab:cd:01'/><source network='default'/></interface></devices></domain>""")
    domain.create()
    domain.destroy()
    yield domain
    domain.undefine()


def test_a_domain_that_is_gone_or_unknown_to_libvirt_is_not_claimed_stopped(conn, powered_off):
    assert why_stopped(conn, "no-such-desktop") is None
    with pytest.raises(GuestStopped, match="destroyed"):
        raise_if_stopped(conn, powered_off.name())
    powered_off.create()
    raise_if_stopped(conn, powered_off.name())                  # running: quiet
    powered_off.destroy()


def test_the_gate_fails_at_once_naming_the_stop_not_at_its_deadline(conn, powered_off):
    """The address bound is ten minutes; a destroyed guest is reported on the first look, and not started again."""
    props = {"host_uri": TEST_DRIVER, "domain_name": powered_off.name(), "mac": "52:54:00:ab:cd:01",
             "address_sources": ["lease", "agent"], "address_timeout_s": 600}
    with pytest.raises(VdeskError) as info:
        ReadinessProvider().gate(props)
    assert str(info.value) == (f"desktop {powered_off.name()!r} is not ready: the guest stopped: libvirt says it is "
                               "shut off: it was destroyed (a hard power-off, such as `virsh destroy`)")
    assert powered_off.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF


def test_a_crash_gets_one_more_boot_and_a_failed_restart_says_both(conn, monkeypatch):
    """The gate's second boot after an emulator crash: the stop and the refusal are both named."""
    name = f"vdesk-life-{uuid.uuid4().hex[:8]}"
    crashed = stopped(name, libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED)
    boots = []

    def crash_every_time(self, props):
        boots.append(props["domain_name"])
        raise crashed

    monkeypatch.setattr(ReadinessProvider, "_boot_to_ready", crash_every_time)
    with pytest.raises(VdeskError) as info:                 # no such domain: libvirt refuses to start it
        ReadinessProvider().gate({"host_uri": TEST_DRIVER, "domain_name": name})
    assert boots == [name]
    assert str(info.value).startswith(f"desktop {name!r} is not ready: the guest stopped: libvirt says it is shut "
                                      "off: its emulator crashed")
    assert "; starting it again failed: Domain not found" in str(info.value)


def test_a_second_crash_is_reported_not_booted_a_third_time(conn, powered_off, monkeypatch):
    name = powered_off.name()
    boots = []

    def crash_every_time(self, props):
        boots.append(powered_off.state()[0])
        raise stopped(name, libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED)

    monkeypatch.setattr(ReadinessProvider, "_boot_to_ready", crash_every_time)
    with pytest.raises(VdeskError, match="is not ready: the guest stopped: .* its emulator crashed"):
        ReadinessProvider().gate({"host_uri": TEST_DRIVER, "domain_name": name})
    # booted once more between the two: the second look found it running (started by the gate)
    assert boots == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_RUNNING]
    powered_off.destroy()
