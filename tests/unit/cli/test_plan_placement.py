"""`make plan` repeats what the preview said about where desktops live."""
from components.cli.plan import placement


def test_placement_lines_moves_and_unreachable_hosts_are_listed_once():
    plan = {"diagnostics": [
        {"severity": "info", "message": "placement: desktop ann on host a (placed by capacity; its hosts: a, b)\n"},
        {"severity": "warning", "message": "placement: desktop ben moves from host b to host a (b is no longer one "
                                           "of its hosts); it is made again there, with the same keys"},
        {"severity": "warning", "message": "host b (qemu+ssh://root@b/system) cannot be reached: refused."},
        {"severity": "info", "message": "placement: desktop ann on host a (placed by capacity; its hosts: a, b)"},
        {"severity": "info", "message": "something else"},
    ]}
    assert placement(plan) == [
        "placement: desktop ann on host a (placed by capacity; its hosts: a, b)",
        "warning: placement: desktop ben moves from host b to host a (b is no longer one of its hosts); it is made "
        "again there, with the same keys",
        "warning: host b (qemu+ssh://root@b/system) cannot be reached: refused."]
