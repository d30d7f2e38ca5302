import subprocess
"""Stack configuration is validated as a whole; each problem names its config path."""
import copy

import pytest

from components.config.resolve import parse
from components.errors import InputError

VALID = {
    "hosts": {"local": {"uri": "embedded", "accelerator": "tcg"}},
    "pools": {"main": {"host": "local"}},
    "networks": {"lan": {"host": "local", "cidr": "10.77.0.0/24"}},
    "images": {"debian12": {"golden": "debian12"}},
    "desktops": {"dev": {"pool": "main", "network": "lan", "image": "debian12", "memory": "1GiB",
                         "vcpus": 2, "disk": "8GiB", "users": [{"name": "dev"}]}},
}


def with_change(path, value):
    cfg = copy.deepcopy(VALID)
    node = cfg
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return cfg


_DELETE = object()


def test_valid_config_parses_with_units_normalised():
    cfg = parse(VALID, stack="dev")
    desk = cfg.desktops["dev"]
    assert (desk.settings.memory, desk.settings.vcpus, desk.settings.disk) == (1024**3, 2, 8 * 1024**3)
    assert desk.host == "local" and cfg.prefix == "dev"


@pytest.mark.parametrize("path,value,field,message", [
    ("desktops.dev.memory", "2 GB", "desktops.dev.memory", "'2 GB' is not a size"),
    ("desktops.dev.memory", 128, "desktops.dev.memory", "must be at least 256MiB"),
    ("desktops.dev.network", "wan", "desktops.dev.network", "unknown network 'wan' (declared: lan)"),
    ("desktops.dev.pool", "fast", "desktops.dev.pool", "unknown pool 'fast' (declared: main)"),
    ("desktops.dev.vcpus", 0, "desktops.dev.vcpus", "must be an integer >= 1, got 0"),
    ("desktops.dev.vcpus", "two", "desktops.dev.vcpus", "must be an integer >= 1, got 'two'"),
    ("desktops.dev.disk", "lots", "desktops.dev.disk", "'lots' is not a size"),
    ("desktops.dev.colour", "blue", "desktops.dev.colour", "unknown setting"),
    ("images.debian12", {"path": "/nonexistent/disk.qcow2"}, "images.debian12.path",
     "'/nonexistent/disk.qcow2' does not exist or is not a file"),
    ("images.debian12", {"golden": "fedora"}, "images.debian12.golden", "'fedora' is not an image vdesk builds"),
    ("hosts.local.accelerator", "fast", "hosts.local.accelerator", "'fast' is not one of kvm, tcg, auto"),
    ("hosts.local.uri", "localhost", "hosts.local.uri", "must be 'embedded' or a libvirt URI"),
    ("networks.lan.cidr", "10.77.0.1/24", "networks.lan.cidr", "is not a network in CIDR form"),
    ("networks.lan.cidr", "10.77.0.0/30", "networks.lan.cidr", "too small"),
    ("networks.lan.mode", "bridged", "networks.lan.mode", "'bridged' is not one of nat, isolated, route, open"),
    ("desktops.dev.users", [{"name": "root"}], "desktops.dev.users[0].name", "'root' is not a usable login name"),
    ("desktops.dev.users", [{"name": "a", "ssh_authorized_keys": ["hunter2"]}],
     "desktops.dev.users[0].ssh_authorized_keys[0]", "is not an OpenSSH public key"),
    ("desktops.dev.users", [{"name": "a", "ssh_authorized_keys": "ssh-ed25519 AAAA"}],
     "desktops.dev.users[0].ssh_authorized_keys", "must be a list of OpenSSH public keys"),
    ("desktops.dev.profile", "kiosk", "desktops.dev.profile", "unknown template 'kiosk' (available: desktop, "),
    ("desktops.Dev_1", {}, "desktops.Dev_1", "is not a valid name"),
    ("pools.main.path", "relative/dir", "pools.main.path", "must be an absolute path"),
    ("networks.lan.dns_hosts", [{"ip": "10.77.0.9"}], "networks.lan.dns_hosts[0]", "needs ip and hostnames"),
    ("networks.lan.dhcp_hosts", "alice", "networks.lan.dhcp_hosts", "must be a list"),
    ("networks.lan.address_sources", ["dhcp"], "networks.lan.address_sources",
     "must be a non-empty list of lease, agent, arp, got ['dhcp']"),
])
def test_bad_input_names_the_field(path, value, field, message):
    with pytest.raises(InputError) as err:
        parse(with_change(path, value), stack="dev")
    assert any(p == field and message in m for p, m in err.value.problems), err.value.problems


def test_every_problem_is_reported_at_once():
    cfg = with_change("desktops.dev.memory", "2 GB")
    cfg["desktops"]["dev"]["network"] = "wan"
    cfg["images"]["debian12"] = {"path": "/nonexistent.qcow2"}
    with pytest.raises(InputError) as err:
        parse(cfg, stack="dev")
    fields = {p for p, _ in err.value.problems}
    assert {"desktops.dev.memory", "desktops.dev.network", "images.debian12.path"} <= fields
    text = str(err.value)
    assert "desktops.dev.memory: '2 GB' is not a size" in text


def test_overlapping_networks_on_one_host_are_rejected():
    cfg = copy.deepcopy(VALID)
    cfg["networks"]["lab"] = {"host": "local", "cidr": "10.77.0.128/25"}
    with pytest.raises(InputError) as err:
        parse(cfg, stack="dev")
    assert ("networks.lab.cidr", "10.77.0.128/25 overlaps networks.lan (10.77.0.0/24) on host 'local'") \
        in err.value.problems


def test_user_image_with_its_own_bootloader_is_accepted(tmp_path):
    image = tmp_path / "cloud.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    cfg = with_change("images.debian12", {"path": str(image), "boot": "uefi"})
    assert parse(cfg, stack="dev").images["debian12"].boot == "uefi"


TEAM = {
    **{k: v for k, v in VALID.items() if k != "desktops"},
    "profiles": {
        "standard": {"template": "desktop", "pool": "main", "network": "lan", "image": "debian12",
                     "memory": "1GiB", "vcpus": 1, "disk": "8GiB", "groups": ["audio"],
                     "checks": [{"user": "{user}", "groups": ["audio"]}, {"file": "/etc/hostname",
                                                                          "contains": "{user}"}]},
        "big": {"pool": "main", "network": "lan", "image": "debian12", "memory": 2048, "vcpus": 4},
    },
    "users": [
        {"name": "alice", "profile": "standard"},
        {"name": "bob", "profile": "standard", "memory": "1536MiB", "vcpus": 2, "disk": "20GiB",
         "groups": ["plugdev"], "checks": [{"service": "ssh"}], "running": False,
         "ssh_authorized_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBob bob@laptop"]},
        {"name": "carol", "profile": "big", "password": "carol-password"},
    ],
}


def test_users_get_one_desktop_each_from_their_profile_with_overrides():
    cfg = parse(TEAM, stack="team", config_keys={"carol-password": True})
    assert list(cfg.desktops) == ["alice", "bob", "carol"]
    alice, bob, carol = cfg.desktops.values()
    assert (alice.settings.memory, alice.settings.vcpus, alice.settings.disk, alice.settings.running) == (
        1024**3, 1, 8 * 1024**3, True)
    assert alice.users[0].groups == ["audio"] and alice.profile == "desktop" and alice.source == "users[0]"
    assert alice.settings.checks == [{"user": "alice", "groups": ["audio"]}, {"file": "/etc/hostname", "contains": "alice"}]
    assert (bob.settings.memory, bob.settings.vcpus, bob.settings.disk, bob.settings.running) == (
        1536 * 1024**2, 2, 20 * 1024**3, False)
    assert bob.users[0].groups == ["plugdev"] and bob.settings.checks == [{"service": "ssh"}]
    assert bob.users[0].ssh_authorized_keys == ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBob bob@laptop"]
    assert (carol.settings.memory, carol.settings.vcpus, carol.settings.disk) == (2 * 1024**3, 4, 8 * 1024**3)
    assert carol.users[0].password == "carol-password" and carol.profile == "desktop"
    assert (alice.host, alice.pool, alice.network, alice.image) == ("local", "main", "lan", "debian12")


def test_max_vcpus_is_optional_and_inherited_from_the_profile_unless_the_user_sets_it():
    raw = copy.deepcopy(TEAM)
    raw["profiles"]["big"]["max_vcpus"] = 8
    raw["users"][1]["max_vcpus"] = 4
    raw["desktops"] = {"dev": dict(VALID["desktops"]["dev"], max_vcpus=2)}
    cfg = parse(raw, stack="team", config_keys={"carol-password": True})
    assert [cfg.desktops[n].settings.max_vcpus for n in ("alice", "bob", "carol", "dev")] == [None, 4, 8, 2]
    assert cfg.profiles["big"].max_vcpus == 8 and cfg.profiles["standard"].max_vcpus is None


def test_both_forms_mix_and_secrets_that_no_user_names_are_allowed():
    raw = copy.deepcopy(TEAM)
    raw["desktops"] = copy.deepcopy(VALID["desktops"])
    cfg = parse(raw, stack="team", config_keys={"carol-password": True, "spare-secret": True, "users": False})
    assert list(cfg.desktops) == ["dev", "alice", "bob", "carol"]


def test_gitops_pipeline_plans_on_change_applies_on_merge_and_reconciles_on_schedule():
    from pathlib import Path
    import yaml
    repo = Path(__file__).resolve().parents[3]
    pipeline = yaml.safe_load((repo / ".ci" / "pipelines" / "gitops.yml").read_text())
    text = yaml.safe_dump(pipeline)
    triggers = pipeline.get("on", pipeline.get(True))   # YAML 1.1 reads a bare `on` as true
    assert set(triggers) >= {"pull_request", "push", "schedule"}
    steps = [step.get("run", "") for job in pipeline["jobs"].values() for step in job["steps"]]
    assert any(s.startswith(".ci/gitops plan ") and s.endswith("FETCH_HEAD") for s in steps)
    assert any(s.startswith(".ci/gitops apply ") for s in steps)
    assert any(s.startswith(".ci/gitops reconcile ") for s in steps)
    # a change request runs main's code, never its own: it checks out main and takes only the stack file
    plan = pipeline["jobs"]["plan"]
    assert plan["steps"][0]["with"]["ref"] == "main"
    for name in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_BACKEND_URL"):
        assert name in pipeline["env"]
    for job in pipeline["jobs"].values():
        for stack in job.get("strategy", {}).get("matrix", {}).get("stack", []):
            assert (repo / "stacks" / f"Pulumi.{stack}.yaml").is_file()


# --- the per-user mirror of the stack files (components.cli.workdir) ----------------------------------------

SALT_A, SALT_B = "v1:AAAA:v1:aaaa:aaaa", "v1:BBBB:v1:bbbb:bbbb"


def test_mirror_of_a_per_user_stack_keeps_the_users_salt_and_secrets():
    from components.cli.workdir import merge
    declared = {"config": {"vdesk:prefix": "dev"}}
    previous = {"encryptionsalt": SALT_A, "config": {"vdesk:prefix": "old", "vdesk:dev-password": {"secure": "x"},
                                                     "vdesk:stale": "plain"}}
    assert merge(declared, previous) == {
        "encryptionsalt": SALT_A, "config": {"vdesk:prefix": "dev", "vdesk:dev-password": {"secure": "x"}}}


def test_mirror_of_a_team_stack_uses_the_repos_salt_and_secure_values():
    from components.cli.workdir import merge
    declared = {"encryptionsalt": SALT_B, "config": {"vdesk:carol-password": {"secure": "team"}}}
    # this user's own salt (and what it encrypted) cannot decrypt the team's values: both go
    previous = {"encryptionsalt": SALT_A, "config": {"vdesk:mine": {"secure": "x"}}}
    assert merge(declared, previous) == declared
    # once on the team salt, secrets set in the mirror stay
    previous = {"encryptionsalt": SALT_B, "config": {"vdesk:mine": {"secure": "y"}}}
    assert merge(declared, previous)["config"] == {"vdesk:carol-password": {"secure": "team"},
                                                   "vdesk:mine": {"secure": "y"}}


def test_a_secret_is_placed_in_the_stack_file_without_touching_anything_else():
    from components.cli.workdir import put_secure
    text = ("# the team's stack\nconfig:\n  # hosts first\n  vdesk:hosts:\n    local: {uri: embedded}\n"
            "  vdesk:carol-password:\n    secure: v1:old\n  vdesk:users: []  # nobody yet\n")
    replaced = put_secure(text, "vdesk:carol-password", "v1:new", SALT_A)
    assert replaced == (f"encryptionsalt: {SALT_A}\n# the team's stack\nconfig:\n  # hosts first\n"
                        "  vdesk:hosts:\n    local: {uri: embedded}\n  vdesk:carol-password:\n    secure: v1:new\n"
                        "  vdesk:users: []  # nobody yet\n")
    added = put_secure(replaced, "vdesk:erin-password", "v1:erin", SALT_B)   # the file's own salt stays
    assert added == replaced.replace("config:\n", "config:\n  vdesk:erin-password:\n    secure: v1:erin\n")
    with pytest.raises(ValueError):
        put_secure("config:\n  vdesk:k: plain\n", "vdesk:k", "v1:x", None)


def test_address_sources_default_by_network_type_and_are_configurable():
    cfg = copy.deepcopy(VALID)
    cfg["networks"]["quiet"] = {"host": "local", "cidr": "10.78.0.0/24", "dhcp": False}
    cfg["networks"]["arp"] = {"host": "local", "cidr": "10.79.0.0/24", "address_sources": ["arp", "agent"]}
    nets = parse(cfg, stack="dev").networks
    assert nets["lan"].address_sources == ("lease", "agent")
    assert nets["quiet"].address_sources == ("agent",)      # no DHCP: only the guest agent knows
    assert nets["arp"].address_sources == ("arp", "agent")
    cfg["networks"]["quiet"]["address_sources"] = ["lease"]
    with pytest.raises(InputError) as err:
        parse(cfg, stack="dev")
    assert ("networks.quiet.address_sources", "'lease' needs dhcp: true on this network") in err.value.problems


def test_static_address_on_a_network_without_dhcp():
    cfg = copy.deepcopy(VALID)
    cfg["networks"]["fixed"] = {"host": "local", "cidr": "10.84.0.0/24", "dhcp": False}
    cfg["desktops"]["dev"].update(network="fixed", address="10.84.0.50")
    desk = parse(cfg, stack="dev").desktops["dev"]
    assert (desk.address, desk.gateway) == ("10.84.0.50/24", "10.84.0.1")


@pytest.mark.parametrize("network,address,message", [
    ("lan", "10.77.0.50", "network 'lan' hands out addresses by DHCP: reserve this one with "
                          "networks.lan.dhcp_hosts, or set dhcp: false there"),
    ("fixed", "10.84.0.1", "10.84.0.1 is not a usable IPv4 host address of network 'fixed' (10.84.0.0/24; "
                           "10.84.0.1 is its gateway)"),
    ("fixed", "10.99.0.5", "10.99.0.5 is not a usable IPv4 host address of network 'fixed'"),
    ("fixed", "ten", "'ten' is not an IP address"),
])
def test_bad_static_address_names_the_field(network, address, message):
    cfg = copy.deepcopy(VALID)
    cfg["networks"]["fixed"] = {"host": "local", "cidr": "10.84.0.0/24", "dhcp": False}
    cfg["desktops"]["dev"].update(network=network, address=address)
    with pytest.raises(InputError) as err:
        parse(cfg, stack="dev")
    assert any(p == "desktops.dev.address" and message in m for p, m in err.value.problems), err.value.problems


def test_two_desktops_cannot_share_a_static_address():
    cfg = copy.deepcopy(VALID)
    cfg["networks"]["fixed"] = {"host": "local", "cidr": "10.84.0.0/24", "dhcp": False}
    cfg["desktops"]["dev"].update(network="fixed", address="10.84.0.50")
    cfg["desktops"]["two"] = dict(cfg["desktops"]["dev"], users=[{"name": "two"}])
    with pytest.raises(InputError) as err:
        parse(cfg, stack="dev")
    assert ("desktops.two.address", "10.84.0.50 is already the address of desktops.dev") in err.value.problems


# --- how problems are worded (components/config/problems.py) ---------------------------------------------

SECRET_LOOKING = "Tr0ub4dor&3 horse"


@pytest.mark.parametrize("where", ["users", "desktop-users"])
@pytest.mark.parametrize("value", [SECRET_LOOKING, ["hunter2"], {"pw": "hunter2"}, 12345678, "users"])
def test_a_password_or_key_in_the_wrong_place_is_never_shown(where, value):
    raw = copy.deepcopy(TEAM)
    entry = raw["users"][0] if where == "users" else \
        raw.setdefault("desktops", copy.deepcopy(VALID["desktops"]))["dev"]["users"][0]
    entry["password"] = value
    entry["ssh_authorized_keys"] = ["-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA", value]
    with pytest.raises(InputError) as err:
        parse(raw, stack="team", config_keys={"carol-password": True})
    text = str(err.value)
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in text and "hunter2" not in text and SECRET_LOOKING not in text
    assert "12345678" not in text
    assert "value not shown" in text


def test_an_empty_setting_is_the_same_as_none_and_an_empty_entry_takes_every_default():
    raw = copy.deepcopy(TEAM)
    raw["hosts"] = {"local": None}                      # `local:` with nothing under it
    raw["users"][1].update(memory=None, groups=None)    # `memory:` with nothing after it: the profile's
    raw["profiles"]["big"]["checks"] = None
    cfg = parse(raw, stack="team", config_keys={"carol-password": True})
    assert cfg.hosts["local"].uri == "embedded" and cfg.hosts["local"].accelerator == "auto"
    assert cfg.desktops["bob"].settings.memory == 1024**3 and cfg.desktops["bob"].users[0].groups == ["audio"]
    assert cfg.profiles["big"].checks == ()


@pytest.mark.parametrize("entry,problems", [
    ({"start": "10.77.0.10"}, [("networks.lan.dhcp_range", "must be {start, end}, two IPv4 addresses")]),
    ({"start": "10.77.0.10", "end": "ten"}, [("networks.lan.dhcp_range.end", "'ten' is not an IPv4 address")]),
    ({"start": "10.77.0.10", "end": "10.77.0.20", "size": 5},
     [("networks.lan.dhcp_range.size", "unknown setting (allowed: start, end)")]),
])
def test_the_parts_of_a_small_value_are_named(entry, problems):
    with pytest.raises(InputError) as err:
        parse(with_change("networks.lan.dhcp_range", entry), stack="dev")
    assert err.value.problems == problems


def test_a_broken_entry_is_still_declared_so_references_to_it_say_nothing_more():
    cfg = with_change("pools.main", {"host": "local", "path": "relative"})
    cfg["networks"]["lan"]["cidr"] = "10.77.0.0/33"
    with pytest.raises(InputError) as err:
        parse(cfg, stack="dev")
    assert [p for p, _ in err.value.problems] == ["pools.main.path", "networks.lan.cidr"]


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key)
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield (*path, i)
            yield from _leaves(value, (*path, i))


def test_no_problem_is_left_in_pydantics_words_or_paths():
    """Every setting of a valid stack, set to values of each wrong kind: vdesk's words and paths only."""
    base = copy.deepcopy(TEAM)
    base["desktops"] = copy.deepcopy(VALID["desktops"])
    base["desktops"]["dev"].update(cpu_topology={"sockets": 1, "cores": 2, "threads": 1}, machine="q35",
                                   extra_networks=[], address=None)
    base["networks"]["lan"].update(dhcp_range={"start": "10.77.0.10", "end": "10.77.0.90"},
                                   dhcp_hosts=[{"mac": "52:54:00:00:00:01", "ip": "10.77.0.5"}],
                                   dns_hosts=[{"ip": "10.77.0.9", "hostnames": ["files"]}])
    base["containers"] = {"c": {"image": "debian12", "env": {"A": "1"}, "mounts": [{"source": "/a", "target": "/b"}]}}
    base["timeouts"] = {"ssh": 30}
    seen = 0
    for path in list(_leaves(base)):
        for value in ([], {}, "Bad Value", -1, 1.5, True, [None], {"x": 1}):
            raw = copy.deepcopy(base)
            node = raw
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            try:
                parse(raw, stack="team", config_keys={"carol-password": True})
            except InputError as err:
                seen += 1
                for where, message in err.problems:
                    assert "Input should" not in message and "Value error" not in message \
                        and "Field required" not in message and "Extra inputs" not in message, (where, message)
                    assert "[key]" not in where and "function" not in where and "-" not in where.split(".")[0], \
                        (where, message)
    assert seen > 500
