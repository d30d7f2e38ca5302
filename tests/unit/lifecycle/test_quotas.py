"""Quotas enforced on the host, on libvirt's test driver: a wake or a schedule's start beyond a user's or a group's
quota is refused with the quota and what runs, counting the running desktops of every stack on the host."""
import datetime
import logging
import stat

import pulumi
import pytest
from pulumi.runtime.mocks import MockMonitor

from components.lifecycle import actions, quotas
from components.lifecycle.service import Lifecycle
from components.lifecycle.settings import LifecycleSettings
from components.resources.domain import DomainProvider
from tests.unit.config.test_program import after

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


class _DependencyMonitor(MockMonitor):
    """Pulumi's mock monitor, also noting what each resource was registered to depend on (by name)."""

    def __init__(self, mocks):
        super().__init__(mocks)
        self.depends: dict[str, set[str]] = {}

    def RegisterResource(self, request):
        self.depends[request.name] = {urn.rsplit("::", 1)[-1] for urn in request.dependencies}
        return super().RegisterResource(request)


@pytest.fixture
def stack_mocks(monkeypatch, tmp_path):
    """declare() with Pulumi's mocks, on a host whose state dir is tmp_path/local (console_dir=None: a system
    host's). Returns (mocks, monitor, use(console_dir))."""
    import dataclasses

    from tests.unit.config.test_program import RecordingMocks, _resolved_host, _this_machine
    mocks = RecordingMocks()
    monitor = _DependencyMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="vdesk", stack="unit", preview=False, monitor=monitor)
    monkeypatch.setattr("components.host.capacity.read", _this_machine)
    monkeypatch.setattr("components.config.loader.image_files.resolve", _golden)
    console = {"dir": str(tmp_path / "local" / "console")}

    def resolved(h, probe_kernel):
        return dataclasses.replace(_resolved_host(h, probe_kernel), console_dir=console["dir"])

    monkeypatch.setattr("components.config.loader.resolve_host", resolved)
    return mocks, monitor, lambda folder: console.update(dir=folder)


def _golden(image):
    from tests.unit.config.test_program import _golden as golden
    return golden(image)


def _stack(**more):
    from tests.unit.config.test_program import two_users
    raw = two_users()
    raw["users"][1]["groups"] = ["adm"]
    raw.update(more)
    return raw


@pulumi.runtime.test
def test_up_declares_the_stacks_record_of_quotas_and_people_on_each_embedded_host(stack_mocks, tmp_path):
    from components.config.loader import declare
    mocks, monitor, _ = stack_mocks
    outputs = declare("dev", _stack(quotas={"groups": {"adm": {"desktops": 3, "memory": "8GiB"}},
                                            "users": {"carol": {"desktops": 1}}}))

    def check(out):
        record = mocks.named("quotas-local")
        assert record["stack"] == "unit", "the running stack's, never the stack file's"
        assert record["lifecycle_dir"] == str(tmp_path / "local" / "lifecycle")
        assert record["quotas"] == {"groups": {"adm": {"desktops": 3, "memory": 8 * GiB}},
                                    "users": {"carol": {"desktops": 1}}}
        carol = out["desktops"]["carol"]["name"]
        assert record["desktops"][carol] == {"users": ["carol"], "groups": ["adm"]}
        assert set(record["desktops"]) == {out["desktops"][n]["name"] for n in ("alice", "carol")}
        # every part of a desktop, its domain first of all, waits for the record (and so is removed before it)
        for name in ("alice", "carol"):
            parts = [n for n in mocks.names() if n.startswith(f"{name}-")]
            assert f"{name}-vm" in parts
            assert all("quotas-local" in monitor.depends[n] for n in parts), {n: monitor.depends[n] for n in parts}
        assert not any(tmp_path.rglob("*")), "the program writes nothing on the host: the resource does, at up"

    return after(outputs, check)


@pulumi.runtime.test
def test_a_stack_without_quotas_still_records_its_desktops_people(stack_mocks):
    from components.config.loader import declare
    mocks, _, _ = stack_mocks
    outputs = declare("dev", _stack())

    def check(out):
        record = mocks.named("quotas-local")
        assert record["quotas"] == {"users": {}, "groups": {}}
        assert set(record["desktops"]) == {out["desktops"][n]["name"] for n in ("alice", "carol")}

    return after(outputs, check)


@pulumi.runtime.test
def test_a_host_without_a_console_dir_gets_no_record_and_its_desktops_wait_for_none(stack_mocks):
    from components.config.loader import declare
    mocks, monitor, use = stack_mocks
    use(None)
    outputs = declare("dev", _stack(quotas={"users": {"carol": {"desktops": 1}}}))

    def check(_):
        assert not any(n.startswith("quotas-") for n in mocks.names())
        assert not any(n.startswith("quotas-") for deps in monitor.depends.values() for n in deps)

    return after(outputs, check)
