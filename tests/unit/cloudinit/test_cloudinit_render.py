"""Tier 1: rendering seeds from profiles, the variable contract, YAML safety and password hashes."""

import copy
import pickle
import re

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from components.cloudinit import (
    TEMPLATES_DIR,
    CloudInitError,
    available_profiles,
    hash_password,
    render_seed,
    validate_user_data,
    verify_password,
)
from components.cloudinit.render import render_template, to_yaml

PROFILES = ["desktop", "developer", "office"]
ALICE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"
BOB_KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob@desk"
SECRET = "correct horse battery staple"


def make_host_key(passphrase: bytes | None = None) -> dict:
    key = Ed25519PrivateKey.generate()
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return {"ed25519_private": private.decode(), "ed25519_public": public.decode() + " root@desk1"}


@pytest.fixture(scope="module")
def host_keys():
    return make_host_key()


@pytest.fixture
def variables(host_keys):
    return {
        "hostname": "desk1",
        "instance_id": "iid-desk1-0001",
        "fqdn": "desk1.example.org",
        "users": [
            {"name": "alice", "ssh_authorized_keys": [ALICE_KEY], "groups": ["wheel"]},
            {"name": "bob", "ssh_authorized_keys": [BOB_KEY], "sudo": False, "shell": "/bin/sh"},
        ],
        "host_keys": dict(host_keys),
        "interfaces": [
            {"mac": "52:54:00:AA:00:01"},
            {"mac": "52:54:00:aa:00:02", "dhcp4": False, "addresses": ["192.0.2.10/24"],
             "gateway4": "192.0.2.1", "nameservers": {"addresses": ["192.0.2.53"], "search": ["example.org"]}},
        ],
        "packages": ["htop"],
        "extra": {"timezone": "Europe/Berlin"},
    }


def parse(docs):
    return (yaml.safe_load(docs.user_data), yaml.safe_load(docs.meta_data),
            yaml.safe_load(docs.network_config))


def error_paths(excinfo) -> list[str]:
    return [path for path, _ in excinfo.value.errors]


# --- profiles --------------------------------------------------------------

def test_available_profiles_lists_concrete_templates_only():
    assert available_profiles() == PROFILES
    assert (TEMPLATES_DIR / "user-data" / "base.yaml.j2").is_file()


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_renders_parses_and_validates(profile, variables):
    docs = render_seed(profile, variables)
    user_data, meta_data, network = parse(docs)

    assert docs.user_data.startswith("#cloud-config\n")
    validate_user_data(docs.user_data)  # render_seed did too; must still hold
    assert meta_data == {"instance-id": "iid-desk1-0001", "local-hostname": "desk1"}
    assert network["version"] == 2
    assert user_data["hostname"] == "desk1"
    assert user_data["fqdn"] == "desk1.example.org"
    assert user_data["preserve_hostname"] is False
    assert user_data["manage_etc_hosts"] is True
    assert user_data["timezone"] == "Europe/Berlin"
    for forbidden in ("package_update", "package_upgrade", "apt_update", "apt_upgrade", "locale"):
        assert forbidden not in user_data


@pytest.mark.parametrize("profile, must_have, must_not_have", [
    # desktop (the golden image's default) adds nothing of its own: guests are offline
    ("desktop", {"htop"}, {"git", "libreoffice-writer", "xfce4"}),
    ("developer", {"git", "build-essential", "htop"}, {"libreoffice-writer"}),
    ("office", {"libreoffice-writer", "cups", "htop"}, {"git"}),
])
def test_profiles_inherit_packages(profile, must_have, must_not_have, variables):
    packages = yaml.safe_load(render_seed(profile, variables).user_data)["packages"]
    assert must_have <= set(packages)
    assert not must_not_have & set(packages)
    assert len(packages) == len(set(packages))
    assert packages[-1] == "htop"  # the caller's packages come after the profile's


@pytest.mark.parametrize("profile, must_have, must_not_have", [
    ("desktop", {"wheel", "audio", "video", "plugdev"}, {"adm", "lpadmin"}),
    ("developer", {"wheel", "audio", "video", "plugdev", "adm", "systemd-journal"}, {"lpadmin"}),
    ("office", {"wheel", "audio", "video", "lpadmin"}, {"adm"}),
])
def test_profiles_inherit_groups(profile, must_have, must_not_have, variables):
    alice = yaml.safe_load(render_seed(profile, variables).user_data)["users"][0]
    assert must_have <= set(alice["groups"])
    assert not must_not_have & set(alice["groups"])


@pytest.mark.parametrize("profile", ["kiosk", "base", "../meta-data", "", "Desktop"])
def test_unknown_profile_is_named(profile, variables):
    with pytest.raises(CloudInitError) as excinfo:
        render_seed(profile, variables)
    assert error_paths(excinfo) == ["profile"]
    assert "desktop" in str(excinfo.value)


@pytest.mark.parametrize("paper, expected", [(None, "a4\n"), ("a4", "a4\n"), ("letter", "letter\n")])
def test_office_paper_size_from_extra(paper, expected, variables):
    if paper:
        variables["extra"]["paper_size"] = paper
    user_data = yaml.safe_load(render_seed("office", variables).user_data)
    assert user_data["write_files"] == [
        {"path": "/etc/papersize", "content": expected, "permissions": "0644", "defer": True}
    ]


def test_office_rejects_unknown_paper_size(variables):
    variables["extra"]["paper_size"] = "a3"
    with pytest.raises(CloudInitError) as excinfo:
        render_seed("office", variables)
    assert error_paths(excinfo) == ["extra.paper_size"]


# --- users and SSH -----------------------------------------------------------

def test_users_defaults_and_overrides(variables):
    alice, bob = yaml.safe_load(render_seed("desktop", variables).user_data)["users"]
    assert alice["sudo"] == "ALL=(ALL) NOPASSWD:ALL"
    assert alice["shell"] == "/bin/bash"
    assert alice["ssh_authorized_keys"] == [ALICE_KEY]
    assert alice["lock_passwd"] is True
    assert "sudo" not in bob  # sudo: false means no rule at all
    assert bob["shell"] == "/bin/sh"
    assert "hashed_passwd" not in alice and "passwd" not in alice


def test_host_key_is_the_only_key(variables, host_keys):
    user_data = yaml.safe_load(render_seed("desktop", variables).user_data)
    assert user_data["ssh_keys"] == {
        "ed25519_private": host_keys["ed25519_private"],
        "ed25519_public": host_keys["ed25519_public"],
    }
    assert user_data["ssh_genkeytypes"] == ["ed25519"]
    assert user_data["ssh_deletekeys"] is True
    assert user_data["ssh_pwauth"] is False


def test_every_boot_puts_the_pinned_host_key_back(variables, host_keys, tmp_path):
    """The bootcmd, run as cloud-init runs it (sh, argv), restores empty or missing key files exactly."""
    import os
    import subprocess
    user_data = yaml.safe_load(render_seed("desktop", variables).user_data)
    [argv] = user_data["bootcmd"]
    assert argv[:2] == ["sh", "-c"] and argv[4:] == [host_keys["ed25519_private"], host_keys["ed25519_public"]]
    ssh = tmp_path / "etc" / "ssh"
    ssh.mkdir(parents=True)
    (ssh / "ssh_host_ed25519_key").write_text("")          # what a power cut right after first boot left
    script = argv[2].replace("/etc/ssh/", f"{ssh}/")
    subprocess.run([argv[0], argv[1], script, *argv[3:]], check=True)
    assert (ssh / "ssh_host_ed25519_key").read_text() == host_keys["ed25519_private"]
    assert (ssh / "ssh_host_ed25519_key.pub").read_text() == host_keys["ed25519_public"]
    assert oct(os.stat(ssh / "ssh_host_ed25519_key").st_mode & 0o777) == "0o600"
    assert oct(os.stat(ssh / "ssh_host_ed25519_key.pub").st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in ssh.iterdir()) == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]


def test_every_boot_writes_the_seeds_shares_into_fstab_and_mounts_them(variables, tmp_path):
    """cloud-init's `mounts` ignores virtiofs tags, so a bootcmd keeps /etc/fstab in step with the seed."""
    import subprocess
    shares = [{"tag": "docs", "mountpoint": "/mnt/shares/docs"},
              {"tag": "team-data", "mountpoint": "/mnt/shares/team-data", "readonly": False}]
    user_data = yaml.safe_load(render_seed("desktop", {**variables, "shares": shares}).user_data)
    assert "mounts" not in user_data, "no virtiofs entry in cloud-init's mounts, which would drop it"
    [_, argv] = user_data["bootcmd"]
    assert argv[:2] == ["sh", "-c"] and argv[3] == "vdesk-shares"
    fstab = tmp_path / "fstab"
    fstab.write_text("LABEL=root / ext4 defaults 0 1\n"
                     "old /mnt/shares/old virtiofs defaults,nofail,x-mount.mkdir,x-vdesk-share,ro 0 0\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mount").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/mounted\n")
    (bin_dir / "mount").chmod(0o755)
    script = argv[2].replace("/etc/fstab", str(fstab))
    for _ in range(2):      # every boot, and the second changes nothing
        subprocess.run([argv[0], argv[1], script, *argv[3:]], check=True,
                       env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
        assert fstab.read_text().splitlines() == [
            "LABEL=root / ext4 defaults 0 1",
            "docs /mnt/shares/docs virtiofs defaults,nofail,x-mount.mkdir,x-vdesk-share,ro 0 0",
            "team-data /mnt/shares/team-data virtiofs defaults,nofail,x-mount.mkdir,x-vdesk-share,rw 0 0"]
    assert (tmp_path / "mounted").read_text().splitlines() == ["-a -t virtiofs"] * 2


def test_a_home_is_mounted_through_cloud_inits_mounts(variables):
    user_data = yaml.safe_load(render_seed("desktop", {**variables, "home_device": "/dev/vdb"}).user_data)
    assert user_data["mounts"] == [["LABEL=vdesk-home", "/home", "ext4",
                                    "defaults,nofail,x-systemd.device-timeout=60s", "0", "2"]]
    # `auto` reuses an ext4 labelled vdesk-home: with `none`, cloud-init formats the raw disk (mkfs -F) on every
    # new instance, i.e. at every image rollout (cc_disk_setup.mkfs, cloud-init 22.4).
    assert (user_data["fs_setup"][0]["partition"], user_data["fs_setup"][0]["overwrite"]) == ("auto", False)
    assert len(user_data["bootcmd"]) == 1, "no shares, no share command"


def test_password_hash_only_ever_appears_hashed(variables):
    password_hash = hash_password(SECRET)
    variables["users"][0]["password_hash"] = password_hash
    docs = render_seed("developer", variables)
    alice, bob = yaml.safe_load(docs.user_data)["users"]

    assert alice["hashed_passwd"] == password_hash
    assert alice["lock_passwd"] is False
    assert bob["lock_passwd"] is True and "hashed_passwd" not in bob
    assert yaml.safe_load(docs.user_data)["ssh_pwauth"] is True
    for text in (docs.user_data, docs.meta_data, docs.network_config):
        assert SECRET not in text


@pytest.mark.parametrize("value", [SECRET, "hunter2", "$1$abc$md5isnotaccepted", "$6$nosaltnohash",
                                   "$6$salt$ spaced hash"])
def test_plaintext_password_is_rejected_without_echo(value, variables):
    variables["users"][0]["password_hash"] = value
    with pytest.raises(CloudInitError) as excinfo:
        render_seed("desktop", variables)
    assert error_paths(excinfo) == ["users[0].password_hash"]
    assert value not in str(excinfo.value)


def test_password_only_user_may_have_no_keys(variables):
    variables["users"][1]["ssh_authorized_keys"] = []
    variables["users"][1]["password_hash"] = hash_password(SECRET)
    bob = yaml.safe_load(render_seed("desktop", variables).user_data)["users"][1]
    assert "ssh_authorized_keys" not in bob  # the schema wants a non-empty list or none


@pytest.mark.parametrize("change, path", [
    (lambda keys: keys.update(ed25519_public=make_host_key()["ed25519_public"]), "host_keys.ed25519_public"),
    (lambda keys: keys.update(make_host_key(b"passphrase"), ed25519_public=keys["ed25519_public"]),
     "host_keys.ed25519_private"),
    (lambda keys: keys.update(ed25519_public="ssh-rsa AAAAB3NzaC1yc2E host"), "host_keys.ed25519_public"),
    (lambda keys: keys.update(ed25519_private="not a key"), "host_keys.ed25519_private"),
    (lambda keys: keys.pop("ed25519_private"), "host_keys.ed25519_private"),
    (lambda keys: keys.update(rsa_private="x"), "host_keys.rsa_private"),
])
def test_bad_host_keys_are_named(change, path, variables):
    change(variables["host_keys"])
    with pytest.raises(CloudInitError) as excinfo:
        render_seed("desktop", variables)
    assert path in error_paths(excinfo)
    assert "PRIVATE KEY-----\n" not in str(excinfo.value)


# --- the variable contract -----------------------------------------------------

@pytest.mark.parametrize("name", ["hostname", "instance_id", "users", "host_keys", "interfaces"])
def test_missing_variable_is_named(name, variables):
    del variables[name]
    with pytest.raises(CloudInitError) as excinfo:
        render_seed("desktop", variables)
    assert error_paths(excinfo) == [name]
    assert "missing" in str(excinfo.value)


@pytest.mark.parametrize("template, context, variable, location", [
    ("meta-data.yaml.j2", {"hostname": "desk1"}, "instance_id", r"template meta-data\.yaml\.j2 line \d+$"),
    ("meta-data.yaml.j2", {"instance_id": "iid-1"}, "hostname", r"template meta-data\.yaml\.j2 line \d+$"),
    ("network-config.yaml.j2", {"interfaces": [{"mac": "52:54:00:00:00:01"}]}, "name",
     r"template network-config\.yaml\.j2 line \d+$"),
    ("user-data/developer.yaml.j2", {"profile": "developer"}, "hostname",
     r"template user-data/base\.yaml\.j2 line \d+, rendering user-data/developer\.yaml\.j2$"),
])
def test_undefined_template_variable_names_variable_and_template(template, context, variable, location):
    with pytest.raises(CloudInitError) as excinfo:
        render_template(template, context)
    [(path, message)] = excinfo.value.errors
    assert path == variable
    assert re.search(location, message)


def test_all_errors_are_reported_together(variables):
    variables["hostname"] = "bad_host"
    variables["users"][0]["sudo"] = "yes"
    variables["users"][1]["shell"] = "bash"
    variables["interfaces"][1]["gateway4"] = "2001:db8::1"
    variables["packges"] = ["vim"]
    with pytest.raises(CloudInitError) as excinfo:
        render_seed("desktop", variables)
    assert sorted(error_paths(excinfo)) == sorted([
        "hostname", "users[0].sudo", "users[1].shell", "interfaces[1].gateway4", "packges",
    ])
    for path in error_paths(excinfo):
        assert path in str(excinfo.value)


def test_error_survives_pickling():
    error = CloudInitError([("users[0].sudo", "must be true or false"), ("hostname", "bad")])
    copied = pickle.loads(pickle.dumps(error))
    assert copied.errors == error.errors and str(copied) == str(error)


@pytest.mark.parametrize("change, path", [
    (lambda v: v.update(users=[]), "users"),
    (lambda v: v.update(users="alice"), "users"),
    (lambda v: v["users"].append(copy.deepcopy(v["users"][0])), "users[2].name"),
    (lambda v: v["users"][0].pop("name"), "users[0].name"),
    (lambda v: v["users"][0].pop("ssh_authorized_keys"), "users[0].ssh_authorized_keys"),
    (lambda v: v["users"][0].update(ssh_authorized_keys=[]), "users[0].ssh_authorized_keys"),
    (lambda v: v["users"][0].update(ssh_authorized_keys=["not a key"]), "users[0].ssh_authorized_keys[0]"),
    (lambda v: v["users"][0].update(groups=["ok", "Not Ok"]), "users[0].groups[1]"),
    (lambda v: v["users"][0].update(sudo="ALL"), "users[0].sudo"),
    (lambda v: v["users"][0].update(nmae="typo"), "users[0].nmae"),
    (lambda v: v.update(fqdn="other.example.org"), "fqdn"),
    (lambda v: v.update(instance_id="a/b"), "instance_id"),
    (lambda v: v.update(packages=["vim; rm -rf /"]), "packages[0]"),
    (lambda v: v.update(extra=["timezone"]), "extra"),
    (lambda v: v.update(interfaces=[]), "interfaces"),
    (lambda v: v["interfaces"][0].update(mac="52:54:00:aa:00"), "interfaces[0].mac"),
    (lambda v: v["interfaces"][1].update(mac="52:54:00:AA:00:01"), "interfaces[1].mac"),
    (lambda v: v["interfaces"][1].update(addresses=["192.0.2.10"]), "interfaces[1].addresses[0]"),
    (lambda v: v["interfaces"][1].update(dhcp4="no"), "interfaces[1].dhcp4"),
    (lambda v: v["interfaces"][1].update(nameservers={"addresses": ["dns.example"]}),
     "interfaces[1].nameservers.addresses[0]"),
])
def test_contract_violations_are_named(change, path, variables):
    change(variables)
    with pytest.raises(CloudInitError) as excinfo:
        render_seed("desktop", variables)
    assert error_paths(excinfo) == [path]


# --- YAML safety ---------------------------------------------------------------

HOSTILE = [
    'quote " and \' and \\ backslash',
    "colon: value, - dash, # hash, & anchor, * alias, ! tag, % directive, @ at, ` tick",
    "{flow: [mapping]} | > --- ...",
    "yes",
    "null",
    "0o17",
    "unicode: café ☕ 🖥 \u2028 \ufeff",
]


@pytest.mark.parametrize("comment", HOSTILE)
def test_hostile_key_comments_round_trip(comment, variables):
    key = f"{ALICE_KEY.rsplit(' ', 1)[0]} {comment}"
    variables["users"][0]["ssh_authorized_keys"] = [key, 'from="10.0.0.1",command="echo \'a: b\'" ' + BOB_KEY]
    alice = yaml.safe_load(render_seed("desktop", variables).user_data)["users"][0]
    assert alice["ssh_authorized_keys"] == [key.strip(), 'from="10.0.0.1",command="echo \'a: b\'" ' + BOB_KEY]


@pytest.mark.parametrize("value", HOSTILE + ["line one\nkey: injected\n- item", "trailing newline\n"])
def test_hostile_extra_values_round_trip(value, variables):
    variables["extra"]["timezone"] = value
    docs = render_seed("desktop", variables)
    assert yaml.safe_load(docs.user_data)["timezone"] == value
    assert "injected" not in yaml.safe_load(docs.user_data)


@pytest.mark.parametrize("instance_id", ["iid:with:colons", "i-0123.abc_def", "x" * 128])
def test_instance_id_round_trips(instance_id, variables):
    variables["instance_id"] = instance_id
    assert yaml.safe_load(render_seed("desktop", variables).meta_data)["instance-id"] == instance_id


@pytest.mark.parametrize("change, path", [
    (lambda v: v.update(hostname='desk"1'), "hostname"),
    (lambda v: v.update(hostname="desk1:\n  evil: true"), "hostname"),
    (lambda v: v["users"][0].update(name="alice\n- name: root"), "users[0].name"),
    (lambda v: v["users"][0].update(name="al'ice"), "users[0].name"),
    (lambda v: v["users"][0].update(groups=["sudo\nroot"]), "users[0].groups[0]"),
    (lambda v: v["users"][0].update(ssh_authorized_keys=[ALICE_KEY + "\n" + BOB_KEY]),
     "users[0].ssh_authorized_keys[0]"),
])
def test_hostile_names_are_rejected_not_rendered(change, path, variables):
    change(variables)
    with pytest.raises(CloudInitError) as excinfo:
        render_seed("desktop", variables)
    assert error_paths(excinfo) == [path]


@pytest.mark.parametrize("value", [
    "plain", 'q"uote', "multi\nline\n", "", "yes", "~", 42, 1.5, True, None,
    ["a", "b: c"], {"k": "v", "n": [1, 2]}, "🖥 \u2028 \x07",
])
def test_yaml_filter_is_one_line_and_round_trips(value):
    text = to_yaml(value)
    assert "\n" not in text
    assert yaml.safe_load(f"key: {text}\n") == {"key": value}


# --- network-config ------------------------------------------------------------

def test_network_config_matches_by_mac(variables):
    network = yaml.safe_load(render_seed("desktop", variables).network_config)
    assert network == {
        "version": 2,
        "ethernets": {
            "eth0": {"match": {"macaddress": "52:54:00:aa:00:01"}, "set-name": "eth0", "dhcp4": True},
            "eth1": {
                "match": {"macaddress": "52:54:00:aa:00:02"},
                "set-name": "eth1",
                "dhcp4": False,
                "addresses": ["192.0.2.10/24"],
                "gateway4": "192.0.2.1",
                "nameservers": {"addresses": ["192.0.2.53"], "search": ["example.org"]},
            },
        },
    }


def test_nameservers_may_be_a_plain_list(variables):
    variables["interfaces"][1]["nameservers"] = ["192.0.2.53", "2001:db8::53"]
    eth1 = yaml.safe_load(render_seed("desktop", variables).network_config)["ethernets"]["eth1"]
    assert eth1["nameservers"] == {"addresses": ["192.0.2.53", "2001:db8::53"]}


# --- password hashes -----------------------------------------------------------

@pytest.mark.parametrize("secret, salt, rounds, expected", [
    # From the SHA-crypt specification's test vectors.
    ("Hello world!", "saltstring", 5000,
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
    ("Hello world!", "saltstringsaltstring", 10000,
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/"
     "YTBmSK6H9qs/y3RnOaw5v."),
    # Cross-checked with `openssl passwd -6 -salt abc` and glibc crypt(3).
    ('pässwörd: "x"', "abc", 5000,
     "$6$abc$w8tcTBAcK9NviF4elxFAZlDAwRutxSO1/tbTyz8TeTDk.3tgh5JCGwPsgYztw9BIVFOsHNwwMu8KUdBiMCzVC0"),
    (SECRET, "vdeskvdeskvdesk0", 100000,
     "$6$rounds=100000$vdeskvdeskvdesk0$4hFMNnOpm1keNWJwr9GMcUtjJbuKJhgO/BcA5.PbOVeIayzFwg59c797iCxngkk11rN"
     "A5s9IzzmCyuPewUCA91"),
])
def test_hash_password_matches_reference_vectors(secret, salt, rounds, expected):
    assert hash_password(secret, salt=salt, rounds=rounds) == expected
    assert verify_password(secret, expected)
    assert not verify_password(secret + "!", expected)


def test_hash_password_salts_freshly():
    first, second = hash_password(SECRET), hash_password(SECRET)
    assert first.startswith("$6$rounds=") and second.startswith("$6$rounds=")
    assert first != second
    assert verify_password(SECRET, first) and verify_password(SECRET, second)
    assert SECRET not in first


@pytest.mark.parametrize("not_a_hash", ["", SECRET, "$5$abc$def", "$6$abc$short"])
def test_verify_password_rejects_non_sha512_hashes(not_a_hash):
    assert verify_password(SECRET, not_a_hash) is False


# --- a desktop image's graphical session -------------------------------------------------------------

AUTOLOGIN = "/etc/lightdm/lightdm.conf.d/50-vdesk-autologin.conf"


@pytest.mark.parametrize("profile", PROFILES)
def test_autologin_writes_lightdms_config_before_the_display_manager_starts(variables, profile):
    variables["graphical_session"] = {"session": "xfce", "autologin": "alice"}
    user_data, _, _ = parse(render_seed(profile, variables))
    [entry] = [f for f in user_data["write_files"] if f["path"] == AUTOLOGIN]
    assert entry["content"].splitlines()[1:] == ["[Seat:*]", "autologin-user=alice", "autologin-user-timeout=0",
                                                 "autologin-session=xfce"]
    assert "defer" not in entry, "written in cloud-init's init stage, which LightDM waits for"
    if profile == "office":
        assert [f["path"] for f in user_data["write_files"]] == [AUTOLOGIN, NO_BLANKING, FIT_DISPLAY, FIT_AUTOSTART,
                                                                 "/etc/papersize"]


def test_a_console_image_gets_no_lightdm_or_xorg_config(variables):
    user_data, _, _ = parse(render_seed("developer", variables))
    assert "write_files" not in user_data


GREETER = "/etc/lightdm/lightdm-gtk-greeter.conf.d/50-vdesk-greeter.conf"
NO_BLANKING = "/etc/X11/xorg.conf.d/50-vdesk-no-blanking.conf"
GREETER_NO_BLANKING = "/etc/lightdm/lightdm-gtk-greeter.conf.d/51-vdesk-no-blanking.conf"
FIT_DISPLAY = "/usr/local/bin/vdesk-fit-display"
FIT_AUTOSTART = "/etc/xdg/autostart/vdesk-fit-display.desktop"


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("autologin", ["alice", None])
def test_a_graphical_session_never_blanks_or_powers_down_its_display(variables, profile, autologin):
    """X.Org's defaults blank the screen and put the display to sleep after 10 idle minutes; QEMU then shows
    "Display output is not active" to a console opened later. Written before the display manager starts."""
    variables["graphical_session"] = {"session": "xfce", "autologin": autologin}
    user_data, _, _ = parse(render_seed(profile, variables))
    files = {f["path"]: f for f in user_data["write_files"]}
    lines = [line.strip() for line in files[NO_BLANKING]["content"].splitlines() if not line.startswith("#")]
    assert lines == ['Section "ServerFlags"', 'Option "BlankTime" "0"', 'Option "StandbyTime" "0"',
                     'Option "SuspendTime" "0"', 'Option "OffTime" "0"', "EndSection"]
    assert "defer" not in files[NO_BLANKING]
    if autologin:
        assert GREETER_NO_BLANKING not in files
    else:   # the greeter sets its own screen-saver timeout (60 s by default) while it is shown
        assert files[GREETER_NO_BLANKING]["content"].splitlines()[1:] == ["[greeter]", "screensaver-timeout=0"]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("autologin", ["alice", None])
def test_a_graphical_session_takes_the_mode_its_console_window_asks_for(variables, profile, autologin):
    """noVNC's remote resize gives virtio-gpu a new preferred mode, announced as a DRM change event; X.Org
    does not switch to it itself, and a udev rule cannot reach the session's X server. Each session starts
    a watcher (XDG autostart, so with the session's DISPLAY and XAUTHORITY) that switches its screen."""
    variables["graphical_session"] = {"session": "xfce", "autologin": autologin}
    user_data, _, _ = parse(render_seed(profile, variables))
    files = {f["path"]: f for f in user_data["write_files"]}
    script = files[FIT_DISPLAY]["content"]
    assert files[FIT_DISPLAY]["permissions"] == "0755" and script.startswith("#!/bin/sh\n")
    commands = [line.strip() for line in script.splitlines() if not line.startswith("#")]
    assert commands == [
        "udevadm monitor --udev --subsystem-match=drm | while read -r source _stamp action _rest; do",
        '[ "$source" = UDEV ] && [ "$action" = change ] || continue',
        "output=$(xrandr --query | awk '/ connected/ {print $1; exit}')",
        '[ -n "$output" ] && xrandr --output "$output" --auto', "done"]
    entry = [line for line in files[FIT_AUTOSTART]["content"].splitlines() if not line.startswith("#")]
    assert entry[0] == "[Desktop Entry]" and "Type=Application" in entry and "NoDisplay=true" in entry
    assert f"Exec={FIT_DISPLAY}" in entry
    assert "defer" not in files[FIT_AUTOSTART], "in place before the display manager starts the first session"


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("session, wallpaper", [("xfce", "/usr/share/backgrounds/xfce/xfce-shapes.svg"),
                                                ("lxqt", "/usr/share/lxqt/wallpapers/waves-logo.png")])
def test_without_autologin_the_greeter_shows_the_desktops_wallpaper(variables, profile, session, wallpaper):
    """Debian's default greeter background (desktop-base) is not in the images: a login box on black is 90 %
    one colour, which the readiness gate takes for a text console."""
    variables["graphical_session"] = {"session": session, "autologin": None}
    user_data, _, _ = parse(render_seed(profile, variables))
    [entry] = [f for f in user_data["write_files"] if f["path"] == GREETER]
    assert entry["content"].splitlines()[1:] == ["[greeter]", f"background={wallpaper}"]
    assert "defer" not in entry, "written in cloud-init's init stage, which LightDM waits for"
    assert AUTOLOGIN not in [f["path"] for f in user_data["write_files"]]


def test_with_autologin_the_greeter_is_left_as_it_is(variables):
    variables["graphical_session"] = {"session": "xfce", "autologin": "alice"}
    user_data, _, _ = parse(render_seed("developer", variables))
    assert [f["path"] for f in user_data["write_files"]] == [AUTOLOGIN, NO_BLANKING, FIT_DISPLAY, FIT_AUTOSTART]


def test_autologin_must_name_one_of_the_users(variables):
    variables["graphical_session"] = {"session": "xfce; rm -rf /", "autologin": "mallory", "greeter": "x"}
    with pytest.raises(CloudInitError) as excinfo:
        render_seed("desktop", variables)
    assert error_paths(excinfo) == ["graphical_session.greeter", "graphical_session.session",
                                    "graphical_session.autologin"]


# --- the contract as a model ---------------------------------------------------------------------

def test_rules_between_fields_are_reported_beside_other_problems(variables):
    """A duplicate name, an fqdn of another host and a mismatched key pair are found even when fields are wrong."""
    variables["hostname"] = "desk1"
    variables["instance_id"] = "a/b"
    variables["users"].append(copy.deepcopy(variables["users"][0]))
    variables["users"][1]["shell"] = "bash"
    variables["fqdn"] = "other.example.org"
    variables["host_keys"]["ed25519_public"] = make_host_key()["ed25519_public"]
    variables["graphical_session"] = {"session": "xfce", "autologin": "carol", "theme": "dark"}
    with pytest.raises(CloudInitError) as excinfo:
        render_seed("desktop", variables)
    assert error_paths(excinfo) == ["instance_id", "host_keys.ed25519_public", "fqdn", "users[1].shell",
                                    "users[2].name", "graphical_session.theme", "graphical_session.autologin"]


def test_every_field_of_the_contract_says_what_it_is():
    """The contract is written once, on the models: each field carries its description, and the schema has it."""
    from components.cloudinit import contract
    parts = [contract.SeedVariables, contract.SeedUser, contract.HostKeys, contract.SeedInterface,
             contract.Nameservers, contract.Share, contract.GraphicalSession]
    undescribed = [f"{part.__name__}.{name}" for part in parts for name, field in part.model_fields.items()
                   if not field.description]
    assert undescribed == []
    schema = contract.SeedVariables.model_json_schema()
    assert schema["required"] == ["hostname", "instance_id", "users", "host_keys", "interfaces"]
    assert schema["properties"]["fqdn"]["description"] == '"<hostname>.<domain>"'
