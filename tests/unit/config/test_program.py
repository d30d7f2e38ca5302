"""The stack -> resource graph, with Pulumi's mocks (no engine, no libvirt).

Only host resolution (it would start the embedded libvirtd) and, for the
example stacks, image resolution (it needs the built golden image) are
replaced; everything else is the real program.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pulumi
import pytest
import yaml

from components.cloudinit import verify_password
from components.errors import InputError
from components.guest.keys import generate_ed25519
from components.host.capacity import Capacity
from components.host.resolve import ResolvedHost
from components.images.golden import ImageFiles

REPO = Path(__file__).resolve().parents[3]
DYNAMIC = "pulumi-python:dynamic:Resource"


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs back as outputs, adding what a provider would report. Key pairs are real and fresh."""

    def __init__(self):
        self.resources = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = {k: _unwrap(v) for k, v in args.inputs.items()}
        self.resources.append((args.typ, args.name, inputs))
        outs = dict(inputs)
        if "pool" in outs and "name" in outs:
            outs["path"] = f"/pools/{outs['pool']}/{outs['name']}"
        if "login_comment" in outs:  # DesktopCredentials: every desktop gets its own keys
            for part in ("login", "host"):
                pair = generate_ed25519(outs[f"{part}_comment"])
                outs.update({f"{part}_public_key": pair.public_openssh, f"{part}_private_key": pair.private_openssh})
        outs.setdefault("uuid", f"uuid-{args.name}")
        outs.setdefault("ip", "10.77.0.10")
        outs.setdefault("state", "running")
        outs.setdefault("sha256", "0" * 64)
        return f"{args.name}-id", outs

    def call(self, args):
        return {}

    def named(self, name: str) -> dict:
        return next(inputs for _t, n, inputs in self.resources if n == name)

    def names(self) -> list[str]:
        return sorted(n for _t, n, _i in self.resources)


SECRET_SIG = "4dabf18193072939515e22adb298388d"  # how a secret value travels in Pulumi's wire format


def _unwrap(value):
    """A secret input arrives as {SECRET_SIG: ..., "value": v}: the mocks record v."""
    if isinstance(value, dict) and SECRET_SIG in value:
        return value.get("value")
    return value


def _resolved_host(h, probe_kernel):
    return ResolvedHost(h.name, "test:///default", "/run/netns/vdesk-unit", "qemu", "tcg requested explicitly",
                        "/pools", "/displays")


def _golden(image):
    return ImageFiles(image.name, "/images/debian12/disk.qcow2", "kernel", "recipe0123456789abcdef",
                      "/images/debian12/vmlinuz", "/images/debian12/initrd.img", "console=ttyS0 root=/dev/vda1")


RENDERED: dict[str, dict] = {}


def _fake_render(profile, variables):
    from components.cloudinit import SeedDocuments
    RENDERED[variables["hostname"]] = {"profile": profile, **variables}
    return SeedDocuments(f"#cloud-config\nhostname: {variables['hostname']}\n",
                         f"instance-id: {variables['instance_id']}\n", "version: 2\n")


def _this_machine(host, uri, domain_type):
    """The host's size as this machine's: 24 GiB, 2 CPUs (the test driver reports a 3 GiB host)."""
    return Capacity(host, 24 * 1024**3, 2, 288)


@pytest.fixture
def mocks(monkeypatch):
    m = RecordingMocks()
    pulumi.runtime.set_mocks(m, project="vdesk", stack="unit", preview=False)
    monkeypatch.setattr("components.config.loader.resolve_host", _resolved_host)
    monkeypatch.setattr("components.host.capacity.read", _this_machine)
    monkeypatch.setattr("components.desktop.component.render_seed", _fake_render)
    RENDERED.clear()
    return m


@pytest.fixture
def golden(monkeypatch):
    """The example stacks use the golden image: resolve it without building it."""
    monkeypatch.setattr("components.config.loader.image_files.resolve", _golden)


@pytest.fixture
def real_seed_mocks(monkeypatch):
    """As `mocks`, but the seeds are rendered by the real templates and checked against cloud-init's schema."""
    m = RecordingMocks()
    pulumi.runtime.set_mocks(m, project="vdesk", stack="unit", preview=False)
    monkeypatch.setattr("components.config.loader.resolve_host", _resolved_host)
    monkeypatch.setattr("components.host.capacity.read", _this_machine)
    return m


def raw_config(tmp_path, desktops=("alice",)):
    image = tmp_path / "own.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    return {
        "hosts": {"local": {"uri": "qemu:///system", "accelerator": "tcg"}},
        "pools": {"main": {"host": "local"}},
        "networks": {"lan": {"host": "local", "cidr": "10.77.0.0/24"}},
        "images": {"own": {"path": str(image), "boot": "bios"}},
        "desktops": {d: {"pool": "main", "network": "lan", "image": "own", "users": [{"name": d}]}
                     for d in desktops},
    }


def example_stack(stack: str) -> dict:
    """The `vdesk:` config of one of the repo's example stack files."""
    config = yaml.safe_load((REPO / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {key.removeprefix("vdesk:"): value for key, value in config.items() if key.startswith("vdesk:")}


def desktop_parts(name: str) -> list[str]:
    return sorted([name, f"{name}-credentials", f"{name}-disk", f"{name}-seed", f"{name}-vm",
                   f"{name}-ready"])


# The image component and its volumes in the pool (kept at their old root names by an alias).
GOLDEN_IMPORTS = ["image-debian12", "image-debian12-main-disk", "image-debian12-main-initrd",
                  "image-debian12-main-kernel"]


def after(outputs, check):
    """Run `check` once every output (and so every registered resource) has resolved."""
    return pulumi.Output.from_input(outputs).apply(check)


@pulumi.runtime.test
def test_graph_of_one_desktop(mocks, tmp_path):
    from components.config.loader import declare
    outputs = declare("unit", raw_config(tmp_path))

    def check(out):
        desktops = out["desktops"]
        assert mocks.names() == sorted(["pool-main", "network-lan", "image-own", "image-own-main-disk",
                                        *desktop_parts("alice")])
        vm = mocks.named("alice-vm")
        assert vm["name"] == "unit-alice" and vm["boot"] == "bios" and vm["domain_type"] == "qemu"
        assert vm["disks"][1]["readonly"] is True and vm["nics"][0]["network"] == "unit-lan"
        assert desktops["alice"]["ssh_command"].startswith("nsenter --net=/run/netns/vdesk-unit ssh -i ")
        assert desktops["alice"]["display_uri"] == "vnc+unix:///displays/unit-alice.vnc"

    return after(outputs, check)


@pulumi.runtime.test
def test_adding_a_desktop_adds_only_its_own_resources(mocks, tmp_path):
    from components.config.loader import declare
    outputs = declare("unit", raw_config(tmp_path, desktops=("alice", "bob")))

    def check(_):
        names = [name for _t, name, _ in mocks.resources]
        assert sorted(n for n in names if n.startswith("bob")) == desktop_parts("bob")
        assert names.count("image-own-main-disk") == 1   # the image is imported once per pool
        macs = {i["nics"][0]["mac"] for t, n, i in mocks.resources if n.endswith("-vm")}
        assert len(macs) == 2

    return after(outputs, check)


# --- the example stacks --------------------------------------------------------------------------------


@pulumi.runtime.test
def test_dev_stack_graph(mocks, golden):
    from components.config.loader import declare
    outputs = declare("dev", example_stack("dev"))

    def check(out):
        # A graphical desktop: the image is built from its recipe (a resource of its own), and /home is a volume.
        assert mocks.names() == sorted(["pool-main", "network-lan", "image-xfce", "image-xfce-build",
                                        "image-xfce-main-disk", "image-xfce-main-initrd", "image-xfce-main-kernel",
                                        "dev-home", *desktop_parts("dev")])
        vm = mocks.named("dev-vm")
        assert (vm["name"], vm["memory"] // 1024**2, vm["vcpus"], vm["boot"]) == ("dev-dev", 2048, 2, "kernel")
        assert re.fullmatch(r"/pools/dev-main/dev-xfce-[0-9a-f]{12}-kernel\.raw", vm["kernel"]), vm["kernel"]
        assert mocks.named("dev-disk")["capacity_bytes"] == 8 * 1024**3
        assert mocks.named("dev-home")["capacity_bytes"] == 4 * 1024**3
        ready = mocks.named("dev-ready")
        assert ready["user"] == "dev"
        # the profile's {user} placeholders name the user
        assert {"user": "dev", "groups": ["netdev"]} in ready["checks"]
        assert {"file": "/etc/hostname", "contains": "dev"} in ready["checks"]
        assert {"session": "dev"} in ready["checks"]
        assert RENDERED["dev"]["graphical_session"]["autologin"] == "dev"
        assert RENDERED["dev"]["profile"] == "desktop" and RENDERED["dev"]["users"][0]["name"] == "dev"
        assert out["desktops"]["dev"]["name"] == "dev-dev" and out["desktops"]["dev"]["user"] == "dev"

    return after(outputs, check)


@pulumi.runtime.test
def test_team_stack_graph(mocks, golden):
    from components.config.loader import declare
    keys = {"ada-password": True, "grace-password": True}
    outputs = declare("team", example_stack("team"), config_keys=keys,
                      secret=lambda key: pulumi.Output.secret(f"{key}-value"))
    users = ["ada", "grace"]

    def check(out):
        # Graphical desktops of one recipe image (built once), each with /home on a volume of its own.
        expected = ["pool-main", "network-lan", "image-xfce", "image-xfce-build", "image-xfce-main-disk",
                    "image-xfce-main-initrd", "image-xfce-main-kernel"]
        for user in users:
            expected += [*desktop_parts(user), f"{user}-home"]
        assert mocks.names() == sorted(expected)
        assert sorted(out["desktops"]) == users
        sizes = {u: (mocks.named(f"{u}-vm")["memory"] // 1024**2, mocks.named(f"{u}-vm")["vcpus"],
                     mocks.named(f"{u}-disk")["capacity_bytes"] // 1024**3) for u in users}
        assert sizes == {"ada": (2048, 2, 8), "grace": (3072, 2, 8)}
        for user in users:
            # logged in at boot, the person's password hashed into the seed (and published to the portal)
            assert RENDERED[user]["graphical_session"] == {"session": "xfce", "autologin": user}
            [seeded] = RENDERED[user]["users"]
            assert verify_password(f"{user}-password-value", seeded["password_hash"])
            checks = mocks.named(f"{user}-ready")["checks"]
            assert {"session": user} in checks and {"file": "/etc/hostname", "contains": user} in checks
            assert {"user": user, "groups": ["audio", "video", "netdev"]} in checks
        assert {RENDERED[u]["profile"] for u in users} == {"desktop"}   # guests are offline: no packages
        # one login, one disk, one seed, one VM per user; each named after the user
        assert {mocks.named(f"{u}-vm")["name"] for u in users} == {f"team-{u}" for u in users}
        assert {mocks.named(f"{u}-ready")["user"] for u in users} == set(users)

    return after(outputs, check)


@pulumi.runtime.test
def test_ci_stack_graph(mocks, golden):
    from components.config.loader import declare
    outputs = declare("ci", example_stack("ci"))

    def check(out):
        assert mocks.names() == sorted(["pool-main", "network-lan", *GOLDEN_IMPORTS, *desktop_parts("ci")])
        vm = mocks.named("ci-vm")
        assert (vm["name"], vm["memory"] // 1024**2, vm["vcpus"]) == ("ci-ci", 768, 2)
        assert mocks.named("ci-disk")["capacity_bytes"] == 4 * 1024**3
        assert mocks.named("ci-ready")["cloud_init_timeout_s"] == 600
        assert out["desktops"]["ci"]["user"] == "ci"

    return after(outputs, check)


# --- identity, passwords, validation before anything is declared ---------------------------------------


def two_users(**carol):
    raw = example_stack("dev")
    raw["users"] = [{"name": "alice", "profile": "desktop"}, {"name": "carol", "profile": "desktop", **carol}]
    return raw


def _field(document: str, key: str) -> str:
    match = re.search(rf"^\s*{key}: (.+)$", document, re.M)
    assert match, (key, document)
    return match.group(1)


@pulumi.runtime.test
def test_two_users_get_their_own_instance_id_host_key_and_mac(real_seed_mocks, golden):
    from components.config.loader import declare
    outputs = declare("team", two_users())

    def check(_):
        seeds = {u: real_seed_mocks.named(f"{u}-seed") for u in ("alice", "carol")}
        instance_ids = {u: _field(s["meta_data"], "instance-id") for u, s in seeds.items()}
        host_keys = {u: _field(s["user_data"], "ed25519_public") for u, s in seeds.items()}
        macs = {u: real_seed_mocks.named(f"{u}-vm")["nics"][0]["mac"] for u in seeds}
        assert len(set(instance_ids.values())) == len(set(host_keys.values())) == len(set(macs.values())) == 2
        for user, seed in seeds.items():
            assert macs[user] in seed["network_config"]        # the seed configures the desktop's own NIC
            assert _field(seed["user_data"], "hostname") == f'"{user}"'
            assert _field(seed["meta_data"], "local-hostname") == f'"{user}"'

    return after(outputs, check)


@pulumi.runtime.test
def test_a_password_reaches_the_seed_only_as_a_stable_hash(real_seed_mocks, golden):
    from components.desktop.seeding import password_hash
    from components.config.loader import declare
    plaintext = "correct horse battery staple"
    outputs = declare("team", two_users(password="carol-password"), config_keys={"carol-password": True},
                      secret=lambda key: pulumi.Output.secret(plaintext))

    def check(_):
        carol = real_seed_mocks.named("carol-seed")["user_data"]
        assert plaintext not in carol
        hashed = yaml.safe_load(carol)["users"][0]["hashed_passwd"]
        assert hashed.startswith("$6$rounds=100000$") and verify_password(plaintext, hashed)
        # stable: the same host key gives the same hash on every run, so the seed does not churn
        private = yaml.safe_load(carol)["ssh_keys"]["ed25519_private"]
        assert password_hash(plaintext, host_private=private, user="carol") == hashed
        assert "hashed_passwd" not in real_seed_mocks.named("alice-seed")["user_data"]

    return after(outputs, check)


def test_password_salts_differ_per_user_and_desktop_and_reveal_nothing():
    from components.desktop.seeding import password_hash, password_salt
    key_a, key_b = (generate_ed25519(c).private_openssh for c in ("a", "b"))
    assert password_hash("pw", host_private=key_a, user="carol") == password_hash("pw", host_private=key_a,
                                                                                   user="carol")
    salts = {password_salt(key_a, "carol"), password_salt(key_a, "erin"), password_salt(key_b, "carol")}
    assert len(salts) == 3
    # the salt does not depend on the password
    assert password_hash("one", host_private=key_a, user="carol").split("$")[3] == \
        password_hash("two", host_private=key_a, user="carol").split("$")[3]


@pytest.mark.parametrize("config_keys,message", [
    ({}, "users[1].password: names a vdesk config key that is not set"),
    ({"carol-password": False}, "users[1].password: vdesk:carol-password is stored in plain text"),
])
def test_password_must_be_a_secret_that_is_set(mocks, golden, config_keys, message):
    from components.config.loader import declare
    with pytest.raises(InputError) as err:
        declare("team", two_users(password="carol-password"), config_keys=config_keys,
                secret=lambda key: pytest.fail("a secret was read from a config that is invalid"))
    assert message in str(err.value)
    assert mocks.resources == []


def test_bad_config_declares_nothing_and_starts_no_host(mocks, golden, monkeypatch):
    from components.config.loader import declare
    monkeypatch.setattr("components.config.loader.resolve_host", lambda h, probe_kernel: pytest.fail("host started"))
    raw = two_users()
    raw["users"][1]["profile"] = "dev"
    raw["users"].append({"name": "alice", "profile": "desktop", "memory": "2 GB"})
    with pytest.raises(InputError) as err:
        declare("team", raw)
    assert err.value.problems == [
        ("users[1].profile", "unknown profile 'dev' (declared: desktop)"),
        ("users[2].name", "duplicates users[0].name ('alice')"),
        ("users[2].memory", "'2 GB' is not a size: write an integer with an optional unit B, KiB, MiB, GiB or "
                            "TiB, e.g. 2048MiB or 2GiB"),
    ]
    assert mocks.resources == []


def test_a_template_that_rejects_a_desktop_is_reported_at_its_config_path(mocks, golden, monkeypatch):
    from components.cloudinit import CloudInitError
    from components.config.loader import declare

    def reject(profile, variables):
        if variables["hostname"] == "carol":
            raise CloudInitError([("extra.paper_size", 'must be "a4" or "letter"')])
        return _fake_render(profile, variables)

    monkeypatch.setattr("components.desktop.seeding.render_seed", reject)
    with pytest.raises(InputError) as err:
        declare("team", two_users())
    assert err.value.problems == [
        ("users[1]", "the 'desktop' template rejects it: extra.paper_size: must be \"a4\" or \"letter\"")]
    assert mocks.resources == []


def test_colliding_macs_are_refused_before_anything_is_declared(mocks, golden, monkeypatch):
    from components.config.loader import declare
    monkeypatch.setattr("components.desktop.seeding.stable_mac", lambda *parts: "52:54:00:aa:bb:cc")
    with pytest.raises(InputError) as err:
        declare("team", two_users())
    assert err.value.problems == [
        ("users[1]", "its MAC address 52:54:00:aa:bb:cc collides with that of users[0]: rename one of the two")]
    assert mocks.resources == []


@pulumi.runtime.test
def test_max_vcpus_reaches_the_domain_only_where_declared(mocks, tmp_path):
    """A desktop's max_vcpus is the Domain's hot-plug room; unset, the Domain gets none (stays as before)."""
    from components.config.loader import declare
    raw = raw_config(tmp_path, desktops=("alice", "bob"))
    raw["desktops"]["alice"].update(vcpus=1, max_vcpus=4)
    outputs = declare("unit", raw)

    def check(_):
        alice, bob = mocks.named("alice-vm"), mocks.named("bob-vm")
        assert (alice["vcpus"], alice["max_vcpus"]) == (1, 4)
        assert (bob["vcpus"], bob.get("max_vcpus")) == (1, None)

    return after(outputs, check)


@pulumi.runtime.test
def test_extra_networks_give_a_desktop_more_nics_each_configured_by_its_seed(real_seed_mocks, tmp_path):
    import yaml as _yaml
    from components.config.loader import declare
    raw = raw_config(tmp_path)
    raw["networks"]["storage"] = {"host": "local", "cidr": "10.79.0.0/24"}
    raw["desktops"]["alice"]["extra_networks"] = ["storage"]
    outputs = declare("unit", raw)

    def check(_):
        vm = real_seed_mocks.named("alice-vm")
        assert [n["network"] for n in vm["nics"]] == ["unit-lan", "unit-storage"]
        macs = [n["mac"] for n in vm["nics"]]
        assert len(set(macs)) == 2
        ethernets = _yaml.safe_load(real_seed_mocks.named("alice-seed")["network_config"])["ethernets"]
        assert {name: e["match"]["macaddress"] for name, e in ethernets.items()} == {"eth0": macs[0], "eth1": macs[1]}
        assert ethernets["eth1"]["dhcp4"] is True

    return after(outputs, check)


@pulumi.runtime.test
def test_a_home_is_a_volume_of_its_own_on_the_third_disk_and_mounted_by_the_seed(real_seed_mocks, golden):
    from components.config.loader import declare
    raw = example_stack("dev")
    raw["profiles"]["desktop"]["home"] = "10GiB"
    outputs = declare("dev", raw, config_keys={})

    def check(_):
        home = real_seed_mocks.named("dev-home")
        assert (home["name"], home["capacity_bytes"], home.get("backing_path")) == ("dev-dev-home.qcow2",
                                                                                     10 * 1024**3, None)
        disks = real_seed_mocks.named("dev-vm")["disks"]
        assert disks[2]["path"].endswith("/dev-dev-home.qcow2")
        assert (disks[2]["format"], disks[2]["serial"]) == ("qcow2", "vdesk-home")
        user_data = yaml.safe_load(real_seed_mocks.named("dev-seed")["user_data"])
        assert user_data["fs_setup"][0]["device"] == "/dev/disk/by-id/virtio-vdesk-home"
        assert user_data["fs_setup"][0]["overwrite"] is False
        assert user_data["mounts"][0][:2] == ["LABEL=vdesk-home", "/home"]

    return after(outputs["desktops"]["dev"]["ip"], check)
