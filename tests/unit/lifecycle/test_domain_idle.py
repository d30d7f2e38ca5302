"""The domain provider and the idle policy, on libvirt's test driver: the policy is set, read back and changed live;
a desktop asleep (managed save) or shut down for idleness is declared running, is no drift, and nothing wakes it."""
import pytest

from components.lifecycle import actions
from components.lifecycle.policy import IdlePolicy, policy_of
from components.resources.domain import DomainProvider

URI = "test:///default"
NAME = "idle-unit"
POLICY = {"after": 1800, "action": "suspend", "warn": 300}


def _props(**over):
    return {"host_uri": URI, "name": NAME, "owner": "unit", "domain_type": "test", "memory": 512 * 1024**2, "vcpus": 1,
            "boot": "bios", "disks": [], "nics": [], "idle": POLICY, **over}


@pytest.fixture
def made(conn):
    provider = DomainProvider()
    checked = provider.check({}, _props())
    assert checked.failures == []
    created = provider.create(checked.inputs)
    yield provider, created, conn.lookupByName(NAME)
    provider.delete(created.id, created.outs)


def _no_diff(provider, created, read):
    diff = provider.diff(created.id, read.outs, created.outs)
    assert not diff.changes, [k for k in provider.PROPS if read.outs.get(k) != created.outs.get(k)]


def test_the_policy_is_in_the_domain_and_reads_back_without_diff(made):
    provider, created, dom = made
    assert policy_of(dom) == IdlePolicy(after=1800, warn=300)
    read = provider.read(created.id, created.outs)
    assert read.outs["idle"] == POLICY and read.outs["state"] == "running"
    _no_diff(provider, created, read)


def test_a_policy_changed_behind_vdesks_back_is_drift(made):
    provider, created, dom = made
    from components.lifecycle.policy import set_policy
    set_policy(dom, None)
    read = provider.read(created.id, created.outs)
    assert read.outs["idle"] is None
    assert "idle" in [k for k in provider.PROPS if read.outs.get(k) != created.outs.get(k)]


def test_asleep_is_running_no_drift_keeps_its_boot_and_an_update_does_not_wake_it(made):
    provider, created, dom = made
    actions.suspend(dom)
    assert actions.asleep(dom)
    read = provider.read(created.id, created.outs)
    assert (read.outs["state"], read.outs["running"]) == ("asleep", True)
    assert read.outs["boot_id"] == created.outs["boot_id"]       # the readiness gate sees the same boot
    _no_diff(provider, created, read)

    news = provider.check(read.outs, _props(memory=768 * 1024**2, idle={**POLICY, "after": 3600})).inputs
    updated = provider.update(created.id, read.outs, news)
    assert actions.asleep(dom) and not dom.isActive()            # still asleep: its memory image kept
    assert updated.outs["state"] == "asleep" and updated.outs["pending_restart"] is True
    assert updated.outs["boot_id"] == created.outs["boot_id"]
    assert policy_of(dom) == IdlePolicy(after=3600, warn=300)   # the redefinition kept the (new) policy

    assert actions.wake(dom.connect(), NAME) == "restored"
    assert dom.isActive() and not dom.hasManagedSaveImage(0)


def test_shut_down_for_idleness_is_running_and_survives_an_update(made):
    provider, created, dom = made
    actions.shutdown(dom, timeout_s=5)
    read = provider.read(created.id, created.outs)
    assert (read.outs["state"], read.outs["running"]) == ("idle-off", True)
    _no_diff(provider, created, read)
    news = provider.check(read.outs, _props(vcpus=2)).inputs
    updated = provider.update(created.id, read.outs, news)
    assert not dom.isActive() and actions.runtime_state(dom) == "idle-off"
    assert updated.outs["state"] == "idle-off"


def test_declared_off_while_asleep_discards_the_sleep(made):
    provider, created, dom = made
    actions.suspend(dom)
    read = provider.read(created.id, created.outs)
    updated = provider.update(created.id, read.outs, provider.check(read.outs, _props(running=False)).inputs)
    assert not dom.hasManagedSaveImage(0) and not dom.isActive()
    assert (updated.outs["state"], updated.outs["running"]) == ("stopped", False)


def test_stopped_by_hand_is_still_drift_and_up_starts_it(made):
    provider, created, dom = made
    dom.destroy()
    read = provider.read(created.id, created.outs)
    assert (read.outs["state"], read.outs["running"]) == ("stopped", False)
    assert provider.diff(created.id, read.outs, created.outs).changes
    provider.update(created.id, read.outs, created.outs)
    assert dom.isActive()


def test_without_a_policy_the_domain_has_none(conn):
    provider = DomainProvider()
    created = provider.create(provider.check({}, _props(idle=None)).inputs)
    try:
        assert policy_of(conn.lookupByName(NAME)) is None
        assert provider.read(created.id, created.outs).outs["idle"] is None
    finally:
        provider.delete(created.id, created.outs)


@pytest.mark.parametrize("idle, words", [
    ({"after": 30}, "idle: after: Value error, must be 1 minute to 30 days"),
    ({"after": 600, "warn": 900}, "must be shorter than after"),
    ({"action": "hibernate"}, "idle: action:"),
])
def test_a_bad_policy_is_refused_at_check_naming_the_field(idle, words):
    failures = DomainProvider().check({}, _props(idle=idle)).failures
    assert [f.property for f in failures] == ["idle"] and words in failures[0].reason, failures


def test_numbers_from_the_wire_are_whole_seconds():
    assert DomainProvider().check({}, _props(idle={"after": 1800.0, "warn": 300.0})).failures == []
