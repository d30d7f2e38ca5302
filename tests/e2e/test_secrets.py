"""Passwords come from Pulumi secrets and exist outside the config only as hashes.

The display password and the console's signing key are searched for the same
way: they must be in no state export, no `virsh dumpxml` (without
--security-info), no log and no output. The display password is in libvirt's
own domain definitions and the remote-viewer file only, each 0600; the key is
in its 0600 file only.

One user with a password (a secret set through the Automation API) is brought
up on the project's own libvirtd with a real guest. Then the plaintext is
searched for everywhere it could have leaked: the seed ISO, every domain's
XML, the exported state, every file of the test's state dir (the Pulumi
backend, the embedded libvirtd's config and logs, the pool with the guest's
disks) and everything the engine printed. It must be nowhere, while the
hash is in the seed and in the guest's /etc/shadow, and logging in with the
password works. A second `up` changes nothing: the hash is stable.

The other tests cover how secrets get into a stack: a plain-text value is
refused, and `components.cli.workdir set-secret` keeps per-user secrets in the
user's mirror and team secrets in the committed stack file.
"""
from __future__ import annotations

import copy
import json
import os
import re
import secrets
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import libvirt
import paramiko
import pytest
import yaml
from pulumi import automation as auto

from components.cli.access import viewer_path, write_access_files
from components.cli.console import console_link
from components.console import service, tokens
from components.host import embedded
from components.cli import workdir
from components.cloudinit import verify_password
from components.guest.netns import connect_tcp
from components.guest.ssh import SshTarget, connect
from tests.support.project import REPO, isolated_env, make_project, on_the_console_image, open_stack, stack_config
from tests.support.rfb import WebSocketTransport, handshake

# Only the tests of the booted guest are marked `guests`: the others boot nothing, so they need not wait
# in the guests' stream (tests/conftest.py).
pytestmark = pytest.mark.e2e
STACK = "secrets"
USER = "sam"
KEY = "sam-password"
PASSWORD = f"vdesk-{secrets.token_urlsafe(18)}"   # random: it cannot be anywhere by chance
HASH = re.compile(rb"\$6\$rounds=100000\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}")


def secrets_config() -> dict:
    cfg = on_the_console_image(copy.deepcopy(stack_config("dev")))
    cfg["vdesk:networks"]["lan"]["cidr"] = "10.81.0.0/24"
    cfg["vdesk:profiles"]["desktop"].update(memory="768MiB", disk="4GiB")
    cfg["vdesk:users"] = [{"name": USER, "profile": "desktop", "password": KEY}]
    cfg["vdesk:timeouts"] = copy.deepcopy(stack_config("ci")["vdesk:timeouts"])
    return cfg


def files_containing(root: Path, needle: bytes) -> list[str]:
    """Every regular file under root whose bytes contain needle (read in chunks, so disks are fine)."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        with path.open("rb") as f:
            tail = b""
            while chunk := f.read(8 << 20):
                if needle in tail + chunk:
                    found.append(str(path))
                    break
                tail = chunk[-len(needle):]
    return found


def scanned_file_count(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    state = tmp_path_factory.mktemp("vdesk-state")
    project = make_project(tmp_path_factory.mktemp("project"), STACK, secrets_config())
    stack = open_stack(project, STACK, isolated_env(state))
    stack.set_config(f"vdesk:{KEY}", auto.ConfigValue(PASSWORD, secret=True))
    yield {"stack": stack, "state": state, "project": project}
    try:
        stack.destroy()
    finally:
        embedded.stop(embedded.embedded_host("local", state_root=state), purge=True)


def password_login(ip: str, netns: str, host_public_key: str, password: str) -> str:
    """Log in with the password (SSH password auth, host key pinned); return `id -un` as the guest says it."""
    sock = connect_tcp(ip, 22, netns=netns, timeout_s=30)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=30)
        presented = transport.get_remote_server_key()
        assert f"{presented.get_name()} {presented.get_base64()}" == " ".join(host_public_key.split()[:2])
        transport.auth_password(USER, password)
        channel = transport.open_session(timeout=30)
        channel.exec_command("id -un")
        output = channel.makefile("rb").read().decode().strip()
        assert channel.recv_exit_status() == 0
        return output
    finally:
        transport.close()


@pytest.mark.guests
def test_a_password_exists_only_as_a_hash(world):
    stack: auto.Stack = world["stack"]
    state, project = world["state"], world["project"]
    printed: list[str] = []
    needle = PASSWORD.encode()

    # The stack file holds the secret encrypted.
    assert "secure:" in (project / "stacks" / f"Pulumi.{STACK}.yaml").read_text()

    up = stack.up(on_output=printed.append)
    assert up.summary.result == "succeeded"
    world.update(up=up, printed=printed)    # the display password's search below reuses this guest
    desk = up.outputs["desktops"].value[USER]
    netns = up.outputs["hosts"].value["local"]["netns"]
    host_uri = up.outputs["host_uri"].value
    assert desk["state"] == "running" and desk["user"] == USER

    # Up again: the same hash, so the seed (and everything else) is unchanged.
    stack.preview(on_output=printed.append)
    again = stack.up(on_output=printed.append)
    assert {k: v for k, v in again.summary.resource_changes.items() if k != "same"} == {}

    # The seed volume holds the hash, never the password.
    conn = libvirt.open(host_uri)
    try:
        seed_path = conn.storagePoolLookupByName(f"{STACK}-main").storageVolLookupByName(
            f"{STACK}-{USER}-seed.iso").path()
        domain_xml = [d.XMLDesc(flags) for d in conn.listAllDomains(0)
                      for flags in (0, libvirt.VIR_DOMAIN_XML_SECURE, libvirt.VIR_DOMAIN_XML_INACTIVE)]
    finally:
        conn.close()
    seed = Path(seed_path).read_bytes()
    hashes = set(HASH.findall(seed))
    assert len(hashes) == 1, hashes
    crypt_hash = hashes.pop().decode()
    assert verify_password(PASSWORD, crypt_hash)
    assert needle not in seed

    # Nor is the password in any domain XML, the exported state, any file, or anything printed.
    assert domain_xml and not [x for x in domain_xml if PASSWORD in x]
    exported = json.dumps(stack.export_stack().deployment)
    assert f"{STACK}-{USER}-seed.iso" in exported and PASSWORD not in exported
    assert scanned_file_count(state / "backend") > 0 and scanned_file_count(state / "hosts") > 5
    assert files_containing(state, needle) == []
    assert seed_path in files_containing(state, crypt_hash.encode())   # the scan does find what is there
    assert files_containing(project, needle) == []
    output = "".join(printed)
    assert "Resources:" in output and PASSWORD not in output

    # In the guest: /etc/shadow holds that very hash, and the password logs in (over SSH, host key pinned).
    target = SshTarget(host=desk["ip"], user=USER, private_key=desk["login_private_key"],
                       host_public_key=desk["host_key"], netns=netns)
    with connect(target, timeout_s=60) as session:
        shadow = session.run(["sudo", "-n", "getent", "shadow", USER]).check().stdout.strip()
    assert shadow.split(":")[1] == crypt_hash
    assert password_login(desk["ip"], netns, desk["host_key"], PASSWORD) == USER
    with pytest.raises(paramiko.AuthenticationException):
        password_login(desk["ip"], netns, desk["host_key"], PASSWORD + "x")


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.guests
def test_the_display_password_and_the_signing_key_are_nowhere_they_should_not_be(world, monkeypatch):
    if "up" not in world:
        pytest.skip("needs the guest brought up by test_a_password_exists_only_as_a_hash")
    import websocket
    stack: auto.Stack = world["stack"]
    state, up = world["state"], world["up"]
    desk = up.outputs["desktops"].value[USER]
    host_uri = up.outputs["host_uri"].value
    display_password = desk["display_password"]
    console_dir = state / "hosts" / "local" / "console"
    key = tokens.signing_key(console_dir)
    assert display_password and len(display_password) == 8 and _mode(console_dir / tokens.KEY_FILE) == 0o600

    # Use everything once, so the logs have something to say: make access's viewer file, a console
    # session through the gateway (which authenticates with the display password), and a refused link.
    monkeypatch.setenv("VDESK_STATE", str(state))
    write_access_files(STACK, up.outputs["desktops"].value)
    viewer = viewer_path(STACK, USER)
    assert _mode(viewer) == 0o600 and f"password={display_password}" in viewer.read_text()
    url, _ = console_link(desk)
    fragment = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).fragment))
    ws_base = url.split("/vnc.html")[0].replace("http", "ws", 1)
    ws = websocket.create_connection(f"{ws_base}/{fragment['path']}", subprotocols=["binary"], timeout=30)
    try:
        assert "password" not in fragment                     # the gateway logs in to the display itself
        assert handshake(WebSocketTransport(ws), None)[2] == f"QEMU ({desk['name']})"
    finally:
        ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(f"{ws_base}/{fragment['path']}x", timeout=30)
    token = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(fragment["path"]).query))["token"]

    needles = {"display password": display_password.encode(), "signing key": key,
               "signing key (hex)": key.hex().encode(), "console token": token.encode()}
    # The state export and the outputs (as `pulumi` prints them without --show-secrets: the Automation
    # API's export_stack asks for them decrypted), `virsh dumpxml` (without --security-info).
    cli_env = {**{k: v for k, v in os.environ.items() if k != "PULUMI_CONFIG_PASSPHRASE_FILE"}, **isolated_env(state)}

    def pulumi(*args: str) -> str:
        return subprocess.run(["pulumi", *args, "--stack", STACK], cwd=world["project"], env=cli_env, check=True,
                              capture_output=True, text=True).stdout

    exported = pulumi("stack", "export")
    assert '"display_password"' in exported and "secrets-sam" in exported
    outputs = pulumi("stack", "output", "--json")
    virsh = ["virsh", "-c", host_uri, "dumpxml", desk["name"]]
    dumped = subprocess.run(virsh, check=True, capture_output=True, text=True).stdout + subprocess.run(
        virsh + ["--inactive"], check=True, capture_output=True, text=True).stdout
    assert "<graphics type='vnc'" in dumped and "<graphics type='spice'" in dumped
    logs = sorted(p for p in (state / "hosts" / "local" / "log").rglob("*") if p.is_file())
    logs.append(console_dir / service.LOG_FILE)
    assert "connect desktop=secrets-sam" in (console_dir / service.LOG_FILE).read_text()
    for what, needle in needles.items():
        text = needle.decode(errors="replace")
        assert text not in exported and text not in dumped and text not in outputs, what
        assert text not in "".join(world["printed"]), what
        assert [str(p) for p in logs if needle in p.read_bytes()] == [], what

    # Files: the password only where libvirt keeps its domain (its config and its runtime status) and in
    # the viewer file; the key only in its own file. Each of them readable by root alone.
    holding = {Path(p) for p in files_containing(state, display_password.encode())}
    assert holding == {viewer, state / "hosts" / "local" / "etc" / "qemu" / f"{desk['name']}.xml",
                       state / "hosts" / "local" / "run" / "libvirt" / "qemu" / f"{desk['name']}.xml"}, holding
    assert {p: _mode(p) for p in holding} == dict.fromkeys(holding, 0o600)
    assert files_containing(state, key) == [str(console_dir / tokens.KEY_FILE)]
    assert files_containing(state, token.encode()) == []


def test_a_password_kept_in_plain_text_is_refused_before_anything_exists(tmp_path):
    state = tmp_path / "state"
    stack = open_stack(make_project(tmp_path / "project", "plain", secrets_config()), "plain", isolated_env(state))
    stack.set_config(f"vdesk:{KEY}", auto.ConfigValue(PASSWORD, secret=False))
    printed: list[str] = []
    with pytest.raises(auto.CommandError) as err:
        stack.preview(on_output=printed.append)
    assert (f"users[0].password: vdesk:{KEY} is stored in plain text: set it again with "
            f"`pulumi config set --secret vdesk:{KEY}`") in str(err.value)
    assert PASSWORD not in str(err.value) + "".join(printed)
    assert not (state / "hosts").exists()     # stopped before even starting the embedded host


# --- how secrets get into a stack: components.cli.workdir set-secret ---------------------------------------


def cli_env(root: Path, passphrase: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PULUMI_CONFIG_PASSPHRASE_FILE"}
    (root / "backend").mkdir(parents=True, exist_ok=True)
    env.update(PULUMI_BACKEND_URL=f"file://{root / 'backend'}", PULUMI_HOME=str(root / "home"),
               PULUMI_CONFIG_PASSPHRASE=passphrase, PULUMI_SKIP_UPDATE_CHECK="true", VDESK_STATE=str(root))
    return env


def config_get(work: Path, stack: str, key: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["pulumi", "config", "get", f"vdesk:{key}", "--stack", stack], cwd=work, env=env,
                          capture_output=True, text=True)


@pytest.fixture
def repo_copy(tmp_path):
    repo = tmp_path / "repo"
    (repo / "stacks").mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(REPO / name, repo / name)
    for stack in ("dev", "team"):
        shutil.copy(REPO / "stacks" / f"Pulumi.{stack}.yaml", repo / "stacks")
    return repo


def test_a_per_user_secret_stays_in_the_users_mirror(repo_copy, tmp_path):
    env = cli_env(tmp_path / "me", "my-own-passphrase")
    state = tmp_path / "me"
    declared = (repo_copy / "stacks" / "Pulumi.dev.yaml").read_bytes()
    where = workdir.set_secret("dev", "dev-password", state, repo_copy, env=env, value=PASSWORD)
    assert where == state / "workdirs" / "dev" / "stacks" / "Pulumi.dev.yaml"
    assert (repo_copy / "stacks" / "Pulumi.dev.yaml").read_bytes() == declared    # the clone is not written
    mirrored = yaml.safe_load(where.read_text())
    assert set(mirrored["config"]["vdesk:dev-password"]) == {"secure"} and PASSWORD not in where.read_text()
    work = workdir.sync("dev", state, repo_copy)                                   # as every tools/vdesk run does
    assert config_get(work, "dev", "dev-password", env).stdout.strip() == PASSWORD


def test_a_team_secret_is_committed_encrypted_and_readable_with_the_team_passphrase(repo_copy, tmp_path):
    team_file = repo_copy / "stacks" / "Pulumi.team.yaml"
    original = team_file.read_text()
    first = cli_env(tmp_path / "first", "the-team-passphrase")
    assert workdir.set_secret("team", "carol-password", tmp_path / "first", repo_copy, team=True, env=first,
                              value=PASSWORD) == team_file
    workdir.set_secret("team", "erin-password", tmp_path / "first", repo_copy, env=first, value="erin's")
    text = team_file.read_text()
    assert PASSWORD not in text
    # Only the salt and two entries were added: every line of the declaration (comments too) is still there.
    added = [line for line in text.splitlines() if line not in original.splitlines()]
    assert len(added) == 5 and added[0].startswith("encryptionsalt: v1:")
    assert [line for line in text.splitlines() if line in original.splitlines()] == original.splitlines()

    # Another machine (own state, own backend) with the team passphrase reads them from the committed file.
    other = cli_env(tmp_path / "other", "the-team-passphrase")
    work = workdir.sync("team", tmp_path / "other", repo_copy)
    subprocess.run(["pulumi", "stack", "init", "team", "--non-interactive"], cwd=work, env=other, check=True,
                   capture_output=True)
    assert config_get(work, "team", "carol-password", other).stdout.strip() == PASSWORD
    assert config_get(work, "team", "erin-password", other).stdout.strip() == "erin's"
    wrong = config_get(work, "team", "carol-password", cli_env(tmp_path / "other", "not-the-passphrase"))
    assert wrong.returncode != 0 and "incorrect passphrase" in wrong.stderr
