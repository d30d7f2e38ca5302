"""A domain's memory is bytes, like every size inside vdesk (KiB only in its XML). A state written when it was
memory_mib still reads: a refresh, a diff and an update see it as bytes, so a no-op `up` shows no change."""
import libvirt

from components import xmlmodel
from components.resources.domain import DomainProvider

MiB = 1024**2


def _props(**over):
    return {"host_uri": "test:///default", "name": "mem-unit", "domain_type": "test", "memory": 512 * MiB,
            "vcpus": 1, "kernel": "/boot/vmlinuz", "disks": [], "nics": [], **over}


def _as_before(state: dict) -> dict:
    """The state as a vdesk that stored memory in MiB wrote it."""
    old = {k: v for k, v in state.items() if k != "memory"}
    return {**old, "memory_mib": state["memory"] // MiB}


def test_a_state_in_mib_reads_diffs_and_updates_as_bytes(conn):
    dp = DomainProvider()
    checked = dp.check({}, _props())
    assert checked.failures == []
    created = dp.create(checked.inputs)
    try:
        assert created.outs["memory"] == 512 * MiB and "memory_mib" not in created.outs
        old = _as_before(created.outs)
        assert dp.diff(created.id, old, checked.inputs).changes is False      # a no-op `up`
        refreshed = dp.read(created.id, old).outs
        assert refreshed["memory"] == 512 * MiB and "memory_mib" not in refreshed
        assert dp.diff(created.id, refreshed, checked.inputs).changes is False
        updated = dp.update(created.id, old, checked.inputs).outs
        assert updated["memory"] == 512 * MiB and updated["pending_restart"] is False
        grown = dp.diff(created.id, old, dict(checked.inputs, memory=768 * MiB))
        assert grown.changes is True and grown.replaces == []
        live = xmlmodel.Domain.from_xml(conn.lookupByName("mem-unit").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert live.memory_kib == 512 * 1024
    finally:
        dp.delete(created.id, created.outs)


def test_inputs_written_in_mib_are_taken_as_bytes():
    legacy = {k: v for k, v in _props().items() if k != "memory"}
    checked = DomainProvider().check({}, dict(legacy, memory_mib=768))
    assert checked.failures == [] and checked.inputs["memory"] == 768 * MiB and "memory_mib" not in checked.inputs


def test_memory_is_a_whole_number_of_mib():
    failures = DomainProvider().check({}, _props(memory=512 * MiB + 1)).failures
    assert [(f.property, f.reason) for f in failures] == [
        ("memory", "memory: must be a positive whole number of MiB, in bytes")]


def test_a_value_written_under_the_old_name_is_the_one_meant():
    assert DomainProvider().renamed({"memory": 512 * MiB, "memory_mib": 768}) == {"memory": 768 * MiB}


def test_a_container_state_in_mib_diffs_as_bytes():
    from components.resources.container import ContainerProvider
    base = {"host_uri": "lxc:///system?socket=/tmp/x/libvirt-sock", "name": "box", "image": "/images/debian12",
            "containers_dir": "/srv/containers"}
    cp = ContainerProvider()
    news = cp.check({}, dict(base, memory=512 * MiB))
    old = cp.check({}, dict(base, memory_mib=512))
    assert news.failures == old.failures == [] and old.inputs["memory"] == 512 * MiB
    state = {k: v for k, v in news.inputs.items() if k != "memory"} | {"memory_mib": 512}
    assert cp.diff("id", state, news.inputs).changes is False
    assert cp.diff("id", state, dict(news.inputs, memory=768 * MiB)).changes is True


def test_the_xml_of_props_written_in_mib_is_the_same():
    from components.resources.domain import desired_model
    legacy = {k: v for k, v in _props().items() if k != "memory"} | {"memory_mib": 512}
    assert desired_model(legacy).to_xml() == desired_model(_props()).to_xml()
    assert desired_model(_props()).memory_kib == 512 * 1024
