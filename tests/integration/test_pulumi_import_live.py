"""`pulumi import` of objects made by hand, on the project's own libvirtd.

The CLI imports a hand-made pool and network by vdesk import id; the
program's next `up` then owns them: no create, no replace, the same UUIDs,
and the declared DNS record applied in place. Destroy removes them.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess

import libvirt
import pytest

from components.host import embedded
from components import xmlmodel
from components.resources import journal
from tests.support.host import inventory
from tests.support.project import isolated_env, make_project, open_stack, stack_config

pytestmark = pytest.mark.integration
STACK = "imp"


def import_config() -> dict:
    cfg = copy.deepcopy(stack_config("ci"))
    del cfg["vdesk:desktops"]
    cfg["vdesk:networks"]["lan"].update(cidr="10.87.0.0/24", dns_hosts=[{"ip": "10.87.0.9", "hostnames": ["files"]}])
    return cfg


def made_by_hand(uri: str, pool_path: str) -> dict[str, str]:
    conn = libvirt.open(uri)
    try:
        pool = conn.storagePoolDefineXML(xmlmodel.Pool(type="dir", name="imp-main", target_path=pool_path).to_xml(), 0)
        pool.build(0)
        pool.create(0)
        net = conn.networkDefineXML(xmlmodel.Network(
            name="imp-lan", bridge_name="vd-imp-lan", forward_mode="nat",
            ips=[xmlmodel.IP(address="10.87.0.1", prefix=24,
                             dhcp_ranges=[xmlmodel.DhcpRange(start="10.87.0.2", end="10.87.0.254")])]).to_xml())
        net.create()
        return {"pool": pool.UUIDString(), "network": net.UUIDString()}
    finally:
        conn.close()


def test_pulumi_import_takes_hand_made_objects_over(tmp_path):
    state = tmp_path / "state"
    env = isolated_env(state)
    project = make_project(tmp_path / "project", STACK, import_config())
    host = embedded.embedded_host("local", state_root=state)
    embedded.ensure_running(host)
    made = made_by_hand(host.uri, str(state / "hosts" / "local" / "pools" / "imp-main"))
    stack = open_stack(project, STACK, env)
    try:
        plan = tmp_path / "import.json"
        plan.write_text(json.dumps({"resources": [
            {"type": "pulumi-python:dynamic:Resource", "name": "pool-main", "id": f"vdesk:pool:imp-main@{host.uri}"},
            {"type": "pulumi-python:dynamic:Resource", "name": "network-lan",
             "id": f"vdesk:network:imp-lan@{host.uri}"},
        ]}))
        def pulumi_import():
            return subprocess.run(["pulumi", "import", "--file", str(plan), "--stack", STACK, "--yes",
                                   "--generate-code=false", "--protect=false", "--non-interactive"],
                                  cwd=project, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)

        # The pool made by another stack's run (its journal says so): importing it would take it over.
        os.environ["VDESK_STATE"], was = str(state), os.environ.get("VDESK_STATE")
        try:
            journal.note("team-a", "pool", host.uri, "imp-main", journal.CREATED)
            refused = pulumi_import()
            journal.forget("team-a", "pool", host.uri, "imp-main")
        finally:
            os.environ.pop("VDESK_STATE") if was is None else os.environ.update(VDESK_STATE=was)
        assert refused.returncode != 0
        assert "pool 'imp-main' belongs to stack 'team-a'" in refused.stdout + refused.stderr, refused.stdout
        assert not [r for r in stack.export_stack().deployment.get("resources") or ()
                    if r["type"] == "pulumi-python:dynamic:Resource"]
        done = pulumi_import()
        assert done.returncode == 0, done.stdout + done.stderr
        imported = {r["urn"].rsplit("::", 1)[1]: r["id"] for r in stack.export_stack().deployment["resources"]
                    if r["type"] == "pulumi-python:dynamic:Resource"}
        assert imported == {"pool-main": made["pool"], "network-lan": made["network"]}

        steps: list[tuple[str, str, str]] = []

        def step(event):
            if event.resource_pre_event is not None:
                meta = event.resource_pre_event.metadata
                steps.append((str(getattr(meta.op, "value", meta.op)), meta.type, meta.urn.rsplit("::", 1)[1]))
        stack.up(parallel=8, on_event=step)
        # Nothing that owns a libvirt object is created or replaced; only the image component, which owns
        # nothing here (no desktop imports it into a pool), is new.
        made_new = [(op, name) for op, typ, name in steps if op in ("create", "replace", "create-replacement")]
        assert made_new == [("create", "image-debian12")], steps
        found = inventory(host.uri)
        assert (found["pools"], found["networks"]) == ({"imp-main": made["pool"]}, {"imp-lan": made["network"]})
        conn = libvirt.open(host.uri)
        live = xmlmodel.Network.from_xml(conn.networkLookupByName("imp-lan").XMLDesc(0))
        conn.close()
        assert [h.ip for h in live.dns_hosts] == ["10.87.0.9"], "the declared record applied to the imported network"
        assert set(stack.preview().change_summary) == {"same"}

        stack.destroy(parallel=8)
        found = inventory(host.uri)
        assert (found["pools"], found["networks"]) == ({}, {})
    finally:
        stack.destroy()
        embedded.stop(host, purge=True)
