"""Bridge-mode and dual-stack networks: the provider on libvirt's test driver, the config, the program."""
from __future__ import annotations

import subprocess

import copy

import pulumi
import pytest

from components import xmlmodel
from components.config.resolve import parse
from components.errors import InputError, VdeskError
from components.host.resolve import ResolvedHost
from components.resources.network import NetworkProvider
from tests.support.providers import checked

URI = "test:///default"


@pytest.fixture
def host_bridge(conn):
    """A bridge on the test driver's host, as its interface driver reports one."""
    iface = conn.interfaceDefineXML("<interface type='bridge' name='br-unit'><bridge stp='off'/></interface>")
    iface.create(0)
    yield "br-unit"
    iface.destroy(0)
    iface.undefine()


def failures(props):
    return [(f.property, f.reason) for f in NetworkProvider().check({}, {"host_uri": URI, **props}).failures]


def live(conn, name):
    return xmlmodel.Network.from_xml(conn.networkLookupByName(name).XMLDesc(0))


def gone(conn, name):
    return name not in conn.listNetworks() + conn.listDefinedNetworks()


# --- bridge mode ---------------------------------------------------------------------------------------


def test_bridge_network_attaches_to_the_host_bridge_and_reads_back_without_diff(conn, host_bridge):
    np_ = NetworkProvider()
    props = checked(np_, {"host_uri": URI, "name": "unit-br", "mode": "bridge", "bridge": host_bridge,
                          "cidr": "192.168.60.0/24"})
    assert props["dhcp"] is False   # the LAN's DHCP, not vdesk's
    created = np_.create(props)
    try:
        net = live(conn, "unit-br")
        assert (net.forward_mode, net.bridge_name, net.ips, net.dns_hosts, net.domain_name) == \
            ("bridge", "br-unit", [], [], None)
        assert created.outs["bridge_name"] == "br-unit" and created.outs["gateway"] is None
        assert np_.diff(created.id, np_.read(created.id, created.outs).outs, props).changes is False
    finally:
        np_.delete(created.id, created.outs)
    assert gone(conn, "unit-br")


def test_bridge_network_without_cidr_skips_the_overlap_check(conn, host_bridge):
    np_ = NetworkProvider()
    nat = np_.create(checked(np_, {"host_uri": URI, "name": "unit-nat", "cidr": "10.94.0.0/24"}))
    bridged = np_.create(checked(np_, {"host_uri": URI, "name": "unit-br", "mode": "bridge", "bridge": host_bridge}))
    try:
        assert live(conn, "unit-br").ips == []
        with pytest.raises(VdeskError, match=r"cidr 10.94.0.0/16 overlaps 10.94.0.0/24 of existing network"):
            np_.create(checked(np_, {"host_uri": URI, "name": "unit-br2", "mode": "bridge", "bridge": host_bridge,
                                     "cidr": "10.94.0.0/16"}))
    finally:
        np_.delete(bridged.id, bridged.outs)
        np_.delete(nat.id, nat.outs)
    assert gone(conn, "unit-br2")


def test_a_missing_host_bridge_fails_the_create_naming_bridge_and_host(conn):
    np_ = NetworkProvider()
    props = checked(np_, {"host_uri": URI, "name": "unit-br", "mode": "bridge", "bridge": "nosuchbr0"})
    with pytest.raises(VdeskError, match=r"network 'unit-br': bridge 'nosuchbr0' does not exist on host "
                                         r"test:///default: create it first"):
        np_.create(props)
    assert gone(conn, "unit-br")


def test_an_interface_that_is_no_bridge_is_refused(conn):
    np_ = NetworkProvider()
    props = checked(np_, {"host_uri": URI, "name": "unit-br", "mode": "bridge", "bridge": "eth1"})
    with pytest.raises(VdeskError, match=r"'eth1' on host test:///default is not a bridge \(its type is ethernet\)"):
        np_.create(props)
    assert gone(conn, "unit-br")


def test_bridge_mode_refuses_what_only_vdesk_networks_have():
    assert failures({"name": "b", "mode": "bridge", "dhcp": True, "domain": "lan", "mtu": 9000,
                     "dhcp_hosts": [{"mac": "52:54:00:00:00:01", "ip": "192.168.1.5"}],
                     "dns_hosts": [{"ip": "192.168.1.5", "hostnames": ["x"]}]}) == [
        ("bridge", "bridge is required in bridge mode: the name of an existing host bridge, e.g. br0"),
        ("dhcp", "dhcp: a bridge network's addresses come from the LAN, not from vdesk"),
        ("dhcp_hosts", "dhcp_hosts: a bridge network has no DHCP of vdesk's; reserve addresses on the LAN's "
                       "DHCP server"),
        ("dns_hosts", "dns_hosts: a bridge network has no DNS of vdesk's; add records on the LAN's DNS server"),
        ("domain", "domain: a bridge network has no DNS of vdesk's; the LAN's DNS server serves its domain"),
        ("mtu", "mtu: a bridge network uses the host bridge's MTU; set it on the host"),
    ]
    assert failures({"name": "b", "mode": "bridge", "bridge": "br 0"}) == [
        ("bridge", "bridge: a Linux interface name: 1-15 characters, no spaces, '/' or ':'")]


def test_cidr_is_required_except_in_bridge_mode():
    assert failures({"name": "n", "mode": "nat"}) == [("cidr", "cidr is required (except in bridge mode)")]
    assert failures({"name": "b", "mode": "bridge", "bridge": "br0"}) == []


def test_a_custom_bridge_name_still_works_for_nat(conn):
    np_ = NetworkProvider()
    created = np_.create(checked(np_, {"host_uri": URI, "name": "unit-nat", "cidr": "10.95.0.0/24",
                                       "bridge": "vdcustom0"}))
    try:
        assert live(conn, "unit-nat").bridge_name == "vdcustom0"
    finally:
        np_.delete(created.id, created.outs)


# --- dual stack ----------------------------------------------------------------------------------------


def test_dual_stack_network_has_both_gateways_and_dhcp_ranges(conn):
    np_ = NetworkProvider()
    props = checked(np_, {"host_uri": URI, "name": "unit-ds", "cidr": "10.93.0.0/24", "cidr6": "FD00:0093::/64"})
    assert props["cidr6"] == "fd00:93::/64"   # libvirt's spelling, so a refresh matches
    created = np_.create(props)
    try:
        v4, v6 = live(conn, "unit-ds").ips
        assert (v4.address, v4.prefix, v4.family) == ("10.93.0.1", 24, None)
        assert (v6.address, v6.prefix, v6.family) == ("fd00:93::1", 64, "ipv6")
        assert [(r.start, r.end) for r in v4.dhcp_ranges] == [("10.93.0.2", "10.93.0.254")]
        # libvirt refuses ranges over 65535 addresses: a /64 gets the first 65534 after the gateway
        assert [(r.start, r.end) for r in v6.dhcp_ranges] == [("fd00:93::2", "fd00:93::ffff")]
        assert (created.outs["gateway"], created.outs["gateway6"]) == ("10.93.0.1", "fd00:93::1")
        assert np_.diff(created.id, np_.read(created.id, created.outs).outs, props).changes is False
    finally:
        np_.delete(created.id, created.outs)
    assert gone(conn, "unit-ds")


def test_dual_stack_without_dhcp_has_no_ranges(conn):
    np_ = NetworkProvider()
    props = checked(np_, {"host_uri": URI, "name": "unit-ds", "cidr": "10.93.0.0/24", "cidr6": "fd00:93::/64",
                          "dhcp": False})
    created = np_.create(props)
    try:
        assert [ip.dhcp_ranges for ip in live(conn, "unit-ds").ips] == [[], []]
        assert np_.diff(created.id, np_.read(created.id, created.outs).outs, props).changes is False
    finally:
        np_.delete(created.id, created.outs)


def test_overlapping_ipv6_prefixes_are_refused_at_create(conn):
    np_ = NetworkProvider()
    first = np_.create(checked(np_, {"host_uri": URI, "name": "unit-ds", "cidr": "10.93.0.0/24",
                                     "cidr6": "fd00:93::/64"}))
    try:
        with pytest.raises(VdeskError, match=r"network 'unit-ds2': cidr6 fd00:93::/48 overlaps fd00:93::/64 of "
                                             r"existing network 'unit-ds'"):
            np_.create(checked(np_, {"host_uri": URI, "name": "unit-ds2", "cidr": "10.96.0.0/24",
                                     "cidr6": "fd00:93::/48"}))
    finally:
        np_.delete(first.id, first.outs)
    assert gone(conn, "unit-ds2")


def test_a_dropped_ipv6_half_shows_as_drift(conn):
    np_ = NetworkProvider()
    props = checked(np_, {"host_uri": URI, "name": "unit-ds", "cidr": "10.93.0.0/24", "cidr6": "fd00:93::/64"})
    created = np_.create(props)
    try:
        net = conn.networkLookupByName("unit-ds")
        model = xmlmodel.Network.from_xml(net.XMLDesc(0))
        model.ips = model.ips[:1]
        net.destroy()
        conn.networkDefineXML(model.to_xml()).create()   # changed behind vdesk's back
        refreshed = np_.read(created.id, created.outs).outs
        assert (refreshed["cidr6"], refreshed["gateway6"]) == (None, None)
        assert np_.diff(created.id, refreshed, props).replaces == ["cidr6"]
    finally:
        np_.delete(created.id, created.outs)


def test_reservations_stay_on_the_ipv4_half_when_updated_live(conn):
    np_ = NetworkProvider()
    props = checked(np_, {"host_uri": URI, "name": "unit-ds", "cidr": "10.93.0.0/24", "cidr6": "fd00:93::/64"})
    created = np_.create(props)
    try:
        news = checked(np_, dict(props, dhcp_hosts=[{"mac": "52:54:00:93:00:01", "ip": "10.93.0.9"}]))
        updated = np_.update(created.id, created.outs, news)
        v4, v6 = live(conn, "unit-ds").ips
        assert ([h.ip for h in v4.dhcp_hosts], v6.dhcp_hosts) == (["10.93.0.9"], [])
        assert np_.diff(created.id, updated.outs, news).changes is False
    finally:
        np_.delete(created.id, created.outs)


def test_dual_stack_check_names_the_bad_field():
    assert failures({"name": "d", "cidr": "10.93.0.0/24", "cidr6": "10.97.0.0/24"}) == [
        ("cidr6", "cidr6: '10.97.0.0/24' is not an IPv6 prefix (cidr6 is the IPv6 half of a dual-stack network)")]
    assert failures({"name": "d", "cidr": "fd00:1::/64", "cidr6": "fd00:2::/64"}) == [
        ("cidr", "cidr: fd00:1::/64 must be IPv4 when cidr6 gives the IPv6 prefix")]
    assert failures({"name": "d", "cidr": "10.93.0.0/24", "cidr6": "fd00:2::/127"}) == [
        ("cidr6", "cidr6: 'fd00:2::/127' is too small for a DHCP network (use /125 or larger)")]
    assert failures({"name": "d", "cidr": "10.93.0.0/24", "cidr6": "fd00:2::/64",
                     "dhcp_hosts": [{"mac": "52:54:00:00:00:01", "ip": "fd00:2::9"}]}) == [
        ("dhcp_hosts", "dhcp_hosts: [0].ip: 'fd00:2::9' is not an IPv4 address")]   # (libvirt reserves by MAC
    #                                                                               for IPv4 only: DhcpHost's ip)


# --- configuration -------------------------------------------------------------------------------------

BASE = {
    "hosts": {"local": {"uri": "embedded", "accelerator": "tcg"}},
    "pools": {"main": {"host": "local"}},
    "networks": {"lan": {"host": "local", "cidr": "10.77.0.0/24"},
                 "office": {"host": "local", "mode": "bridge", "bridge": "br0", "cidr": "192.168.1.0/24"},
                 "both": {"host": "local", "cidr": "10.78.0.0/24", "cidr6": "fd00:78::/64"}},
    "images": {"debian12": {"golden": "debian12"}},
    "desktops": {"kiosk": {"pool": "main", "network": "office", "image": "debian12", "users": [{"name": "kiosk"}]}},
}


def net(name, **values):
    return lambda c: c["networks"][name].update(values)


def drop(name, key):
    return lambda c: c["networks"][name].pop(key)


def test_bridge_and_dual_stack_networks_parse():
    cfg = parse(copy.deepcopy(BASE), stack="unit")
    office, both = cfg.networks["office"], cfg.networks["both"]
    assert (office.mode, office.bridge, office.dhcp, office.address_sources) == ("bridge", "br0", False, ("agent",))
    assert (both.cidr, both.cidr6, both.address_sources) == ("10.78.0.0/24", "fd00:78::/64", ("lease", "agent"))


def test_bridge_network_without_cidr_takes_part_in_no_overlap_check():
    raw = copy.deepcopy(BASE)
    raw["networks"]["office"].pop("cidr")
    raw["networks"]["hall"] = {"host": "local", "mode": "bridge", "bridge": "br1", "address_sources": ["arp"]}
    cfg = parse(raw, stack="unit")
    assert cfg.networks["office"].cidr is None and cfg.networks["hall"].address_sources == ("arp",)


def test_a_static_address_on_a_bridge_network_uses_its_declared_lan():
    raw = copy.deepcopy(BASE)
    raw["desktops"]["kiosk"]["address"] = "192.168.1.50"
    kiosk = parse(raw, stack="unit").desktops["kiosk"]
    assert (kiosk.address, kiosk.gateway) == ("192.168.1.50/24", "192.168.1.1")


def _static_on_lanless_bridge(c):
    c["networks"]["office"].pop("cidr")
    c["desktops"]["kiosk"]["address"] = "192.168.1.50"


NOT_A_NAME = "is not a Linux interface name (1-15 characters, no spaces, '/' or ':')"
# (id, change, exact problems), as in test_config_corpus.py
CASES = [
    ("bridge-mode-without-bridge", drop("office", "bridge"),
     [("networks.office.bridge", "is required with mode: bridge: the name of an existing bridge on the host, "
                                 "e.g. br0")]),
    ("bridge-name-too-long", net("office", bridge="a-very-long-bridge"),
     [("networks.office.bridge", f"'a-very-long-bridge' {NOT_A_NAME}")]),
    ("bridge-for-a-nat-network", net("lan", bridge="br0"),
     [("networks.lan.bridge", "is only for mode: bridge (the existing host bridge to attach to); other modes get "
                              "a bridge of their own")]),
    ("bridge-with-dhcp", net("office", dhcp=True),
     [("networks.office.dhcp", "a bridge network's addresses come from the LAN, not from vdesk: remove dhcp")]),
    ("bridge-with-dhcp-hosts", net("office", dhcp_hosts=[{"mac": "52:54:00:00:00:01", "ip": "192.168.1.9"}]),
     [("networks.office.dhcp_hosts", "a bridge network has no DHCP of vdesk's: reserve addresses on the LAN's "
                                     "DHCP server")]),
    ("bridge-with-dns-hosts", net("office", dns_hosts=[{"ip": "192.168.1.9", "hostnames": ["files"]}]),
     [("networks.office.dns_hosts", "a bridge network has no DNS of vdesk's: add records on the LAN's DNS server")]),
    ("bridge-with-domain", net("office", domain="office.lan"),
     [("networks.office.domain", "a bridge network has no DNS of vdesk's: the LAN's DNS server serves its domain")]),
    ("bridge-with-mtu", net("office", mtu=9000),
     [("networks.office.mtu", "unknown setting (allowed: host, hosts, cidr, cidr6, mode, bridge, dhcp, dhcp_range, "
                              "domain, dhcp_hosts, dns_hosts, address_sources, adopt, keep_on_destroy)")]),
    ("bridge-reading-leases", net("office", address_sources=["lease", "agent"]),
     [("networks.office.address_sources", "'lease' is not available on a bridge network: the LAN's DHCP server "
                                          "keeps its leases (use agent or arp)")]),
    ("bridge-overlapping-a-nat-network", net("office", cidr="10.77.0.0/16"),
     [("networks.office.cidr", "10.77.0.0/16 overlaps networks.lan (10.77.0.0/24) on host 'local'")]),
    ("static-address-on-a-bridge-without-cidr", _static_on_lanless_bridge,
     [("desktops.kiosk.address", "network 'office' declares no cidr: give networks.office.cidr (its LAN) to place "
                                 "a static address on it")]),
    ("nat-without-cidr", drop("lan", "cidr"),
     [("networks.lan.cidr", "is required, e.g. 10.77.0.0/24")]),
    ("cidr6-not-ipv6", net("both", cidr6="10.79.0.0/24"),
     [("networks.both.cidr6", "'10.79.0.0/24' is not an IPv6 prefix (cidr6 is the IPv6 half of a dual-stack "
                              "network)")]),
    ("cidr6-not-a-prefix", net("both", cidr6="fd00:78::1/64"),
     [("networks.both.cidr6", "'fd00:78::1/64' is not a network in CIDR form (fd00:78::1/64 has host bits set)")]),
    ("cidr6-too-small", net("both", cidr6="fd00:78::/127"),
     [("networks.both.cidr6", "'fd00:78::/127' is too small for a DHCP network (use /125 or larger)")]),
    ("cidr6-beside-an-ipv6-cidr", net("both", cidr="fd00:77::/64"),
     [("networks.both.cidr", "'fd00:77::/64' must be IPv4 when cidr6 gives the IPv6 prefix")]),
    ("cidr6-overlapping", lambda c: c["networks"].__setitem__(
        "more", {"host": "local", "cidr": "10.80.0.0/24", "cidr6": "fd00:78::/48"}),
     [("networks.more.cidr6", "fd00:78::/48 overlaps networks.both (fd00:78::/64) on host 'local'")]),
]


@pytest.mark.parametrize("change,problems", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_network_configuration_produces_exactly_these_problems(change, problems):
    raw = copy.deepcopy(BASE)
    change(raw)
    with pytest.raises(InputError) as err:
        parse(raw, stack="unit")
    assert err.value.problems == problems


# --- the program ---------------------------------------------------------------------------------------


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self):
        self.inputs = {}

    def new_resource(self, args):
        self.inputs[args.name] = dict(args.inputs)
        outs = dict(args.inputs, uuid=f"uuid-{args.name}", ip="192.168.1.50", state="running", sha256="0" * 64)
        if "pool" in outs and "name" in outs:
            outs["path"] = f"/pools/{outs['pool']}/{outs['name']}"
        if "login_comment" in outs:
            from components.guest.keys import generate_ed25519
            for part in ("login", "host"):
                pair = generate_ed25519(outs[f"{part}_comment"])
                outs.update({f"{part}_public_key": pair.public_openssh, f"{part}_private_key": pair.private_openssh})
        return f"{args.name}-id", outs

    def call(self, args):
        return {}


@pytest.fixture
def mocks(monkeypatch):
    m = _Mocks()
    pulumi.runtime.set_mocks(m, project="vdesk", stack="unit", preview=False)
    monkeypatch.setattr("components.config.loader.resolve_host", lambda h, probe_kernel: ResolvedHost(
        h.name, URI, "/run/netns/vdesk-unit", "qemu", "tcg requested explicitly", "/pools", "/displays"))
    return m


@pulumi.runtime.test
def test_the_program_passes_bridge_and_dual_stack_settings(mocks, tmp_path):
    from components.config.loader import declare
    image = tmp_path / "own.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    raw = copy.deepcopy(BASE)
    raw["images"] = {"debian12": {"path": str(image), "boot": "bios"}}
    outputs = declare("unit", raw)

    def check(_):
        office, both, lan = (mocks.inputs[f"network-{n}"] for n in ("office", "both", "lan"))
        assert (office["mode"], office["bridge"], office["dhcp"], office["netns"]) == \
            ("bridge", "br0", False, "/run/netns/vdesk-unit")
        assert (both["cidr6"], both.get("netns")) == ("fd00:78::/64", None)   # unset inputs are left out
        assert lan.get("netns") is None and lan.get("cidr6") is None
        assert mocks.inputs["kiosk-ready"]["address_sources"] == ["agent"]   # no leases to read on a LAN

    return pulumi.Output.from_input(outputs).apply(check)


@pytest.mark.parametrize("entry,path,message", [
    ({"dhcp_range": {"start": "10.97.0.50", "end": "10.97.0.20"}}, "networks.lan.dhcp_range",
     "start 10.97.0.50 is after end 10.97.0.20"),
    ({"dhcp_range": {"start": "10.97.0.1", "end": "10.97.0.20"}}, "networks.lan.dhcp_range.start",
     "10.97.0.1 is not a host address of 10.97.0.0/24 other than the gateway 10.97.0.1"),
    ({"dhcp_range": {"start": "10.97.0.10", "end": "10.98.0.20"}}, "networks.lan.dhcp_range.end",
     "10.98.0.20 is not a host address of 10.97.0.0/24 other than the gateway 10.97.0.1"),
    ({"dhcp_range": "10.97.0.10-20"}, "networks.lan.dhcp_range", "must be {start, end}, two IPv4 addresses"),
    ({"dhcp": False, "dhcp_range": {"start": "10.97.0.10", "end": "10.97.0.20"}}, "networks.lan.dhcp_range",
     "needs dhcp: true"),
])
def test_a_bad_dhcp_range_is_named(entry, path, message):
    from components.config.resolve import parse
    from components.errors import InputError
    raw = {"hosts": {"local": {}}, "networks": {"lan": {"host": "local", "cidr": "10.97.0.0/24", **entry}}}
    with pytest.raises(InputError) as err:
        parse(raw, stack="dev")
    assert (path, message) in err.value.problems


def test_a_dhcp_range_reaches_the_network_and_reads_back_without_diff(conn):
    np_ = NetworkProvider()
    props = np_.check({}, {"host_uri": URI, "name": "unit-range", "cidr": "10.97.0.0/24",
                           "dhcp_range": {"start": "10.97.0.100", "end": "10.97.0.120"}}).inputs
    created = np_.create(props)
    try:
        live = xmlmodel.Network.from_xml(conn.networkLookupByName("unit-range").XMLDesc(0))
        assert [(r.start, r.end) for r in live.ips[0].dhcp_ranges] == [("10.97.0.100", "10.97.0.120")]
        assert np_.diff(created.id, np_.read(created.id, created.outs).outs, props).changes is False
        bad = np_.check({}, dict(props, name="x", dhcp_range={"start": "10.97.1.5", "end": "10.97.1.9"})).failures
        assert [f.property for f in bad] == ["dhcp_range", "dhcp_range"]
    finally:
        np_.delete(created.id, created.outs)
