"""`make plan`: a host's quota record that changes only by the desktops the plan makes or removes is part of
their change; a change of quotas, or of whom a kept desktop is for, is a line of its own."""
from components.cli.plan import render, summarize

URN = "urn:pulumi:team::vdesk::"
DESK = "vdesk:index:Desktop"
DYNAMIC = "pulumi-python:dynamic:Resource"
ANN, BOB = {"users": ["ann"], "groups": []}, {"users": ["bob"], "groups": []}
NO_QUOTAS = {"users": {}, "groups": {}}


def _record(desktops_was, desktops_now, quotas_was=NO_QUOTAS, quotas_now=NO_QUOTAS):
    common = {"lifecycle_dir": "/state/hosts/local/lifecycle", "stack": "team"}
    return {"op": "update", "urn": f"{URN}{DYNAMIC}::quotas-local", "diffReasons": ["desktops"],
            "oldState": {"outputs": {**common, "quotas": quotas_was, "desktops": desktops_was}},
            "newState": {"inputs": {**common, "quotas": quotas_now, "desktops": desktops_now}}}


def _desktop(op, name):
    state = "newState" if op == "create" else "oldState"
    return [{"op": op, "urn": f"{URN}{DESK}::{name}", state: {"inputs": {}}},
            {"op": op, "urn": f"{URN}{DESK}${DYNAMIC}::{name}-vm",
             state: {"inputs": {"name": f"team-{name}"}, "parent": f"{URN}{DESK}::{name}"}}]


def test_a_new_desktops_entry_is_part_of_its_create():
    plan = {"steps": [*_desktop("create", "bob"), _record({"team-ann": ANN}, {"team-ann": ANN, "team-bob": BOB})]}
    assert render("team", summarize(plan)).splitlines() == ["plan for stack team:",
                                                            "  create   desktop bob (2 resource(s))"]


def test_a_removed_desktops_entry_is_part_of_its_delete():
    plan = {"steps": [*_desktop("delete", "bob"), _record({"team-ann": ANN, "team-bob": BOB}, {"team-ann": ANN})]}
    assert render("team", summarize(plan)).splitlines() == ["plan for stack team:",
                                                            "  delete   desktop bob (2 resource(s))"]


def test_a_change_of_quotas_or_of_a_kept_desktops_people_is_shown():
    quotas = {"users": {"ann": {"desktops": 1}}, "groups": {}}
    plan = {"steps": [_record({"team-ann": ANN}, {"team-ann": ANN}, quotas_now=quotas)]}
    assert "  update   resource quotas-local ((itself): desktops)" in render("team", summarize(plan))
    plan = {"steps": [*_desktop("create", "bob"),
                      _record({"team-ann": ANN}, {"team-ann": {"users": ["ann"], "groups": ["adm"]},
                                                  "team-bob": BOB})]}
    assert render("team", summarize(plan)).splitlines() == [
        "plan for stack team:", "  create   desktop bob (2 resource(s))",
        "  update   resource quotas-local ((itself): desktops)"]
