"""`make plan` shows a create that takes over an existing object as an adoption, naming each object."""
from components.cli.plan import render, summarize
from components.resources.network import NetworkProvider
from components.resources.provider import ADOPTING

URN = "urn:pulumi:team::vdesk::"


def _step(op, name, kind="pulumi-python:dynamic:Resource", parent=None, **inputs):
    return {"op": op, "urn": f"{URN}{kind}::{name}", "newState": {"inputs": inputs, "parent": parent}}


def test_an_adopting_create_is_shown_as_an_adoption_and_a_plain_create_as_a_create():
    desk = f"{URN}vdesk:index:Desktop::ann"
    plan = {"steps": [
        _step("create", "ann", kind="vdesk:index:Desktop"),
        _step("create", "ann-vm", parent=desk, **{ADOPTING: True, "adopt": True}),
        _step("create", "ann-disk", parent=desk, **{ADOPTING: True, "adopt": True}),
        _step("create", "ann-ready", parent=desk),
        _step("create", "network-lan", adopt=True),      # adopt: true, but nothing exists: it is made
    ]}
    assert render("team", summarize(plan)).splitlines() == [
        "plan for stack team:",
        "  adopt    desktop ann (takes over the existing ann-disk, ann-vm)",
        "  create   desktop ann (2 resource(s))",
        "  create   resource network-lan (1 resource(s))",
    ]


def test_check_marks_only_a_create_that_finds_the_object(conn):
    np_ = NetworkProvider()
    found = np_.check({}, {"host_uri": "test:///default", "name": "default", "cidr": "192.168.122.0/24",
                           "adopt": True})
    assert found.failures == [] and found.inputs[ADOPTING] is True
    fresh = np_.check({}, {"host_uri": "test:///default", "name": "plan-new", "cidr": "10.57.0.0/24", "adopt": True})
    assert ADOPTING not in fresh.inputs
