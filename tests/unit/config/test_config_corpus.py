"""A corpus of bad stack configurations, each with the exact problems it must produce.

Every case starts from one valid stack (both forms: a desktop, profiles and
users) and breaks it in one way (a few break several things at once, to show
that every problem is reported in one go). The whole list of (path, message)
pairs must match exactly: nothing missing, nothing extra, in order.
"""
from __future__ import annotations

import copy

import pytest

from components.config.models import PROFILE_KEYS, SECTIONS, USER_KEYS
from components.config.resolve import parse
from components.errors import InputError

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9xHmMbWnJ7zS0pZm4n1l3E2b0h5n7cPz4q2W9kYt3u alice@laptop"
BASE = {
    "hosts": {"local": {"uri": "embedded", "accelerator": "tcg"}},
    "pools": {"main": {"host": "local"}},
    "networks": {"lan": {"host": "local", "cidr": "10.77.0.0/24"}},
    "images": {"debian12": {"golden": "debian12"}},
    "desktops": {"kiosk": {"pool": "main", "network": "lan", "image": "debian12", "users": [{"name": "kiosk"}]}},
    "profiles": {
        "standard": {"template": "desktop", "pool": "main", "network": "lan", "image": "debian12",
                     "memory": "1GiB", "vcpus": 1, "disk": "8GiB",
                     "checks": [{"service": "ssh"}, {"user": "{user}", "groups": ["netdev"]}]},
        "operator": {"template": "desktop", "pool": "main", "network": "lan", "image": "debian12",
                     "memory": "2GiB", "vcpus": 2, "groups": ["adm"]},
    },
    "users": [
        {"name": "alice", "profile": "standard", "ssh_authorized_keys": [KEY]},
        {"name": "bob", "profile": "standard", "memory": "1536MiB"},
        {"name": "carol", "profile": "operator", "password": "carol-password"},
        {"name": "dave", "profile": "operator"},
    ],
}
SECRETS = {"carol-password": True}
ALLOWED_USER = ", ".join(USER_KEYS)        # the message lists the settings vdesk knows
ALLOWED_PROFILE = ", ".join(PROFILE_KEYS)
SIZE_HINT = "write an integer with an optional unit B, KiB, MiB, GiB or TiB, e.g. 2048MiB or 2GiB"
LOGIN_HINT = ("use lowercase letters, digits, '-' and '_', starting with a letter or '_', at most 32 characters")
HOW = "store the password with `pulumi config set --secret vdesk:<key>` and write that <key> here"
GROUP_HINT = "use lowercase letters, digits, '-' and '_', starting with a letter or '_'"


def user(i):
    return lambda c: c["users"][i]


def profile(name):
    return lambda c: c["profiles"][name]


def setting(where, **values):
    """A change: update the mapping `where(config)` with `values`."""
    return lambda c: where(c).update(values)


def drop(where, key):
    return lambda c: where(c).pop(key)


def put(section, value):
    return lambda c: c.__setitem__(section, value)


def both(*changes):
    def change(c):
        for each in changes:
            each(c)
    return change


def add_far(c):
    c["hosts"]["far"] = {"uri": "qemu+ssh://far/system", "accelerator": "tcg"}


def spread_network(**more):
    def change(c):
        c["networks"]["lan"].pop("host")
        c["networks"]["lan"].update({"hosts": ["local", "far"], **more})
    return change


def spread(c):
    for section in ("pools", "networks"):
        entry = c[section]["main" if section == "pools" else "lan"]
        entry.pop("host")
        entry["hosts"] = "all"


def add_host_and_pool(c):
    c["hosts"]["remote"] = {"uri": "qemu+ssh://remote/system", "accelerator": "kvm"}
    c["pools"]["far"] = {"host": "remote"}
    c["profiles"]["standard"]["pool"] = "far"


# (id, change, config keys set in the stack (name -> is secret) or None for SECRETS, exact problems)
CASES = [
    # --- users ---------------------------------------------------------------------------------------
    ("user-unknown-profile", setting(user(3), profile="dev"), None,
     [("users[3].profile", "unknown profile 'dev' (declared: operator, standard)")]),
    ("user-without-profile", drop(user(0), "profile"), None,
     [("users[0].profile", "is required (the name of one of the profiles)")]),
    ("user-profile-not-a-name", setting(user(1), profile=["standard"]), None,
     [("users[1].profile", "must be the name of a profile, got list")]),
    ("user-without-name", drop(user(1), "name"), None,
     [("users[1].name", "is required")]),
    ("user-duplicate-name", setting(user(3), name="alice"), None,
     [("users[3].name", "duplicates users[0].name ('alice')")]),
    ("user-uppercase-name", setting(user(0), name="Alice"), None,
     [("users[0].name", f"'Alice' is not a usable login name: {LOGIN_HINT}")]),
    ("user-name-too-long", setting(user(0), name="a" * 33), None,
     [("users[0].name", f"'{'a' * 33}' is not a usable login name: {LOGIN_HINT}")]),
    ("user-system-account", setting(user(2), name="root"), None,
     [("users[2].name", "'root' is not a usable login name: it is a system account")]),
    ("user-name-not-a-desktop-name", setting(user(1), name="bob_b"), None,
     [("users[1].name", "'bob_b' is not a usable user name: it also names the user's desktop, so use lowercase "
                        "letters, digits and '-', starting with a letter and not ending with '-'")]),
    ("user-name-taken-by-a-desktop", setting(user(0), name="kiosk"), None,
     [("users[0].name", "'kiosk' is also declared as desktops.kiosk; each user's desktop is named after the user")]),
    ("users-not-a-list", put("users", {"alice": {"profile": "standard"}}), None,
     [("users", "must be a list of users, got dict")]),
    ("user-not-a-mapping", lambda c: c["users"].__setitem__(1, "bob"), None,
     [("users[1]", "must be a mapping with at least a name and a profile, got str")]),
    ("user-unknown-setting", setting(user(0), shell="/bin/zsh"), None,
     [("users[0].shell", f"unknown setting (allowed: {ALLOWED_USER})")]),
    ("user-memory-not-a-size", setting(user(1), memory="2 GB"), None,
     [("users[1].memory", f"'2 GB' is not a size: {SIZE_HINT}")]),
    ("user-memory-too-small", setting(user(1), memory=128), None,
     [("users[1].memory", "must be at least 256MiB")]),
    ("user-vcpus-zero", setting(user(0), vcpus=0), None,
     [("users[0].vcpus", "must be an integer >= 1, got 0")]),
    ("user-max-vcpus-zero", setting(user(0), max_vcpus=0), None,
     [("users[0].max_vcpus", "must be an integer >= 1, got 0")]),
    ("user-max-vcpus-below-profile-vcpus", setting(user(3), max_vcpus=1), None,
     [("users[3].max_vcpus", "must be >= vcpus (2)")]),
    ("user-max-vcpus-below-own-vcpus", setting(user(0), vcpus=4, max_vcpus=3), None,
     [("users[0].max_vcpus", "must be >= vcpus (4)")]),
    ("user-vcpus-above-profile-max-vcpus", both(setting(profile("standard"), max_vcpus=2), setting(user(1), vcpus=4)),
     None, [("users[1].vcpus", "must be <= max_vcpus (2) of profile 'standard', or set users[1].max_vcpus too")]),
    ("desktop-max-vcpus-below-vcpus", setting(lambda c: c["desktops"]["kiosk"], vcpus=4, max_vcpus=2), None,
     [("desktops.kiosk.max_vcpus", "must be >= vcpus (4)")]),
    ("user-disk-not-a-size", setting(user(3), disk="huge"), None,
     [("users[3].disk", f"'huge' is not a size: {SIZE_HINT}")]),
    ("user-groups-not-a-list", setting(user(0), groups="audio"), None,
     [("users[0].groups", "must be a list of group names")]),
    ("user-bad-group", setting(user(0), groups=["audio", "Wheel!"]), None,
     [("users[0].groups[1]", f"'Wheel!' is not a valid group name: {GROUP_HINT}")]),
    ("user-bad-check", setting(user(1), checks=[{"port": 70000}]), None,
     [("users[1].checks[0].port", "70000 is not a port (use 1-65535)")]),
    ("user-running-not-a-flag", setting(user(3), running="no"), None,
     [("users[3].running", "must be true or false")]),
    ("user-private-key-as-public", setting(user(0), ssh_authorized_keys=["-----BEGIN OPENSSH PRIVATE KEY-----"]),
     None, [("users[0].ssh_authorized_keys[0]",
             "is not an OpenSSH public key ('ssh-ed25519 AAAA... comment'); value not shown")]),
    # --- passwords: names of secret config keys, never values --------------------------------------------
    ("password-key-not-set", lambda c: None, {},
     [("users[2].password", f"names a vdesk config key that is not set (value not shown, in case it is a "
                            f"password): {HOW}")]),
    ("password-key-in-plain-text", lambda c: None, {"carol-password": False},
     [("users[2].password", "vdesk:carol-password is stored in plain text: set it again with "
                            "`pulumi config set --secret vdesk:carol-password`")]),
    ("password-written-in-place", setting(user(2), password="hunter 2!"), None,
     [("users[2].password", f"must name a secret vdesk config key, e.g. alice-password (value not shown): {HOW}")]),
    ("password-names-a-section", setting(user(2), password="users"), {"users": False},
     [("users[2].password", f"must name a secret vdesk config key, e.g. alice-password (value not shown): {HOW}")]),
    ("desktop-user-password-not-set", lambda c: c["desktops"]["kiosk"]["users"][0].update(password="kiosk-pw"),
     None, [("desktops.kiosk.users[0].password", f"names a vdesk config key that is not set (value not shown, "
                                                 f"in case it is a password): {HOW}")]),
    ("plain-config-key-that-is-no-section", lambda c: None, {"carol-password": True, "user": False},
     [("user", f"unknown section (allowed: {', '.join(SECTIONS)})")]),
    # --- email: what maps an OpenID Connect identity to the user --------------------------------------------
    ("user-email-not-an-address", setting(user(0), email="alice at example.org"), None,
     [("users[0].email", "'alice at example.org' is not an email address (name@example.org)")]),
    ("desktop-user-email-not-an-address", lambda c: c["desktops"]["kiosk"]["users"][0].update(email="kiosk@"),
     None, [("desktops.kiosk.users[0].email", "'kiosk@' is not an email address (name@example.org)")]),
    ("password-not-a-string", setting(user(2), password=1234), None,
     [("users[2].password", f"must name a secret vdesk config key, e.g. alice-password (value not shown): {HOW}")]),
    ("desktop-user-twice", lambda c: c["desktops"]["kiosk"]["users"].append({"name": "kiosk"}), None,
     [("desktops.kiosk.users[1].name", "duplicates desktops.kiosk.users[0].name ('kiosk')")]),
    # --- profiles ----------------------------------------------------------------------------------------
    ("profile-unknown-template", setting(profile("standard"), template="kiosk"), None,
     [("profiles.standard.template", "unknown template 'kiosk' (available: desktop, developer, office)")]),
    ("profile-unknown-pool", setting(profile("standard"), pool="fast"), None,
     [("profiles.standard.pool", "unknown pool 'fast' (declared: main)")]),
    ("profile-without-network", drop(profile("operator"), "network"), None,
     [("profiles.operator.network", "is required (the name of one of the networks)")]),
    ("profile-unknown-image", setting(profile("operator"), image="fedora"), None,
     [("profiles.operator.image", "unknown image 'fedora' (declared: debian12)")]),
    ("profile-unknown-host", setting(profile("operator"), host="remote"), None,
     [("profiles.operator.host", "unknown host 'remote' (declared: local)")]),
    ("profile-pool-on-another-host", add_host_and_pool, None,
     [("profiles.standard.pool", "'far' is on host 'remote', not on 'local'")]),
    ("profile-memory-not-a-size", setting(profile("standard"), memory="1 GB"), None,
     [("profiles.standard.memory", f"'1 GB' is not a size: {SIZE_HINT}")]),
    ("profile-vcpus-negative", setting(profile("operator"), vcpus=-1), None,
     [("profiles.operator.vcpus", "must be an integer >= 1, got -1")]),
    ("profile-max-vcpus-below-vcpus", setting(profile("operator"), max_vcpus=1), None,   # reported once, not per user
     [("profiles.operator.max_vcpus", "must be >= vcpus (2)")]),
    ("profile-bad-group", setting(profile("operator"), groups=[7]), None,
     [("profiles.operator.groups[0]", f"7 is not a valid group name: {GROUP_HINT}")]),
    ("profile-check-without-kind", setting(profile("standard"), checks=[{"colour": "blue"}]), None,
     [("profiles.standard.checks[0]", "names no check kind (use one of: package, absent_package, service, "
                                      "file, port, user, command, session); got key(s): colour")]),
    ("profile-unknown-setting", setting(profile("operator"), packages=["vim"]), None,
     [("profiles.operator.packages", f"unknown setting (allowed: {ALLOWED_PROFILE})")]),
    ("profile-bad-name", lambda c: c["profiles"].__setitem__("Power_Users", c["profiles"].pop("operator")), None,
     [("profiles.Power_Users", "'Power_Users' is not a valid name: use 1-63 lowercase letters, digits and '-', "
                               "starting and ending with a letter or digit"),
      ("users[2].profile", "unknown profile 'operator' (declared: standard)"),
      ("users[3].profile", "unknown profile 'operator' (declared: standard)")]),
    ("profiles-not-a-mapping", put("profiles", ["standard"]), None,
     [("profiles", "must be a mapping of names to settings, got list"),
      ("users[0].profile", "unknown profile 'standard' (declared: none declared)"),
      ("users[1].profile", "unknown profile 'standard' (declared: none declared)"),
      ("users[2].profile", "unknown profile 'operator' (declared: none declared)"),
      ("users[3].profile", "unknown profile 'operator' (declared: none declared)")]),
    ("profile-running-not-a-flag", setting(profile("standard"), running="yes"), None,
     [("profiles.standard.running", "must be true or false")]),
    ("profile-with-nothing-under-it", put("profiles", {"standard": None, "operator": BASE["profiles"]["operator"]}),
     None, [("profiles.standard.pool", "is required (the name of one of the pools)"),
            ("profiles.standard.network", "is required (the name of one of the networks)"),
            ("profiles.standard.image", "is required (the name of one of the images)")]),
    # --- the other sections --------------------------------------------------------------------------------
    ("unknown-section", put("hostz", {"local": {}}), None,
     [("hostz", f"unknown section (allowed: {', '.join(SECTIONS)})")]),
    ("unknown-timeout", put("timeouts", {"boot": 60}), None,
     [("timeouts.boot", "unknown timeout (allowed: address, ssh, cloud_init, shutdown, graphical)")]),
    ("timeout-zero", put("timeouts", {"ssh": 0}), None,
     [("timeouts.ssh", "must be an integer >= 1, got 0")]),
    ("no-hosts", put("hosts", {}), None,
     [("hosts", "declare at least one host"),
      ("pools.main.host", "unknown host 'local' (declared: none declared)"),
      ("networks.lan.host", "unknown host 'local' (declared: none declared)")]),
    ("host-entry-broken-is-still-declared", put("hosts", {"local": {"uri": "localhost"}}), None,
     [("hosts.local.uri", "'localhost' must be 'embedded' or a libvirt URI such as qemu:///system")]),
    # --- several hosts: where a desktop, pool or network may be --------------------------------------------
    ("pool-host-and-hosts", both(add_far, setting(lambda c: c["pools"]["main"], hosts="all")), None,
     [("pools.main.hosts", "give host or hosts, not both")]),
    ("pool-on-no-host", drop(lambda c: c["pools"]["main"], "host"), None,
     [("pools.main.host", "is required (the name of one of the hosts), or give hosts")]),
    ("network-hosts-not-a-list", both(add_far, spread_network(hosts="everywhere")), None,
     [("networks.lan.hosts", "must be a non-empty list of host names, or all, got 'everywhere'")]),
    ("profile-hosts-unknown-and-twice", both(add_far, spread, setting(profile("standard"),
                                                                       hosts=["local", "remote", "local"])), None,
     [("profiles.standard.hosts[1]", "unknown host 'remote' (declared: far, local)"),
      ("profiles.standard.hosts[2]", "'local' is listed twice")]),
    ("profile-host-and-hosts", both(add_far, spread, setting(profile("standard"), host="local", hosts="all")), None,
     [("profiles.standard.hosts", "give host or hosts, not both")]),
    ("profile-hosts-pool-not-everywhere", both(add_far, spread_network(), setting(profile("standard"), hosts="all")),
     None, [("profiles.standard.pool", "pool 'main' is on host 'local', not on 'far', where this desktop may be "
                                       "placed: declare it there too (hosts: [...] or all)")]),
    ("user-hosts-empty", both(add_far, spread, setting(user(0), hosts=[])), None,
     [("users[0].hosts", "must be a non-empty list of host names, or all, got an empty list")]),
    ("user-hosts-network-not-there", both(add_far, setting(user(1), hosts=["far"])), None,
     [("users[1].hosts", "pool 'main' is on host 'local', not on 'far', where this desktop may be placed: declare "
                         "it there too (hosts: [...] or all)"),
      ("users[1].hosts", "network 'lan' is on host 'local', not on 'far', where this desktop may be placed: "
                         "declare it there too (hosts: [...] or all)")]),
    # --- CPU and GPUs (what needs the host is checked at preview: tests/unit/config/test_several_hosts.py) ---
    ("cpu-model-with-another-mode", setting(profile("operator"), cpu={"mode": "host-model", "model": "EPYC"}), None,
     [("profiles.operator.cpu.model", "a named model is mode custom; mode host-model takes no model")]),
    ("cpu-custom-without-model", setting(profile("operator"), cpu={"mode": "custom"}), None,
     [("profiles.operator.cpu.mode", "custom needs a model, e.g. model: Haswell-noTSX")]),
    ("cpu-unknown-mode", setting(profile("operator"), cpu={"mode": "host"}), None,
     [("profiles.operator.cpu.mode", "'host' is not one of host-passthrough, host-model, custom")]),
    ("cpu-unknown-setting", setting(profile("operator"), cpu={"pins": [1]}), None,
     [("profiles.operator.cpu.pins", "unknown CPU setting (allowed: mode, model, pinning)")]),
    ("cpu-pinning-not-a-cpu-set", setting(user(0), cpu={"pinning": ["2-"]}), None,
     [("users[0].cpu.pinning[0]", "'2-' is not a CPU set (e.g. 2, '2-3' or '0,4')")]),
    ("cpu-pinning-more-than-vcpus", setting(profile("operator"), cpu={"pinning": [0, 1, 2]}), None,
     [("profiles.operator.cpu.pinning", "pins 3 vCPUs, but the desktop has at most 2 (max_vcpus, else vcpus)")]),
    ("user-fewer-vcpus-than-the-profile-pins", both(setting(profile("operator"), cpu={"pinning": [0, 1]}),
                                                    setting(user(3), vcpus=1)), None,
     [("users[3].vcpus", "profile 'operator' pins 2 vCPUs: set users[3].cpu.pinning for 1")]),
    ("gpu-both-kinds", setting(user(2), gpus=[{"pci": "0000:01:00.0", "mdev": "nvidia-222"}]), None,
     [("users[2].gpus[0]", "give pci (a whole device) or mdev (a vGPU type), not both")]),
    ("gpu-neither-kind", setting(profile("standard"), gpus=[{}]), None,
     [("profiles.standard.gpus[0]", "give pci: <address> (a whole device) or mdev: <type> (a vGPU)")]),
    ("gpu-parent-without-mdev", setting(user(0), gpus=[{"pci": "01:00.0", "parent": "01:00.0"}]), None,
     [("users[0].gpus[0].parent", "is only for mdev (the device a vGPU is made on)")]),
    ("gpu-not-a-pci-address", setting(user(0), gpus=[{"pci": "gpu0"}]), None,
     [("users[0].gpus[0].pci", "'gpu0' is not a PCI address (domain:bus:slot.function, e.g. 0000:01:00.0)")]),
    ("gpus-not-a-list", setting(user(0), gpus={"pci": "01:00.0"}), None,
     [("users[0].gpus", "must be a list of GPUs, each {pci: <address>} or {mdev: <type>}")]),
    ("idle-too-soon", setting(user(1), idle={"after": "10s"}), None,
     [("users[1].idle.after", "must be 1 minute to 30 days")]),
    ("idle-warn-after-the-action", setting(profile("standard"), idle={"after": "5m", "warn": "1h"}), None,
     [("profiles.standard.idle", "warn (3600 s) must be shorter than after (300 s)")]),
    ("idle-unknown-action-and-key", setting(lambda c: c["desktops"]["kiosk"], idle={"action": "hibernate", "nap": 1}),
     None, [("desktops.kiosk.idle.nap", "unknown idle setting (allowed: after, action, warn)"),
            ("desktops.kiosk.idle.action", "'hibernate' is not one of suspend, shutdown")]),
    ("schedule-unknown-zone-and-day", setting(user(0), schedule={"days": ["mon", "someday"], "start": "07:00",
                                                                  "stop": "20:00", "timezone": "Mars/Olympus"}),
     None, [("users[0].schedule.days[1]", "'someday' is not one of mon, tue, wed, thu, fri, sat, sun"),
            ("users[0].schedule.timezone", "'Mars/Olympus' is not a time zone this host knows (e.g. UTC, "
                                           "Europe/Berlin)")]),
    ("quota-memory-and-group-count", setting(lambda c: c, quotas={
        "users": {"bob": {"memory": "1GiB"}}, "groups": {"adm": {"desktops": 1, "memory": "3GiB"}}}), None,
     [("quotas.users.bob.memory", "bob's desktops declared running have 1536MiB of memory (bob 1536MiB), over "
                                  "the quota of 1GiB"),
      ("quotas.groups.adm.desktops", "group adm's desktops declared running are 2 (carol, dave), over the quota "
                                     "of 1"),
      ("quotas.groups.adm.memory", "group adm's desktops declared running have 4GiB of memory (carol 2GiB, dave "
                                   "2GiB), over the quota of 3GiB")]),
    ("quota-unknown-setting", setting(lambda c: c, quotas={"groups": {"adm": {"cpus": 1}}}), None,
     [("quotas.groups.adm.cpus", "unknown quota setting (allowed: desktops, memory)")]),
    # --- several mistakes, all reported at once, in config order ---------------------------------------
    ("many-at-once", both(setting(user(3), profile="dev"), setting(user(1), memory="2 GB", vcpus="two"),
                          setting(profile("standard"), template="kiosk"),
                          setting(lambda c: c["desktops"]["kiosk"], network="wan")), {},
     [("desktops.kiosk.network", "unknown network 'wan' (declared: lan)"),
      ("profiles.standard.template", "unknown template 'kiosk' (available: desktop, developer, office)"),
      ("users[1].memory", f"'2 GB' is not a size: {SIZE_HINT}"),
      ("users[1].vcpus", "must be an integer >= 1, got 'two'"),
      ("users[2].password", f"names a vdesk config key that is not set (value not shown, in case it is a "
                            f"password): {HOW}"),
      ("users[3].profile", "unknown profile 'dev' (declared: operator, standard)")]),
]


def test_the_base_configuration_is_valid():
    cfg = parse(copy.deepcopy(BASE), stack="team", config_keys=SECRETS)
    assert list(cfg.desktops) == ["kiosk", "alice", "bob", "carol", "dave"]


def test_a_quota_counts_only_the_desktops_declared_running():
    raw = copy.deepcopy(BASE)
    raw["users"][3]["running"] = False
    raw["quotas"] = {"groups": {"adm": {"desktops": 1, "memory": "2GiB"}}, "users": {"carol": {"desktops": 1}}}
    assert list(parse(raw, stack="team", config_keys=SECRETS).desktops) == ["kiosk", "alice", "bob", "carol", "dave"]


def test_the_corpus_is_large_and_its_cases_are_distinct():
    ids = [case[0] for case in CASES]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)


@pytest.mark.parametrize("change,config_keys,problems", [case[1:] for case in CASES], ids=[c[0] for c in CASES])
def test_bad_configuration_produces_exactly_these_problems(change, config_keys, problems):
    raw = copy.deepcopy(BASE)
    change(raw)
    with pytest.raises(InputError) as err:
        parse(raw, stack="team", config_keys=SECRETS if config_keys is None else config_keys)
    assert err.value.problems == problems
    # str() lists them the way `pulumi preview` shows them: one "path: message" per line
    assert str(err.value).splitlines() == [f"{path}: {message}" for path, message in problems]


def test_a_password_written_in_place_of_its_key_is_never_echoed():
    secret = "Tr0ub4dor&3 horse"
    for value in (secret, "Tr0ub4dor3horse"):
        raw = copy.deepcopy(BASE)
        raw["users"][2]["password"] = value
        with pytest.raises(InputError) as err:
            parse(raw, stack="team", config_keys=SECRETS)
        assert value not in str(err.value)
