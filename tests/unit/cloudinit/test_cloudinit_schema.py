"""Tier 1: user-data validation against Debian's cloud-init schema, and the schema cache."""

import json
import subprocess
from pathlib import Path

import pytest

from components.cloudinit import CloudInitError, validate_user_data
from components.cloudinit import schema as schema_module
from components.cloudinit.schema import (
    SCHEMA_FILE,
    SchemaUnavailable,
    ensure_schema,
    external_refs,
    json_path,
    user_data_errors,
)
from components.paths import cache_dir


@pytest.fixture(scope="module")
def debian_schema() -> Path:
    """The real schema, from Debian's package (downloaded once per cache)."""
    return ensure_schema()


def test_schema_comes_from_debian_cloud_init(debian_schema):
    manifest = json.loads((debian_schema.parent / "manifest.json").read_text())
    assert manifest["package"] == "cloud-init"
    assert manifest["version"].startswith("22.4")  # bookworm's cloud-init
    assert debian_schema.parent.name == manifest["version"]
    assert debian_schema.name == SCHEMA_FILE
    assert json.loads(debian_schema.read_text())["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert debian_schema.is_relative_to(cache_dir() / "cloud-init-schema")


GOOD_USER_DATA = """\
#cloud-config
hostname: "desk1"
fqdn: "desk1.example.org"
preserve_hostname: false
manage_etc_hosts: true
ssh_deletekeys: true
ssh_genkeytypes: ["ed25519"]
ssh_keys:
  ed25519_private: "-----BEGIN OPENSSH PRIVATE KEY-----\\nAAAA\\n-----END OPENSSH PRIVATE KEY-----\\n"
  ed25519_public: "ssh-ed25519 AAAA root@desk1"
ssh_pwauth: false
disable_root: true
users:
  - name: "alice"
    shell: "/bin/bash"
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    groups: ["audio", "video"]
    lock_passwd: false
    hashed_passwd: "$6$salt$hash"
    ssh_authorized_keys: ["ssh-ed25519 AAAA alice"]
packages: ["xfce4", "git"]
timezone: "Europe/Berlin"
write_files:
  - path: /etc/papersize
    content: "a4\\n"
    permissions: "0644"
    defer: true
  - path: /etc/motd
    content: !!binary aGVsbG8K
"""


def test_debian_schema_accepts_what_templates_render(debian_schema):
    assert user_data_errors(GOOD_USER_DATA, debian_schema) == []
    validate_user_data(GOOD_USER_DATA)


BAD_USER_DATA = [
    # (document body after "#cloud-config", expected path, message fragment)
    ("users: [{name: 1}]", "users[0].name", "is not of type 'string'"),
    ("ssh_pwauth: maybe", "ssh_pwauth", "deprecated"),
    ("users: [{name: bob, sudo: 5}]", "users[0].sudo", "is not of type"),
    ("users: [{name: bob, sudo: false}]", "users[0].sudo", "deprecated"),
    ("users: [{name: bob, lock_passwd: 'no'}]", "users[0].lock_passwd", "is not of type 'boolean'"),
    ("users: [{name: bob, shel: /bin/bash}]", "users[0].shel", "unknown property"),
    ("users: [{shell: /bin/sh}]", "users[0]", "name"),
    ("users: [{name: bob, ssh_authorized_keys: []}]", "users[0].ssh_authorized_keys", "non-empty"),
    ("users: [{name: bob, expiredate: tomorrow}]", "users[0].expiredate", "date"),
    ("users: []", "users", "non-empty"),
    ("ssh_keys: {ed25519_private: 5}", "ssh_keys.ed25519_private", "is not of type 'string'"),
    ("ssh_keys: {ed448_private: x}", "ssh_keys.ed448_private", "unknown property"),
    ("ssh_genkeytypes: []", "ssh_genkeytypes", "non-empty"),
    ("ssh_genkeytypes: [ed448]", "ssh_genkeytypes[0]", "is not one of"),
    ("ssh_deletekeys: 'yes'", "ssh_deletekeys", "is not of type 'boolean'"),
    ("packages: vim", "packages", "is not of type 'array'"),
    ("hostname: 42", "hostname", "is not of type 'string'"),
    ("preserve_hostname: 'no'", "preserve_hostname", "is not of type 'boolean'"),
    ("manage_etc_hosts: sometimes", "manage_etc_hosts", "none of the allowed forms"),
    ("write_files: [{content: x}]", "write_files[0].path", "required"),
    ("runcmd: ls", "runcmd", "is not of type 'array'"),
    ("chpasswd: {list: ['bob:secret']}", "chpasswd.list", "deprecated"),
    ("ssh_keys: {'rsa.private': x}", 'ssh_keys["rsa.private"]', "unknown property"),
    ("- just\n- a list", "(root)", "must be a mapping"),
    ("users: [", "(root)", "not valid YAML"),
]


@pytest.mark.parametrize("body, path, fragment", BAD_USER_DATA)
def test_bad_user_data_is_reported_with_its_path(body, path, fragment, debian_schema):
    errors = user_data_errors("#cloud-config\n" + body + "\n", debian_schema)
    assert any(p == path and fragment in m for p, m in errors), errors
    with pytest.raises(CloudInitError) as excinfo:
        validate_user_data("#cloud-config\n" + body + "\n")
    assert path in str(excinfo.value)


@pytest.mark.parametrize("text", ["hostname: desk1\n", "#!/bin/sh\nhostname: desk1\n", "\n#cloud-config\n"])
def test_missing_cloud_config_header(text, debian_schema):
    assert ("(root)", "first line must be '#cloud-config'") in user_data_errors(text, debian_schema)


def test_unknown_top_level_keys_are_not_flagged_by_this_schema(debian_schema):
    # cloud-init 22.4's schema has no additionalProperties at the top level.
    assert user_data_errors("#cloud-config\nfrobnicate: 1\n", debian_schema) == []


def test_every_error_is_reported_at_once(debian_schema):
    text = "#cloud-config\nhostname: 1\nssh_pwauth: maybe\nusers: [{name: bob, sudo: 5, shel: x}]\n"
    with pytest.raises(CloudInitError) as excinfo:
        validate_user_data(text)
    assert [path for path, _ in excinfo.value.errors] == [
        "hostname", "ssh_pwauth", "users[0].shel", "users[0].sudo",
    ]
    assert str(excinfo.value).count("\n") == 4  # a header line, then one line per error


@pytest.mark.parametrize("parts, expected", [
    ([], "(root)"),
    (["users", 0, "sudo"], "users[0].sudo"),
    (["ssh_keys", "ed25519_private"], "ssh_keys.ed25519_private"),
    (["write_files", 2, "path"], "write_files[2].path"),
    (["ssh_keys", "rsa.private"], 'ssh_keys["rsa.private"]'),
    (["a key"], '["a key"]'),
])
def test_json_path(parts, expected):
    assert json_path(parts) == expected


# --- the cache -------------------------------------------------------------------

class FakeApt:
    """Stands in for apt-get and dpkg-deb: a package holding the given schema files."""

    def __init__(self, version: str, files: dict[str, dict]):
        self.version, self.files, self.calls = version, files, []

    def __call__(self, argv, cwd=None, **_):
        self.calls.append(argv[:2])
        if argv[:2] == ["apt-get", "download"]:
            (Path(cwd) / f"cloud-init_{self.version}_all.deb").write_bytes(b"!<arch>\n")
            return subprocess.CompletedProcess(argv, 0, "", "")
        if argv[:2] == ["dpkg-deb", "--field"]:
            return subprocess.CompletedProcess(argv, 0, self.version + "\n", "")
        if argv[:2] == ["dpkg-deb", "--extract"]:
            target = Path(argv[3]) / schema_module.PACKAGE_SCHEMA_DIR
            target.mkdir(parents=True)
            for name, content in self.files.items():
                (target / name).write_text(json.dumps(content))
            return subprocess.CompletedProcess(argv, 0, "", "")
        raise AssertionError(f"unexpected command {argv}")


FAKE_FILES = {
    SCHEMA_FILE: {"$schema": "http://json-schema.org/draft-04/schema#",
                  "allOf": [{"$ref": "https://example.invalid/schemas/extra.json#/x"}]},
    "extra.json": {"x": {"$ref": "#/y"}, "y": {}},
    "unrelated.json": {},
}


@pytest.fixture
def fake_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VDESK_CACHE", str(tmp_path / "cache"))
    apt = FakeApt("22.4.2-1+deb12u9", FAKE_FILES)
    monkeypatch.setattr(schema_module.subprocess, "run", apt)
    return tmp_path / "cache", apt


def test_ensure_schema_downloads_once_then_reuses_cache(fake_cache, monkeypatch):
    cache, apt = fake_cache
    path = ensure_schema()

    assert path == cache / "cloud-init-schema" / "22.4.2-1+deb12u9" / SCHEMA_FILE
    assert apt.calls == [["apt-get", "download"], ["dpkg-deb", "--field"], ["dpkg-deb", "--extract"]]
    assert sorted(p.name for p in path.parent.iterdir()) == ["extra.json", "manifest.json", SCHEMA_FILE]
    assert sorted(p.name for p in (cache / "cloud-init-schema").iterdir()) == [
        "22.4.2-1+deb12u9", "current",  # no leftovers of the download
    ]
    mtime = path.stat().st_mtime_ns

    def no_subprocess(*args, **kwargs):
        raise AssertionError("ensure_schema ran a command although the schema is cached")

    monkeypatch.setattr(schema_module.subprocess, "run", no_subprocess)
    assert ensure_schema() == path
    assert path.stat().st_mtime_ns == mtime


def test_refresh_downloads_again(fake_cache):
    _, apt = fake_cache
    first = ensure_schema()
    apt.version = "22.4.2-1+deb12u10"
    second = ensure_schema(refresh=True)
    assert second != first and second.parent.name == "22.4.2-1+deb12u10"
    assert len(apt.calls) == 6
    assert ensure_schema() == second  # the newest entry wins afterwards


def test_incomplete_cache_entry_is_not_used(fake_cache):
    cache, apt = fake_cache
    stale = cache / "cloud-init-schema" / "22.4.2-1+deb12u1"
    stale.mkdir(parents=True)
    (stale / SCHEMA_FILE).write_text("{}")  # no manifest: an interrupted download
    assert ensure_schema().parent.name == "22.4.2-1+deb12u9"
    assert apt.calls[0] == ["apt-get", "download"]


def test_failed_download_explains_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("VDESK_CACHE", str(tmp_path))
    monkeypatch.setattr(schema_module.subprocess, "run", lambda argv, **_: subprocess.CompletedProcess(
        argv, 100, "", "E: Unable to locate package cloud-init"))
    with pytest.raises(SchemaUnavailable, match="apt-get update.*Unable to locate package"):
        ensure_schema()


@pytest.mark.parametrize("schema, expected", [
    ({"$ref": "#/$defs/a"}, set()),
    ({"allOf": [{"$ref": "https://h/x/versions.json"}, {"$ref": "other.json#/a"}]}, {"versions.json", "other.json"}),
    ({"a": [{"b": {"$ref": "deep.json"}}]}, {"deep.json"}),
])
def test_external_refs(schema, expected):
    assert external_refs(schema) == expected


def test_cli_prints_schema_path(debian_schema, capsys):
    assert schema_module.main(["--ensure"]) == 0
    assert capsys.readouterr().out.strip() == str(debian_schema)
