"""Quotas enforced on the host, on libvirt's test driver: a wake or a schedule's start beyond a user's or a group's
quota is refused with the quota and what runs, counting the running desktops of every stack on the host. The
stack's quotas are its record on the host; whom a desktop is for, its portal record (as `up` makes both)."""
import datetime
import json
import logging
import stat

import pytest

from components.lifecycle import actions, quotas
from components.portal import accounts
from components.lifecycle.service import Lifecycle
from components.lifecycle.settings import LifecycleSettings
from components.resources.domain import DomainProvider

URI = "test:///default"
GiB = 1024 ** 3
ALWAYS = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "stop": "23:59",
          "timezone": "UTC"}


@pytest.fixture
def define(conn):
    """define(name, stack, memory=1 GiB, running=True, **inputs): a domain as the Domain provider makes it."""
    provider, made = DomainProvider(), []

    def make(name, stack, memory=GiB, running=True, **more):
        created = provider.create(provider.check({}, {
            "host_uri": URI, "name": name, "owner": stack, "domain_type": "test", "memory": memory, "vcpus": 1,
            "boot": "bios", "disks": [], "nics": [], "running": running, "shutdown_timeout_s": 2, **more}).inputs)
        made.append(created)
        return conn.lookupByName(name)

    yield make
    for created in made:
        dom = conn.lookupByName(created.outs["name"])
        if dom.hasManagedSaveImage(0):
            dom.managedSaveRemove(0)
        provider.delete(created.id, created.outs)


@pytest.fixture
def lifecycle_dir(tmp_path):
    return tmp_path / "lifecycle"


def publish(lifecycle_dir, stack, desktops):
    """Each desktop's portal record, beside the host's lifecycle dir: {domain name: (users, {user: groups})}."""
    for name, (users, groups) in desktops.items():
        accounts.publish(accounts.portal_dir_of(lifecycle_dir), stack, name, users, {}, groups=groups)


def ann(*names):
    return {name: (["ann"], {}) for name in names}


def test_a_wake_within_the_quota_wakes(conn, define, lifecycle_dir):
    define("q-ann-1", "dev")
    asleep = define("q-ann-2", "dev")
    actions.suspend(asleep)
    quotas.record(lifecycle_dir, "dev", {"users": {"ann": {"desktops": 2, "memory": 2 * GiB}}})
    publish(lifecycle_dir, "dev", ann("q-ann-1", "q-ann-2"))
    assert quotas.refusal(conn, lifecycle_dir, "q-ann-2") is None
    assert actions.wake(conn, "q-ann-2", lifecycle_dir) == "restored" and asleep.isActive()


def test_a_wake_beyond_the_desktops_quota_is_refused_naming_what_runs(conn, define, lifecycle_dir):
    define("q-ann-1", "dev")
    asleep = define("q-ann-2", "dev")
    actions.suspend(asleep)
    quotas.record(lifecycle_dir, "dev", {"users": {"ann": {"desktops": 1}}})
    publish(lifecycle_dir, "dev", ann("q-ann-1", "q-ann-2"))
    with pytest.raises(quotas.QuotaExceeded) as refused:
        actions.wake(conn, "q-ann-2", lifecycle_dir)
    assert str(refused.value) == ("q-ann-2 is not started: ann's quota is 1 desktop(s) running at once "
                                  "(quotas.users.ann.desktops of stack dev), and 1 run: q-ann-1. "
                                  "Stop a running desktop first.")
    assert actions.asleep(asleep)                                      # left asleep, its managed save kept
    conn.lookupByName("q-ann-1").destroy()                             # one stopped: now it may wake
    assert actions.wake(conn, "q-ann-2", lifecycle_dir) == "restored"


def test_memory_counts_the_persons_desktops_of_every_stack_on_the_host(conn, define, lifecycle_dir):
    define("q-lab-ann", "lab", memory=2 * GiB)                         # another stack's desktop of ann's
    define("q-dev-bob", "dev", memory=4 * GiB)                         # not ann's: not counted
    off = define("q-dev-ann", "dev", memory=GiB, running=False)
    quotas.record(lifecycle_dir, "dev", {"users": {"ann": {"memory": 2 * GiB}}})
    publish(lifecycle_dir, "dev", {**ann("q-dev-ann"), "q-dev-bob": (["bob"], {})})
    publish(lifecycle_dir, "lab", ann("q-lab-ann"))                   # lab declares no quota: it has no record
    why = quotas.refusal(conn, lifecycle_dir, "q-dev-ann")
    assert why == ("q-dev-ann is not started: ann's quota is 2 GiB of memory (quotas.users.ann.memory of stack "
                   "dev); 2 GiB runs (q-lab-ann (2 GiB)) and q-dev-ann needs 1 GiB. Stop a running desktop first.")
    assert not off.isActive()


def test_a_group_quota_counts_every_user_of_the_group(conn, define, lifecycle_dir):
    define("q-carol", "dev")
    define("q-dave", "dev")
    quotas.record(lifecycle_dir, "dev", {"groups": {"adm": {"desktops": 2}}})
    publish(lifecycle_dir, "dev", {"q-carol": (["carol"], {"carol": ["adm"]}),
                                   "q-dave": (["dave", "fay"], {"dave": ["staff"], "fay": ["adm"]}),
                                   "q-erin": (["erin"], {"erin": ["adm"]})})
    define("q-erin", "dev", running=False)
    assert "group adm's quota is 2 desktop(s) running at once (quotas.groups.adm.desktops of stack dev), and 2 " \
           "run: q-carol, q-dave" in quotas.refusal(conn, lifecycle_dir, "q-erin")


def test_a_stack_speaks_neither_for_nor_against_another_stacks_desktops(conn, define, lifecycle_dir):
    define("q-ann-1", "dev")
    define("q-ann-2", "dev", running=False)
    # rogue names dev's desktops as its own, with a quota of none for ann: neither counts
    quotas.record(lifecycle_dir, "rogue", {"users": {"ann": {"desktops": 0}}})
    publish(lifecycle_dir, "rogue", ann("q-ann-1", "q-ann-2"))
    assert quotas.refusal(conn, lifecycle_dir, "q-ann-2") is None
    publish(lifecycle_dir, "dev", ann("q-ann-1", "q-ann-2"))
    assert quotas.refusal(conn, lifecycle_dir, "q-ann-2") is None      # dev declares no quota: none applies
    quotas.record(lifecycle_dir, "dev", {"users": {"ann": {"desktops": 1}}})
    assert "and 1 run: q-ann-1" in quotas.refusal(conn, lifecycle_dir, "q-ann-2")
    quotas.withdraw(lifecycle_dir, "dev")                              # its record removed (destroy): none applies
    assert quotas.refusal(conn, lifecycle_dir, "q-ann-2") is None


def test_a_desktop_without_a_portal_record_neither_counts_nor_is_held(conn, define, lifecycle_dir):
    define("q-ann-1", "dev")
    define("q-ann-2", "dev", running=False)
    quotas.record(lifecycle_dir, "dev", {"users": {"ann": {"desktops": 1}}})
    publish(lifecycle_dir, "dev", ann("q-ann-2"))
    assert quotas.refusal(conn, lifecycle_dir, "q-ann-2") is None      # q-ann-1 is nobody's: not counted
    accounts.withdraw(accounts.portal_dir_of(lifecycle_dir), "dev", "q-ann-2")
    publish(lifecycle_dir, "dev", ann("q-ann-1"))
    assert quotas.refusal(conn, lifecycle_dir, "q-ann-2") is None      # q-ann-2 is nobody's: held to nothing


def test_the_record_is_roots_alone_and_holds_only_the_quotas(lifecycle_dir):
    path = quotas.record(lifecycle_dir, "dev", {"users": {"ann": {"desktops": 1, "memory": None}}})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"quotas": {"users": {"ann": {"desktops": 1}}, "groups": {}}}
    assert quotas.records(lifecycle_dir) == {"dev": {"users": {"ann": {"desktops": 1}}, "groups": {}}}
    assert quotas.recorded(lifecycle_dir, "dev") == quotas.records(lifecycle_dir)["dev"]
    for bad in ("../x", "", ".hidden"):
        with pytest.raises(ValueError):
            quotas.record(lifecycle_dir, bad, None)


def test_a_record_that_does_not_read_holds_no_quota(conn, define, lifecycle_dir):
    define("q-ann-1", "dev")
    define("q-ann-2", "dev", running=False)
    publish(lifecycle_dir, "dev", ann("q-ann-1", "q-ann-2"))
    path = quotas.record(lifecycle_dir, "dev", {"users": {"ann": {"desktops": 1}}})
    legacy = {"quotas": {"users": {"ann": {"desktops": 1}}}, "desktops": {"q-ann-2": {"users": ["ann"]}}}
    for body in ("{not json", json.dumps([1]), json.dumps({"quotas": {"users": {"ann": 5}}}), json.dumps(legacy)):
        path.write_text(body)
        assert quotas.records(lifecycle_dir) == {}
        assert quotas.recorded(lifecycle_dir, "dev") == {"users": {}, "groups": {}}
        assert quotas.refusal(conn, lifecycle_dir, "q-ann-2") is None
    quotas.withdraw(lifecycle_dir, "dev")
    assert quotas.recorded(lifecycle_dir, "dev") is None and not any(path.parent.iterdir())


def test_a_schedules_start_beyond_a_quota_is_not_made_and_is_logged_once(conn, define, lifecycle_dir, caplog):
    caplog.set_level(logging.INFO, "vdesk.lifecycle")
    define("q-ann-1", "dev")
    sched = define("q-ann-2", "dev", schedule=ALWAYS)
    actions.shutdown(sched, 2, by="schedule")
    assert actions.runtime_state(sched) == "schedule-off"
    quotas.record(lifecycle_dir, "dev", {"users": {"ann": {"desktops": 1}}})
    publish(lifecycle_dir, "dev", ann("q-ann-1", "q-ann-2"))
    lifecycle = Lifecycle(lifecycle_dir, LifecycleSettings(libvirt_uri=URI, poll=5, shutdown_timeout=5))
    noon = datetime.datetime(2026, 12, 7, 12, tzinfo=datetime.timezone.utc).timestamp()
    lifecycle.turn(conn, noon)
    lifecycle.turn(conn, noon + 5)
    assert not sched.isActive()
    refusals = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused start")]
    assert refusals == ["refused start desktop=q-ann-2 reason=its schedule, beyond a quota: q-ann-2 is not started: "
                        "ann's quota is 1 desktop(s) running at once (quotas.users.ann.desktops of stack dev), and 1 "
                        "run: q-ann-1. Stop a running desktop first."]
    conn.lookupByName("q-ann-1").destroy()
    lifecycle.turn(conn, noon + 10)
    assert sched.isActive()
