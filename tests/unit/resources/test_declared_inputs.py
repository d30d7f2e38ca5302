"""The domain provider's CPU and machine inputs are checked by the kinds the desktop settings are declared with
(components.kinds), so the provider, the component arguments and the stack file refuse the same values."""
import pytest
from pydantic import TypeAdapter, ValidationError

from components.kinds import Count, CpuMode, CpuModelName, CpuSet, CpuTopology, MachineType
from components.resources.domain import DomainProvider


def _props(**over):
    return {"host_uri": "test:///default", "name": "kinds-unit", "domain_type": "test", "memory_mib": 512,
            "vcpus": 2, "kernel": "/boot/vmlinuz", "disks": [], "nics": [], **over}


@pytest.mark.parametrize("prop, value, expected", [
    ("machine", "Q35 machine", "machine: 'Q35 machine' is not a machine type (e.g. q35, pc or pc-q35-7.2)"),
    ("cpu_mode", "passthrough", "cpu_mode: Input should be 'host-passthrough', 'host-model' or 'custom'"),
    ("cpu_model", "-bad", "cpu_model: '-bad' is not a CPU model name (e.g. Haswell-noTSX or EPYC)"),
    ("cpu_pinning", [1, "x"], "cpu_pinning: [1]: 'x' is not a CPU set (e.g. 2, '2-3' or '0,4')"),
    ("vcpus", 0, "vcpus: must be a positive integer"),
    ("cpu_topology", {"sockets": 2.0, "cores": 0, "threads": 1},
     "cpu_topology: must be {sockets, cores, threads}, each a positive integer"),
])
def test_a_value_the_declared_kind_refuses_is_a_check_failure(prop, value, expected):
    failures = DomainProvider().check({}, _props(**{prop: value})).failures
    assert [(f.property, f.reason) for f in failures] == [(prop, expected)]


@pytest.mark.parametrize("prop, value, kind", [
    ("machine", "pc-q35-7.2", MachineType), ("cpu_mode", "host-model", CpuMode), ("cpu_model", "EPYC", CpuModelName),
    ("cpu_pinning", [2, "0-1"], list[CpuSet]), ("vcpus", 3, Count),
    ("cpu_topology", {"sockets": 1, "cores": 2, "threads": 1}, CpuTopology),
])
def test_a_value_the_kind_takes_the_provider_takes(prop, value, kind):
    TypeAdapter(kind).validate_python(value)
    over = {prop: value, **({"vcpus": 2} if prop == "cpu_topology" else {})}
    assert DomainProvider().check({}, _props(**over)).failures == []


def test_the_wire_s_whole_floats_are_the_integers_written():
    with pytest.raises(ValidationError):
        TypeAdapter(CpuTopology).validate_python({"sockets": 1.0, "cores": 2, "threads": 1})   # strict, as declared
    assert DomainProvider().check({}, _props(cpu_topology={"sockets": 1.0, "cores": 2.0, "threads": 1.0})).failures == []


def test_the_network_volume_container_and_gate_inputs_are_the_shared_kinds():
    from components.kinds import NETWORK_MODES, Timeouts
    from components.resources.container import ContainerProvider
    from components.resources.network import NetworkProvider
    from components.resources.readiness import ReadinessProvider
    from components.resources.volume import VolumeProvider
    network = NetworkProvider.PROPS
    assert network["mode"].validate("bridged") == "'bridged' must be one of " + ", ".join(NETWORK_MODES)
    assert network["bridge"].validate("br 0") == "a Linux interface name: 1-15 characters, no spaces, '/' or ':'"
    assert network["cidr6"].validate("10.0.0.0/24") == ("'10.0.0.0/24' is not an IPv6 prefix (cidr6 is the IPv6 "
                                                        "half of a dual-stack network)")
    assert VolumeProvider.PROPS["backup_days"].validate(3651) == "must be 0..3650"
    assert VolumeProvider.PROPS["backup_days"].validate(0) is None
    assert ContainerProvider.PROPS["vcpus"].validate(0) == "must be a positive integer"
    gate = ReadinessProvider.PROPS
    assert (gate["address_timeout_s"].default, gate["ssh_timeout_s"].default, gate["cloud_init_timeout_s"].default) \
        == (Timeouts().address, Timeouts().ssh, Timeouts().cloud_init)


def test_the_pool_inputs_are_the_stack_file_s_kinds():
    from components.config.stackfile import Pool
    from components.kinds import FileServer, NetfsFormat, PoolType, VolumeGroup
    from components.resources.pool import PoolProvider
    props = PoolProvider.PROPS
    assert [props[k].kind for k in ("type", "source_format", "source_name", "source_host")] == \
        [PoolType, NetfsFormat, VolumeGroup, FileServer]
    assert [Pool.model_fields[k].annotation for k in ("type",)] == [PoolType]
    assert props["type"].validate("zfs") == "'zfs' is not one of dir, logical, netfs"
    assert props["source_format"].validate("smb") == "'smb' is not one of nfs, cifs, glusterfs, auto"
    assert props["source_name"].validate("-vg").startswith("'-vg' is not a volume group name")
    assert props["source_host"].validate("a b") == "'a b' is not a host name or IP address"


def test_the_network_s_leases_records_and_range_are_the_stack_file_s_kinds():
    from components.config.stackfile import Network
    from components.kinds import DhcpHost, DhcpRange, DnsHost
    from components.resources.network import NetworkProvider
    props = NetworkProvider.PROPS
    assert [props[k].kind for k in ("dhcp_range", "dhcp_hosts", "dns_hosts")] == \
        [DhcpRange, list[DhcpHost], list[DnsHost]]
    assert [Network.model_fields[k].annotation for k in ("dhcp_hosts", "dns_hosts")] == [list[DhcpHost], list[DnsHost]]
    # every problem of the list at once, each at its place in the value
    assert props["dhcp_hosts"].validate([{"mac": "01:00:5e:00:00:01", "ip": "10.0.0.5"}, {"ip": "10.0.0.6"}]) == (
        "[0].mac: '01:00:5e:00:00:01' is a multicast MAC address: a NIC's MAC is unicast (its first byte is even); "
        "[1].mac: Field required")
    assert props["dns_hosts"].validate([{"ip": "10.0.0.9", "hostnames": ["-x"]}]).startswith(
        "[0].hostnames[0]: '-x' is not a DNS name")
    assert props["dhcp_range"].validate({"start": "10.0.0.9"}) == "must be {start, end}, two IPv4 addresses"
    assert props["dhcp_hosts"].validate([{"mac": "52:54:00:00:00:01", "ip": "10.0.0.5", "name": "pc"}]) is None


def test_a_display_password_s_validity_is_a_duration_as_vdesk_holds_it():
    from components.kinds import Seconds
    from components.resources.display import DisplayPasswordProvider
    prop = DisplayPasswordProvider.PROPS["valid_for_s"]
    assert prop.kind is Seconds
    assert [prop.validate(v) for v in (0, -5, 30 * 86400)] == \
        ["must be a positive number of seconds", "must be a positive number of seconds", None]


def test_a_part_known_only_after_apply_is_judged_once_known_and_the_rest_now():
    from components.resources.container import ContainerProvider
    from components.resources.provider import UNKNOWN
    mounts = ContainerProvider.PROPS["mounts"]
    assert mounts.validate([{"source": UNKNOWN, "target": "/srv"}]) is None
    assert mounts.validate([{"source": UNKNOWN, "target": "srv"}]) == \
        "[0].target: 'srv' must be an absolute directory inside the container, not '/'"
