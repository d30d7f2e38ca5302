"""Two teams' stacks on one host, each applied through the GitOps script (.ci/gitops), as two teams would.

Stack team-a is up with user ann's desktop running (one TCG boot: the only guest here), and its `make check`
logs in with the pinned host key. Stack team-b, whose file anyone may change by a change request (its own
desktop stays stopped), then tries against team-a's desktop:
- adopting its pool and network by name, and the desktop itself under team-a's prefix;
- reusing team-a's prefix;
- reaching it through team-b's own console links (its link with the desktop swapped, and a token minted
  for team-a's desktop under team-b's name), through the host's one gateway;
- destroying: team-b's own stack is applied and destroyed beside team-a's.
Each adoption and prefix try fails at plan (the preview), naming the field and the owner; each console
try is refused by the gateway; after every try, every libvirt object on the host and its XML is as before.
team-a's own plan says "no changes", and its `make check` passes, before and after.
"""
from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
import urllib.parse

import libvirt
import pytest
import websocket
import yaml

from components import xmlmodel
from components.cli import checks
from components.console import service, tokens
from components.host import embedded
from components.resources.network import desired_model
from tests.support import rfb
from tests.support.project import REPO, isolated_env

pytestmark = [pytest.mark.reliability, pytest.mark.guests]
A, B = "team-a", "team-b"
IGNORED = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache", "*.pyc")
OWNED_BY_A = "belongs to stack 'team-a'"
_CHANGES_OVER_TIME = {"pool": ("capacity", "allocation", "available"), "volume": ("allocation",)}


def _stack(*, prefix: str | None = None, user: str = "bob", cidr: str = "10.92.0.0/24", pool_adopt=False,
           pool_path: str | None = None, network_adopt=False, user_adopt=False, running=False,
           link_validity: str | None = "15m") -> str:
    """team-b's stack file unless told otherwise: its desktop stopped, its own console links valid for 15 min
    (other console settings than team-a's, which take the default)."""
    console = {"console": {"link_validity": link_validity}} if link_validity else {}
    config = {
        "vdesk:hosts": {"local": {"uri": "embedded", "accelerator": "tcg", **console}},
        "vdesk:pools": {"main": {"host": "local", **({"adopt": pool_adopt} if pool_adopt else {}),
                                 **({"path": pool_path} if pool_path else {})}},
        "vdesk:networks": {"lan": {"host": "local", "cidr": cidr,
                                   **({"adopt": network_adopt} if network_adopt else {})}},
        "vdesk:images": {"debian12": {"golden": "debian12"}},
        "vdesk:profiles": {"desk": {"pool": "main", "network": "lan", "image": "debian12", "memory": "512MiB",
                                    "disk": "4GiB", "running": running}},
        "vdesk:users": [{"name": user, "profile": "desk", **({"adopt": True} if user_adopt else {})}],
    }
    if prefix:
        config["vdesk:prefix"] = prefix
    return yaml.safe_dump({"config": config}, sort_keys=False)


def snapshot(uri: str) -> dict[str, object]:
    """Every domain, network, pool and volume on the host with its XML (through the typed model where
    libvirt reports usage that changes as other objects are written: a pool's free space)."""
    conn = libvirt.open(uri)
    try:
        found: dict[str, object] = {}
        for dom in conn.listAllDomains(0):
            found[f"domain {dom.name()}"] = (dom.isActive(), dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        for net in conn.listAllNetworks(0):
            found[f"network {net.name()}"] = (net.isActive(), net.XMLDesc(0))
        for pool in conn.listAllStoragePools(0):
            found[f"pool {pool.name()}"] = _stable(xmlmodel.Pool.from_xml(pool.XMLDesc(0)), "pool")
            for vol in pool.listAllVolumes(0) if pool.isActive() else ():
                found[f"volume {pool.name()}/{vol.name()}"] = _stable(xmlmodel.Volume.from_xml(vol.XMLDesc(0)),
                                                                      "volume")
        return found
    finally:
        conn.close()


def _stable(model: xmlmodel.XMLObject, kind: str) -> dict:
    return {k: v for k, v in model.as_dict().items() if k not in _CHANGES_OVER_TIME[kind]}


@pytest.fixture
def teams(tmp_path):
    """One repository with both teams' stack files on main, one runner environment, one embedded host."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo, ignore=IGNORED)
    (repo / "stacks" / f"Pulumi.{A}.yaml").write_text(_stack(user="ann", cidr="10.91.0.0/24", running=True,
                                                                        link_validity=None))
    (repo / "stacks" / f"Pulumi.{B}.yaml").write_text(_stack())
    env = {**os.environ, **isolated_env(tmp_path / "state"), "PYTHONPATH": str(repo)}

    def git(*args):
        return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "two teams")
    host = embedded.embedded_host("local", state_root=tmp_path / "state")
    yield repo, env, git, host
    for stack in (B, A):
        subprocess.run([str(repo / "tools" / "vdesk"), "destroy", stack], env=env, cwd=repo, capture_output=True)
    embedded.stop(host, purge=True)


def _run(repo, env, *argv, ok=True) -> str:
    run = subprocess.run([str(repo / argv[0]), *argv[1:]], env=env, cwd=repo, capture_output=True, text=True)
    print(run.stdout, run.stderr)
    assert (run.returncode == 0) == ok, run.stdout + run.stderr
    return run.stdout + run.stderr


def _team_a_checks_pass(repo, env) -> None:
    """team-a's `make check`: a login to ann's desktop with the host key pinned at its boot, and its checks."""
    run = subprocess.run(["make", "-s", "check", f"STACK={A}"], env=env, cwd=repo, capture_output=True, text=True)
    print(run.stdout, run.stderr)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "all 1 desktop(s) passed their checks" in run.stdout, run.stdout
    login = next(line.split() for line in run.stdout.splitlines() if line.startswith("ann "))
    assert login == ["ann", *checks.LOGIN_CHECK.split(), "ok"], run.stdout   # logged in, not skipped as stopped


def _change_request(repo, git, branch: str, text: str) -> str:
    git("checkout", "-q", "-b", branch, "main")
    (repo / "stacks" / f"Pulumi.{B}.yaml").write_text(text)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", branch)
    git("checkout", "-q", "main")
    return branch


def _refused_by_gateway(gateway_url: str, desktop: str, token: str) -> int:
    query = urllib.parse.urlencode({"desktop": desktop, "token": token})
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(gateway_url.replace("http", "ws", 1) + f"/websockify?{query}",
                                    subprotocols=["binary"], timeout=10)
    return refused.value.status_code


def _console_session(link: str) -> websocket.WebSocket:
    """A browser's session on a desktop's screen, through the gateway, as its printed link opens it."""
    fragment = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).fragment))
    ws = websocket.create_connection(link.split("/vnc.html")[0].replace("http", "ws", 1) + "/" + fragment["path"],
                                     subprotocols=["binary"], timeout=30)
    width, height, _name = rfb.handshake(rfb.WebSocketTransport(ws), None)
    ws.screen = (width, height)
    return ws


def _still_live(ws: websocket.WebSocket) -> bool:
    """The session answers a request for its whole screen with a server message (RFB types 0-3)."""
    width, height = ws.screen
    ws.send_binary(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))       # FramebufferUpdateRequest
    opcode, data = ws.recv_data()
    return opcode == websocket.ABNF.OPCODE_BINARY and bool(data) and data[0] in (0, 1, 2, 3)


def _wait_for_log(path, text: str, timeout_s: float = 10) -> str:
    deadline = time.monotonic() + timeout_s
    while text not in (log := path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{log[-2000:]}"
        time.sleep(0.1)
    return log


def test_stack_b_cannot_adopt_reuse_destroy_or_reach_stack_as_desktop(teams):
    repo, env, git, host = teams
    _run(repo, env, ".ci/gitops", "apply", A)
    assert "no changes" in _run(repo, env, ".ci/gitops", "plan", A)
    _team_a_checks_pass(repo, env)
    console_dir = host.state_dir / "console"
    gateway = service.runtime(console_dir)
    session = _console_session(_run(repo, env, "tools/vdesk", "console", A, "ann").strip().splitlines()[-1])
    before = snapshot(host.uri)
    assert f"domain {A}-ann" in before and f"network {A}-lan" in before and f"pool {A}-main" in before

    tries = {
        "adopt-by-name": (_stack(pool_adopt=f"{A}-main", pool_path=before[f"pool {A}-main"]["target_path"],
                                 network_adopt=f"{A}-lan"),
                          [f"pools.main.adopt: pool '{A}-main' {OWNED_BY_A}",
                           f"networks.lan.adopt: network '{A}-lan' {OWNED_BY_A}"]),
        "adopt-the-desktop": (_stack(prefix=A, user="ann", cidr="10.91.0.0/24", pool_adopt=True, network_adopt=True,
                                     user_adopt=True),
                              [f"pools.main.adopt: pool '{A}-main' {OWNED_BY_A}",
                               f"networks.lan.adopt: network '{A}-lan' {OWNED_BY_A}",
                               f"users[0].adopt: domain '{A}-ann' {OWNED_BY_A}",
                               f"users[0].adopt: volume '{A}-ann.qcow2' {OWNED_BY_A}"]),
        "reuse-the-prefix": (_stack(prefix=A, user="ann", cidr="10.91.0.0/24"),
                             [f"vdesk:prefix: '{A}' makes the name of pool '{A}-main', which {OWNED_BY_A}",
                              f"vdesk:prefix: '{A}' makes the name of domain '{A}-ann', which {OWNED_BY_A}"]),
    }
    for branch, (text, expected) in tries.items():
        out = _run(repo, env, ".ci/gitops", "plan", B, _change_request(repo, git, branch, text), ok=False)
        assert "nothing was applied" in out, out
        for line in expected:
            assert line in out, f"{branch}: {line!r} not said:\n{out}"
        assert snapshot(host.uri) == before, f"{branch}: its plan changed something on the host"

    # An adoption team-b may make (a network no stack owns) is planned as an adoption, not as a create.
    conn = libvirt.open(host.uri)
    try:
        # (what vdesk would make, but by hand: no owner metadata, no journal entry)
        handmade = conn.networkDefineXML(desired_model({"name": f"{B}-lan", "cidr": "10.92.0.0/24"}).to_xml())
        handmade.create()
        out = _run(repo, env, ".ci/gitops", "plan", B, _change_request(repo, git, "adopt-own",
                                                                       _stack(network_adopt=True)))
        assert "  adopt    resource network-lan (takes over the existing network-lan)" in out, out
        assert "network-lan" not in "".join(line for line in out.splitlines() if line.startswith("  create"))
        handmade.destroy()
        handmade.undefine()
    finally:
        conn.close()
    assert snapshot(host.uri) == before

    # team-b's own stack, merged and applied beside team-a's: team-a's objects are untouched.
    _run(repo, env, ".ci/gitops", "apply", B)
    after_b = snapshot(host.uri)
    assert f"domain {B}-bob" in after_b
    assert {k: v for k, v in after_b.items() if k in before} == before

    # team-b's console links: its own link with team-a's desktop named instead, and a token minted for
    # team-a's desktop in team-b's name. The gateway serves neither.
    link = _run(repo, env, "tools/vdesk", "console", B, "bob").strip().splitlines()[-1]
    fragment = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).fragment))
    own_token = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(fragment["path"]).query))["token"]
    gateway_url = link.split("/vnc.html")[0]
    minted, _ = tokens.mint(tokens.signing_key(console_dir), f"{A}-ann", 60, stack=B)
    assert _refused_by_gateway(gateway_url, f"{A}-ann", own_token) == 403
    _wait_for_log(console_dir / service.LOG_FILE, f"refused desktop={A}-ann from=127.0.0.1 reason=a token for "
                                                  "another desktop")
    assert _refused_by_gateway(gateway_url, f"{A}-ann", minted) == 403
    _wait_for_log(console_dir / service.LOG_FILE, f"refused desktop={A}-ann from=127.0.0.1 reason=a token of "
                                                  "another stack")

    # team-b's destroy removes team-b's objects and nothing of team-a's.
    _run(repo, env, "tools/vdesk", "destroy", B)
    assert snapshot(host.uri) == before
    assert "no changes" in _run(repo, env, ".ci/gitops", "plan", A)
    _team_a_checks_pass(repo, env)
    # team-b's plans and its up (its console links valid for 15 min, team-a's for the default hour) left the
    # host's one gateway as it was: the same process on the same port, and team-a's session still live.
    assert {k: service.runtime(console_dir)[k] for k in ("pid", "port")} == {k: gateway[k] for k in ("pid", "port")}
    try:
        assert _still_live(session)
    finally:
        session.close()
