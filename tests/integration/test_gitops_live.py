"""The GitOps script (.ci/gitops), run for real on a local git repository.

A team repository holds the stack file; the script is what the pipeline calls.
Desktops are declared stopped, so the runs measure the pipeline, not guest boots:
- a change request that adds a user plans that user's desktop and nothing else;
- the merge applies it;
- a scheduled run finds out-of-band drift (memory changed with libvirt, a portal or quota record removed or
  altered) and repairs it, and shows an untouched portal record as no drift;
- a change request with a bad or hostile stack file fails at plan time and creates nothing.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess

import libvirt
import pytest
import yaml

from components.cloudinit.passwords import MIN_ROUNDS, hash_password
from components.host import embedded
from components.lifecycle import quotas
from components.portal import accounts
from components.portal.accounts import portal_dir_of
from tests.support.host import counts
from tests.support.project import REPO, isolated_env

pytestmark = pytest.mark.integration
STACK = "gitops"
ALICE = {"name": "alice", "profile": "desk", "groups": ["staff"]}
QUOTAS = {"users": {"alice": {"desktops": 1}}, "groups": {"staff": {"memory": 2 * 1024 ** 3}}}
SIG_KEY, SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"  # a secret, in state
IGNORED = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", "*.pyc")


def _stack(users: list[dict], **profile) -> str:
    config = {
        "vdesk:hosts": {"local": {"uri": "embedded", "accelerator": "tcg"}},
        "vdesk:pools": {"main": {"host": "local"}},
        "vdesk:networks": {"lan": {"host": "local", "cidr": "10.86.0.0/24"}},
        "vdesk:images": {"debian12": {"golden": "debian12"}},
        "vdesk:profiles": {"desk": {"pool": "main", "network": "lan", "image": "debian12", "memory": "512MiB",
                                    "disk": "4GiB", "running": False, **profile}},
        "vdesk:users": users,
        # (the stack's quotas: its record on the host, which adding a user does not change)
        "vdesk:quotas": {"users": {"alice": {"desktops": 1}}, "groups": {"staff": {"memory": "2GiB"}}},
    }
    return "# the team's declaration\n" + yaml.safe_dump({"config": config}, sort_keys=False)


@pytest.fixture
def team(tmp_path):
    """A team repository (this project plus a stack file on main) and the runner's environment."""
    repo = tmp_path / "team"
    shutil.copytree(REPO, repo, ignore=IGNORED)
    (repo / "stacks" / f"Pulumi.{STACK}.yaml").write_text(_stack([ALICE]))
    env = {**os.environ, **isolated_env(tmp_path / "state"), "PYTHONPATH": str(repo)}

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout

    git("init", "-q", "-b", "main")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "start", "--allow-empty")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "the team's vdesk")
    host = embedded.embedded_host("local", state_root=tmp_path / "state")
    yield repo, env, git, host
    subprocess.run([str(repo / "tools" / "vdesk"), "destroy", STACK], env=env, cwd=repo, capture_output=True)
    embedded.stop(host, purge=True)


def _gitops(repo, env, *args, ok=True):
    run = subprocess.run([str(repo / ".ci" / "gitops"), *args], env=env, cwd=repo, capture_output=True, text=True)
    print(run.stdout, run.stderr)
    assert (run.returncode == 0) == ok, run.stdout + run.stderr
    return run.stdout + run.stderr


def _state(env) -> dict:
    """The stack's checkpoint, as the engine wrote it to the file backend."""
    backend = env["PULUMI_BACKEND_URL"].removeprefix("file://")
    [path] = glob.glob(os.path.join(backend, ".pulumi", "stacks", "*", f"{STACK}.json"))
    with open(path) as fh:
        return json.load(fh)


def _drift(reconciled: str) -> list[str]:
    """What a reconcile run listed as drift: its plan's changes, before the up that restores them."""
    listed = reconciled.split("drift found on the hosts", 1)[1].split("\nUpdating (", 1)[0]
    return [line.strip() for line in listed.splitlines()[1:]
            if line.split() and line.split()[0] in ("create", "update", "replace", "delete")]


def _change_request(repo, git, branch, users, **profile):
    git("checkout", "-q", "-b", branch, "main")
    (repo / "stacks" / f"Pulumi.{STACK}.yaml").write_text(_stack(users, **profile))
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", branch)
    git("checkout", "-q", "main")


def test_change_request_merge_drift_and_a_hostile_request(team):
    repo, env, git, host = team
    _gitops(repo, env, "apply", STACK)
    assert counts(host.uri)["domains"] == 1
    lifecycle = host.state_dir / "lifecycle"           # as the host resolver places it, beside the portal
    portal = portal_dir_of(host.state_dir / "console")
    assert quotas.records(lifecycle) == {STACK: QUOTAS}
    assert accounts.recorded(portal, STACK, f"{STACK}-alice").groups == {"alice": ("staff",)}

    # A change request adding bob plans bob's desktop and nothing else (not the quotas, not alice's record).
    _change_request(repo, git, "add-bob", [ALICE, {"name": "bob", "profile": "desk"}])
    plan = _gitops(repo, env, "plan", STACK, "add-bob")
    changes = [line.split() for line in plan.splitlines() if line.startswith("  ") and line.split()[0] in
               ("create", "update", "replace", "delete")]
    assert [c[:3] for c in changes] == [["create", "desktop", "bob"]], plan
    assert counts(host.uri)["domains"] == 1, "a plan applies nothing"

    # The merge applies it.
    git("merge", "-q", "--ff-only", "add-bob")
    _gitops(repo, env, "apply", STACK)
    assert counts(host.uri)["domains"] == 2

    # Out-of-band drift: someone gives alice's VM more memory by hand, and removes the stack's quotas from the
    # host. The scheduled run puts both back.
    quotas.record_path(lifecycle, STACK).unlink()
    conn = libvirt.open(host.uri)
    try:
        dom = conn.lookupByName(f"{STACK}-alice")
        dom.setMemoryFlags(768 * 1024, libvirt.VIR_DOMAIN_AFFECT_CONFIG | libvirt.VIR_DOMAIN_MEM_MAXIMUM)
        dom.setMemoryFlags(768 * 1024, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        out = _gitops(repo, env, "reconcile", STACK)
        assert "update   desktop alice (alice-vm: memory)" in out, out
        assert conn.lookupByName(f"{STACK}-alice").maxMemory() == 512 * 1024
        assert sorted(_drift(out)) == ["create   resource quotas-local (1 resource(s))",
                                       "update   desktop alice (alice-vm: memory)"], "an untouched portal record is no drift"
        assert quotas.records(lifecycle) == {STACK: QUOTAS}
    finally:
        conn.close()

    # Out-of-band drift on the portal: bob's record removed, a stranger added to alice's; and alice's quota
    # raised by hand. Put back too.
    records = portal / accounts.ACCOUNTS_DIR / STACK
    (records / f"{STACK}-bob.json").unlink()
    alices = records / f"{STACK}-alice.json"
    alices.write_text(alices.read_text().replace('"alice"', '"alice", "mallory"', 1))
    assert accounts.recorded(portal, STACK, f"{STACK}-alice").users == ("alice", "mallory")
    quotas.record(lifecycle, STACK, {**QUOTAS, "users": {"alice": {"desktops": 9}}})
    out = _gitops(repo, env, "reconcile", STACK)
    assert sorted(_drift(out)) == ["create   desktop bob (1 resource(s))",
                                   "update   desktop alice (alice-portal: users)",
                                   "update   resource quotas-local ((itself): quotas)"], out
    held = {(r.stack, r.desktop): r.users for r in accounts.load(portal)}
    assert held == {(STACK, f"{STACK}-alice"): ("alice",), (STACK, f"{STACK}-bob"): ("bob",)}
    assert quotas.records(lifecycle) == {STACK: QUOTAS}

    # A hash planted in a record is read by refresh into state as a secret only, never as plain text.
    planted = hash_password("planted", rounds=MIN_ROUNDS)
    accounts.publish(portal, STACK, f"{STACK}-alice", ["alice"], {"alice": planted}, groups={"alice": ["staff"]})
    subprocess.run([str(repo / "tools" / "vdesk"), "refresh", STACK], env=env, cwd=repo, check=True,
                   capture_output=True)
    state = _state(env)
    assert planted not in json.dumps(state)
    outputs = next(r["outputs"] for r in state["checkpoint"]["latest"]["resources"]
                   if r["urn"].endswith("::alice-portal"))
    assert outputs["hashes"].get(SIG_KEY) == SECRET_SIG and "ciphertext" in outputs["hashes"], outputs["hashes"]

    # Change requests with a bad and a hostile stack file fail at plan time, naming the field.
    before = counts(host.uri)
    _change_request(repo, git, "bad", [{**ALICE, "memory": "2 GB"}])
    out = _gitops(repo, env, "plan", STACK, "bad", ok=False)
    assert "users[0].memory" in out and "nothing was applied" in out
    _change_request(repo, git, "hostile", [ALICE, {"name": "../../etc", "profile": "desk"}])
    out = _gitops(repo, env, "plan", STACK, "hostile", ok=False)
    assert "users[1].name" in out
    assert counts(host.uri) == before

    # destroy leaves neither the desktops' portal records nor the stack's quotas on the host.
    subprocess.run([str(repo / "tools" / "vdesk"), "destroy", STACK], env=env, cwd=repo, check=True,
                   capture_output=True)
    assert counts(host.uri)["domains"] == 0
    assert accounts.load(portal) == [] and quotas.records(lifecycle) == {}
    assert not any(p.is_file() for p in (lifecycle / quotas.QUOTAS_DIR).rglob("*"))
