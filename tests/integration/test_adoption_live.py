"""Adoption on the project's own libvirtd, through `pulumi up`.

The case users hit: the Pulumi state is lost (a deleted backend, a new CI
runner) while the desktops still exist. The creation journal on the machine
that made them proves they are the stack's own, and they are taken back; with
no journal (a new runner) and no `adopt`, vdesk refuses, naming the object; with it, the next `up` takes every object over - same UUIDs and
volume keys, no duplicates, the disk's data kept - and applies the declared
changes in place. A network made by hand is adopted under its own name and
left in place by destroy (`keep_on_destroy`). Desktops are declared stopped:
this is about libvirt objects, not boots.
"""
from __future__ import annotations

import copy
import shutil

import libvirt
import pytest
from pulumi import automation as auto

from components.host import embedded
from components import xmlmodel
from tests.support.host import inventory
from tests.support.project import isolated_env, lose_state, make_project, open_stack, rewrite_config, stack_config

pytestmark = pytest.mark.integration
STACK = "adopt"


def adopt_config(pool_path: str, *, adopt: bool) -> dict:
    cfg = copy.deepcopy(stack_config("ci"))
    cfg["vdesk:pools"]["main"]["path"] = pool_path  # declared: adopting a pool means stating its directory
    cfg["vdesk:networks"]["lan"]["cidr"] = "10.83.0.0/24"
    cfg["vdesk:networks"]["handmade"] = {"host": "local", "cidr": "10.84.0.0/24", "adopt": "handmade",
                                         "keep_on_destroy": True,
                                         "dns_hosts": [{"ip": "10.84.0.7", "hostnames": ["files"]}]}
    desk = cfg["vdesk:desktops"]["ci"]
    desk.update(running=False, adopt=adopt)
    desk.pop("checks")
    if adopt:
        cfg["vdesk:pools"]["main"]["adopt"] = True
        cfg["vdesk:networks"]["lan"]["adopt"] = True
    return cfg


def handmade_network(uri: str) -> str:
    conn = libvirt.open(uri)
    try:
        net = conn.networkDefineXML(xmlmodel.Network(
            name="handmade", bridge_name="vd-handmade", forward_mode="nat",
            ips=[xmlmodel.IP(address="10.84.0.1", prefix=24,
                             dhcp_ranges=[xmlmodel.DhcpRange(start="10.84.0.2", end="10.84.0.254")])]).to_xml())
        net.create()
        return net.UUIDString()
    finally:
        conn.close()


def test_a_lost_state_is_recovered_by_adoption_and_a_handmade_network_is_kept(tmp_path):
    state = tmp_path / "state"
    pool_path = str(state / "hosts" / "local" / "pools" / "adopt-main")
    project = make_project(tmp_path / "project", STACK, adopt_config(pool_path, adopt=False))
    host = embedded.embedded_host("local", state_root=state)
    embedded.ensure_running(host)
    handmade = handmade_network(host.uri)
    stack = open_stack(project, STACK, isolated_env(state))
    try:
        # 1. An ordinary first up, which takes the hand-made network over by its name.
        assert stack.up(parallel=16).summary.result == "succeeded"
        before = inventory(host.uri)
        assert before["networks"]["handmade"] == handmade, "adopted by name, not recreated"
        disk = next(v for v in before["volumes"] if v == "adopt-ci.qcow2")
        conn = libvirt.open(host.uri)
        live = xmlmodel.Network.from_xml(conn.networkLookupByName("handmade").XMLDesc(0))
        assert [h.ip for h in live.dns_hosts] == ["10.84.0.7"], "declared record applied to the adopted network"
        conn.close()

        # 2. The state is lost; the objects are not. While this machine's creation journal
        #    survives (a deleted backend), it proves the objects are this stack's own: the
        #    next up takes them back without `adopt`, in place.
        lose_state(stack)
        assert stack.up(parallel=16).summary.result == "succeeded"
        assert inventory(host.uri) == before, "taken back from the journal: same objects, nothing added"
        #    On a new runner the journal is gone too: then vdesk refuses, naming the object.
        lose_state(stack)
        shutil.rmtree(state / "journal" / STACK)
        with pytest.raises(auto.CommandError) as refused:
            stack.up(parallel=16)
        assert "already exists" in str(refused.value) and "set adopt: true" in str(refused.value)
        assert inventory(host.uri) == before, "a refused up must not lose or add anything"

        # 3. A mismatch in a property adoption cannot change is named at preview; nothing is touched.
        cfg = adopt_config(pool_path, adopt=True)
        wrong = copy.deepcopy(cfg)
        wrong["vdesk:networks"]["lan"]["cidr"] = "10.85.0.0/24"
        rewrite_config(project, STACK, wrong)
        with pytest.raises(auto.CommandError) as mismatch:
            stack.preview()
        assert "cidr: the existing 'adopt-lan' has '10.83.0.0/24', declared '10.85.0.0/24'" in str(mismatch.value)
        assert inventory(host.uri) == before

        # 4. adopt: true (with a memory change) takes everything over in place.
        cfg["vdesk:desktops"]["ci"]["memory"] = "1GiB"
        rewrite_config(project, STACK, cfg)
        result = stack.up(parallel=16)
        assert result.summary.result == "succeeded"
        assert inventory(host.uri) == before, "same objects, same UUIDs and keys, nothing duplicated"
        assert disk in inventory(host.uri)["volumes"]
        conn = libvirt.open(host.uri)
        dom = xmlmodel.Domain.from_xml(conn.lookupByName("adopt-ci").XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        conn.close()
        assert dom.memory_kib == 1024 * 1024, "the declared change applied to the adopted domain"
        again = stack.preview()
        assert set(again.change_summary) == {"same"}, again.change_summary

        # 5. Destroy removes what vdesk owns, and keeps what it was told to keep.
        stack.destroy(parallel=16)
        after = inventory(host.uri)
        assert after["domains"] == {} and after["pools"] == {} and after["volumes"] == {}
        assert after["networks"] == {"handmade": handmade}
    finally:
        stack.destroy()
        embedded.stop(host, purge=True)
