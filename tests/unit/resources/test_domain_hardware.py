"""Machine type, CPU topology and autostart: the XML, the checks, the config paths."""
import libvirt
import pytest

from components import xmlmodel
from components.config.resolve import parse
from components.resources.domain import DomainProvider, same_machine
from components.errors import InputError

URI = "test:///default"


def _props(**over):
    return {"host_uri": URI, "name": "hw-unit", "domain_type": "test", "memory_mib": 512, "vcpus": 2,
            "kernel": "/boot/vmlinuz", "disks": [], "nics": [], **over}


def test_topology_and_machine_reach_the_domain_xml(conn):
    dp = DomainProvider()
    result = dp.check({}, _props(max_vcpus=4, machine="q35", cpu_topology={"sockets": 2, "cores": 2, "threads": 1}))
    assert result.failures == []
    created = dp.create(result.inputs)
    try:
        live = xmlmodel.Domain.from_xml(conn.lookupByName("hw-unit").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert (live.cpu_sockets, live.cpu_cores, live.cpu_threads, live.vcpus, live.machine) == (2, 2, 1, 4, "q35")
        assert dp.diff(created.id, dp.read(created.id, created.outs).outs, result.inputs).changes is False
    finally:
        dp.delete(created.id, created.outs)


@pytest.mark.parametrize("topology,message", [
    ({"sockets": 1, "cores": 3, "threads": 1},
     "cpu_topology: sockets x cores x threads is 3, but the vCPU maximum (max_vcpus, else vcpus) is 2"),
    ({"sockets": 1, "cores": 2}, "cpu_topology: must be {sockets, cores, threads}, each a positive integer"),
    ({"sockets": 0, "cores": 2, "threads": 1}, "cpu_topology: must be {sockets, cores, threads}, each a positive integer"),
])
def test_a_bad_topology_is_named(topology, message):
    failures = DomainProvider().check({}, _props(cpu_topology=topology)).failures
    assert [(f.property, f.reason) for f in failures] == [("cpu_topology", message)]


def test_topology_sent_as_floats_by_the_wire_is_accepted():
    assert DomainProvider().check({}, _props(cpu_topology={"sockets": 1.0, "cores": 2.0, "threads": 1.0})).failures == []


@pytest.mark.parametrize("declared,live,same", [
    ("q35", "pc-q35-7.2", True), ("pc", "pc-i440fx-7.2", True), ("pc-q35-7.2", "pc-q35-7.2", True),
    (None, "pc-i440fx-7.2", True), ("q35", "pc-i440fx-7.2", False), ("pc", "pc-q35-7.2", False),
])
def test_libvirt_versioned_machine_names_match_their_alias(declared, live, same):
    assert same_machine(declared, live) is same


def _config(desktop=None, profile=None, user=None):
    raw = {"hosts": {"local": {}}, "pools": {"main": {"host": "local"}},
           "networks": {"lan": {"host": "local", "cidr": "10.61.0.0/24"}},
           "images": {"debian12": {"golden": "debian12"}},
           "desktops": {"d": {"pool": "main", "network": "lan", "image": "debian12", "vcpus": 2, **(desktop or {})}},
           "profiles": {"p": {"pool": "main", "network": "lan", "image": "debian12", "vcpus": 2,
                              **(profile or {})}},
           "users": [{"name": "ann", "profile": "p", **(user or {})}]}
    return parse(raw, stack="dev")


def test_config_passes_topology_and_machine_to_desktops_and_users():
    cfg = _config(desktop={"machine": "q35", "cpu_topology": {"sockets": 1, "cores": 2, "threads": 1}},
                  profile={"machine": "pc", "max_vcpus": 4, "cpu_topology": {"sockets": 2, "cores": 2, "threads": 1}})
    d, ann = cfg.desktops["d"].settings, cfg.desktops["ann"].settings
    assert (d.machine, d.cpu_topology.model_dump()) == ("q35", {"sockets": 1, "cores": 2, "threads": 1})
    assert (ann.machine, ann.cpu_topology.model_dump()) == ("pc", {"sockets": 2, "cores": 2, "threads": 1})


@pytest.mark.parametrize("kwargs,path,message", [
    ({"desktop": {"cpu_topology": {"sockets": 2, "cores": 2, "threads": 1}}}, "desktops.d.cpu_topology",
     "sockets x cores x threads is 4, but the vCPU maximum (max_vcpus, else vcpus) is 2"),
    ({"desktop": {"cpu_topology": "2x2"}}, "desktops.d.cpu_topology",
     "must be {sockets, cores, threads}, each an integer >= 1"),
    ({"profile": {"machine": "Q35 please"}}, "profiles.p.machine",
     "'Q35 please' is not a machine type (e.g. q35, pc or pc-q35-7.2)"),
    ({"profile": {"cpu_topology": {"sockets": 1, "cores": 2, "threads": 1}}, "user": {"vcpus": 1}}, "users[0].vcpus",
     "profile 'p' has cpu_topology for 2 vCPUs; a user cannot change the vCPU maximum of a fixed topology"),
])
def test_bad_hardware_settings_are_named(kwargs, path, message):
    with pytest.raises(InputError) as err:
        _config(**kwargs)
    assert (path, message) in err.value.problems


def test_autostart_is_declared_per_desktop_and_inherited_by_users():
    cfg = _config(desktop={"autostart": True}, profile={"autostart": True}, user={"autostart": False})
    assert cfg.desktops["d"].settings.autostart is True and cfg.desktops["ann"].settings.autostart is False
    assert _config().desktops["d"].settings.autostart is False   # default: a host reboot does not start desktops
    with pytest.raises(InputError) as err:
        _config(desktop={"autostart": "yes"})
    assert ("desktops.d.autostart", "must be true or false") in err.value.problems


@pytest.mark.parametrize("extra,path,message", [
    (["lan"], "desktops.d.extra_networks[0]", "'lan' is already a NIC of this desktop: one NIC per network"),
    (["nowhere"], "desktops.d.extra_networks[0]", "unknown network 'nowhere' (declared: lan, quiet, storage)"),
    (["quiet"], "desktops.d.extra_networks[0]", "'quiet' has no DHCP: extra NICs take their address by DHCP"),
    ("storage", "desktops.d.extra_networks", "must be a list of network names"),
])
def test_bad_extra_networks_are_named(extra, path, message):
    raw = {"hosts": {"local": {}}, "pools": {"main": {"host": "local"}},
           "networks": {"lan": {"host": "local", "cidr": "10.61.0.0/24"},
                        "storage": {"host": "local", "cidr": "10.62.0.0/24"},
                        "quiet": {"host": "local", "cidr": "10.63.0.0/24", "dhcp": False}},
           "images": {"debian12": {"golden": "debian12"}},
           "desktops": {"d": {"pool": "main", "network": "lan", "image": "debian12", "extra_networks": extra}}}
    with pytest.raises(InputError) as err:
        parse(raw, stack="dev")
    assert (path, message) in err.value.problems
