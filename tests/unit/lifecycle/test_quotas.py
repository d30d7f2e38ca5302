"""Quotas enforced on the host, on libvirt's test driver: a wake or a schedule's start beyond a user's or a group's
quota is refused with the quota and what runs, counting the running desktops of every stack on the host."""
import datetime
import logging
import stat

import pytest

from components.lifecycle import actions, quotas
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


def people(users=(), groups=()):
    return {"users": list(users), "groups": list(groups)}


def test_a_wake_within_the_quota_wakes(conn, define, tmp_path):
    define("q-ann-1", "dev")
    asleep = define("q-ann-2", "dev")
    actions.suspend(asleep)
    quotas.record(tmp_path, "dev", {"users": {"ann": {"desktops": 2, "memory": 2 * GiB}}},
                  {"q-ann-1": people(["ann"]), "q-ann-2": people(["ann"])})
    assert quotas.refusal(conn, tmp_path, "q-ann-2") is None
    assert actions.wake(conn, "q-ann-2", tmp_path) == "restored" and asleep.isActive()


def test_a_wake_beyond_the_desktops_quota_is_refused_naming_what_runs(conn, define, tmp_path):
    define("q-ann-1", "dev")
    asleep = define("q-ann-2", "dev")
    actions.suspend(asleep)
    quotas.record(tmp_path, "dev", {"users": {"ann": {"desktops": 1}}},
                  {"q-ann-1": people(["ann"]), "q-ann-2": people(["ann"])})
    with pytest.raises(quotas.QuotaExceeded) as refused:
        actions.wake(conn, "q-ann-2", tmp_path)
    assert str(refused.value) == ("q-ann-2 is not started: ann's quota is 1 desktop(s) running at once "
                                  "(quotas.users.ann.desktops of stack dev), and 1 run: q-ann-1. "
                                  "Stop a running desktop first.")
    assert actions.asleep(asleep)                                      # left asleep, its managed save kept
    conn.lookupByName("q-ann-1").destroy()                             # one stopped: now it may wake
    assert actions.wake(conn, "q-ann-2", tmp_path) == "restored"


def test_memory_counts_the_persons_desktops_of_every_stack_on_the_host(conn, define, tmp_path):
    define("q-lab-ann", "lab", memory=2 * GiB)                         # another stack's desktop of ann's
    define("q-dev-bob", "dev", memory=4 * GiB)                         # not ann's: not counted
    off = define("q-dev-ann", "dev", memory=GiB, running=False)
    quotas.record(tmp_path, "dev", {"users": {"ann": {"memory": 2 * GiB}}},
                  {"q-dev-ann": people(["ann"]), "q-dev-bob": people(["bob"])})
    quotas.record(tmp_path, "lab", None, {"q-lab-ann": people(["ann"])})
    why = quotas.refusal(conn, tmp_path, "q-dev-ann")
    assert why == ("q-dev-ann is not started: ann's quota is 2 GiB of memory (quotas.users.ann.memory of stack "
                   "dev); 2 GiB runs (q-lab-ann (2 GiB)) and q-dev-ann needs 1 GiB. Stop a running desktop first.")
    assert not off.isActive()


def test_a_group_quota_counts_every_user_of_the_group(conn, define, tmp_path):
    define("q-carol", "dev")
    define("q-dave", "dev")
    quotas.record(tmp_path, "dev", {"groups": {"adm": {"desktops": 2}}},
                  {"q-carol": people(["carol"], ["adm"]), "q-dave": people(["dave"], ["adm", "staff"]),
                   "q-erin": people(["erin"], ["adm"])})
    define("q-erin", "dev", running=False)
    assert "group adm's quota is 2 desktop(s) running at once (quotas.groups.adm.desktops of stack dev), and 2 " \
           "run: q-carol, q-dave" in quotas.refusal(conn, tmp_path, "q-erin")


def test_a_stack_speaks_neither_for_nor_against_another_stacks_desktops(conn, define, tmp_path):
    define("q-ann-1", "dev")
    define("q-ann-2", "dev", running=False)
    # rogue names dev's desktops as its own, with a quota of none for ann: neither counts
    quotas.record(tmp_path, "rogue", {"users": {"ann": {"desktops": 0}}},
                  {"q-ann-1": people(["ann"]), "q-ann-2": people(["ann"])})
    assert quotas.refusal(conn, tmp_path, "q-ann-2") is None
    quotas.record(tmp_path, "dev", None, {"q-ann-1": people(["ann"]), "q-ann-2": people(["ann"])})
    assert quotas.refusal(conn, tmp_path, "q-ann-2") is None           # dev declares no quota: none applies


def test_the_record_is_roots_alone(tmp_path):
    path = quotas.record(tmp_path, "dev", {"users": {"ann": {"desktops": 1, "memory": None}}}, {})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert quotas.records(tmp_path)["dev"]["quotas"] == {"users": {"ann": {"desktops": 1}}, "groups": {}}
    with pytest.raises(ValueError):
        quotas.record(tmp_path, "../x", None, {})


def test_a_schedules_start_beyond_a_quota_is_not_made_and_is_logged_once(conn, define, tmp_path, caplog):
    caplog.set_level(logging.INFO, "vdesk.lifecycle")
    define("q-ann-1", "dev")
    sched = define("q-ann-2", "dev", schedule=ALWAYS)
    actions.shutdown(sched, 2, by="schedule")
    assert actions.runtime_state(sched) == "schedule-off"
    quotas.record(tmp_path, "dev", {"users": {"ann": {"desktops": 1}}},
                  {"q-ann-1": people(["ann"]), "q-ann-2": people(["ann"])})
    lifecycle = Lifecycle(tmp_path, LifecycleSettings(libvirt_uri=URI, poll=5, shutdown_timeout=5))
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


def test_up_records_the_stacks_quotas_and_its_desktops_people_on_each_embedded_host(tmp_path, monkeypatch):
    import copy
    import types

    from components.host import resolve as host_resolve
    # an up, whatever Pulumi's process-wide settings an earlier mocks test in this worker left (a preview's)
    monkeypatch.setattr(host_resolve, "previewing", lambda: False)

    from components.config.loader import _record_quotas
    from components.config.resolve import parse
    from tests.unit.config.test_config_corpus import BASE, SECRETS
    raw = copy.deepcopy(BASE)
    raw["quotas"] = {"groups": {"adm": {"desktops": 3, "memory": "8GiB"}}, "users": {"carol": {"desktops": 1}}}
    config = parse(raw, stack="team", config_keys=SECRETS)
    hosts = {name: types.SimpleNamespace(console_dir=str(tmp_path / name / "console")) for name in config.hosts}
    _record_quotas("team", config, hosts)
    host = next(iter(config.hosts))
    written = quotas.records(tmp_path / host / "lifecycle")["team"]
    assert written["quotas"] == {"groups": {"adm": {"desktops": 3, "memory": 8 * GiB}},
                                 "users": {"carol": {"desktops": 1}}}
    carol = config.desktops["carol"]
    assert written["desktops"][f"{config.prefix}-carol"] == {
        "users": ["carol"], "groups": sorted(set(carol.users[0].groups))}
    assert set(written["desktops"]) == {f"{config.prefix}-{n}" for n, d in config.desktops.items() if d.host == host}


def test_a_preview_records_nothing(tmp_path, monkeypatch):
    import copy
    import types

    from components.config.loader import _record_quotas
    from components.config.resolve import parse
    from components.host import resolve as host_resolve
    from tests.unit.config.test_config_corpus import BASE, SECRETS
    monkeypatch.setattr(host_resolve, "previewing", lambda: True)
    config = parse(copy.deepcopy(BASE), stack="team", config_keys=SECRETS)
    hosts = {name: types.SimpleNamespace(console_dir=str(tmp_path / name / "console")) for name in config.hosts}
    _record_quotas("team", config, hosts)
    assert not any(tmp_path.rglob("*")), "a preview writes nothing on the host"
