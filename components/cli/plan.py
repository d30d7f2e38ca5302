"""What a `pulumi preview` would change, per desktop, image, network and pool: the plan a reviewer reads.

    python -m components.cli.plan STACK            (exit 1 when the stack is invalid or the preview fails)
    python -m components.cli.plan --destroy STACK  (what `destroy` removes and what it keeps)

A change request that adds one user must show one desktop created and nothing
else; this prints exactly that, from the engine's own JSON plan.
"""
from __future__ import annotations

import collections
import json
import subprocess
import sys

_KINDS = {"vdesk:index:Desktop": "desktop", "vdesk:index:Image": "image", "vdesk:index:Container": "container"}
_CHANGES = ("create", "update", "replace", "create-replacement", "delete-replaced", "delete")
_ADOPTING = "__adopting"     # the providers' check marks a create that takes over an existing object


def _name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _type(urn: str) -> str:
    return urn.split("::")[2].split("$")[-1]


def summarize(plan: dict) -> dict[str, dict[str, list[str]]]:
    """{op: {"desktop alice": [part: reasons, ...]}} for every step that changes something."""
    parents = {}
    for step in plan.get("steps") or []:
        state = step.get("newState") or step.get("oldState") or {}
        parents[step["urn"]] = state.get("parent")
    result: dict[str, dict[str, list[str]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for step in plan.get("steps") or []:
        op = step.get("op")
        if op not in _CHANGES or _type(step["urn"]) == "pulumi:providers:pulumi-python":
            continue
        owner, urn = step["urn"], step["urn"]
        while parents.get(owner) and _type(parents[owner]) in _KINDS:
            owner = parents[owner]
        kind = _KINDS.get(_type(owner), {"pulumi-python:dynamic:Resource": "resource"}.get(_type(owner), _type(owner)))
        thing = f"{kind} {_name(owner)}"
        part = _name(urn) if owner != urn else "(itself)"
        reasons = step.get("diffReasons") or _changed_inputs(step)
        if op == "create" and ((step.get("newState") or {}).get("inputs") or {}).get(_ADOPTING):
            op = "adopt"
        result["replace" if op in ("replace", "create-replacement", "delete-replaced") else op][thing].append(
            f"{part}{': ' + ', '.join(reasons) if reasons else ''}")
    return result


def _changed_inputs(step: dict) -> list[str]:
    """The declared inputs whose value differs from what the host has (when the engine names no reasons).

    A dynamic provider diffs the recorded outputs (after a refresh: what the host has) with the new inputs.
    """
    old_state = step.get("oldState") or {}
    old = old_state.get("outputs") or old_state.get("inputs") or {}
    new = (step.get("newState") or {}).get("inputs") or {}
    if not old or not new:
        return []
    return sorted(k for k in new if k != "__provider" and k in old and old[k] != new[k])


def render(stack: str, summary: dict) -> str:
    if not summary:
        return f"plan for stack {stack}: no changes"
    lines = [f"plan for stack {stack}:"]
    for op in ("adopt", "create", "update", "replace", "delete"):
        for thing, parts in sorted(summary.get(op, {}).items()):
            if op == "adopt":      # which objects it takes over: the reviewer must see each one
                names = {p.split(":")[0] for p in parts}
                detail = "takes over the existing " + ", ".join(sorted(
                    thing.split(" ", 1)[1] if n == "(itself)" else n for n in names))
            else:
                detail = f"{len(parts)} resource(s)" if op in ("create", "delete") else "; ".join(sorted(set(parts)))
            lines.append(f"  {op:8} {thing} ({detail})")
    return "\n".join(lines)


def placement(plan: dict) -> list[str]:
    """What the program said about where desktops live: placements, moves, hosts that cannot be reached."""
    notes = []
    for d in plan.get("diagnostics") or []:
        message = (d.get("message") or "").strip()
        if message.startswith("placement: ") or (message.startswith("host ") and "cannot be reached" in message):
            notes.append(("warning: " if d.get("severity") == "warning" else "") + message)
    return list(dict.fromkeys(notes))


def errors(plan: dict) -> list[str]:
    """What the engine reported as errors, and what the program wrote to stderr (where vdesk's own
    "invalid vdesk configuration" report goes)."""
    wanted = ("error", "info#err")
    return [d.get("message", "").strip() for d in plan.get("diagnostics") or []
            if d.get("severity") in wanted and d.get("message", "").strip()]


def destroy_summary(stack: str, deployment: dict) -> str:
    """What a destroy of the stack removes and keeps, from its state: homes kept on removal stay, and so does
    the pool that holds them."""
    resources = deployment.get("resources") or []
    desktops = sorted(_name(r["urn"]) for r in resources if r.get("type") == "vdesk:index:Desktop")
    kept = sorted((r.get("outputs") or {}).get("name", _name(r["urn"])) for r in resources
                  if r.get("retainOnDelete") and _type(r["urn"]) == "pulumi-python:dynamic:Resource")
    lines = [f"destroy of stack {stack} removes: {len(desktops)} desktop(s)"
             f"{' (' + ', '.join(desktops) + ')' if desktops else ''} with their VMs, system disks, seeds and "
             "networks, images and pools not needed by what is kept"]
    if kept:
        lines.append(f"  and keeps on the hosts (declared so): {', '.join(kept)}, and the pools that hold them; "
                     "an `up` later finds them again")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--destroy"] and len(argv) == 2:
        exported = json.loads(subprocess.run(["pulumi", "stack", "export", "--stack", argv[1]], check=True,
                                             capture_output=True, text=True).stdout or "{}")
        print(destroy_summary(argv[1], exported.get("deployment") or {}))
        return 0
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    stack = argv[0]
    run = subprocess.run(["pulumi", "preview", "--json", "--non-interactive", "--stack", stack],
                         capture_output=True, text=True)
    try:
        plan = json.loads(run.stdout or "{}")
    except ValueError:
        plan = {}
    if run.returncode or any(d.get("severity") == "error" for d in plan.get("diagnostics") or []):
        print(f"vdesk: the preview of stack {stack} failed; nothing was applied", file=sys.stderr)
        for message in errors(plan) or [run.stderr.strip() or run.stdout.strip()]:
            print(message, file=sys.stderr)
        return 1
    print(render(stack, summarize(plan)))
    for note in placement(plan):
        print(f"  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
