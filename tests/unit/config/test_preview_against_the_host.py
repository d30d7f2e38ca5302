"""What only the host knows, checked at preview: its size, and what its administrator allows.

The host is libvirt's test driver (a real libvirt API: it reports a 3 GiB, 16-CPU host);
nothing is declared when a check fails.
"""
from __future__ import annotations

import copy
import subprocess

import pytest

from components.errors import InputError
from components.host import capacity
from tests.unit.config.test_program import example_stack, golden, mocks  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("on_the_test_driver")
READ_FROM_LIBVIRT = capacity.read


@pytest.fixture
def on_the_test_driver(mocks, golden, monkeypatch):  # noqa: F811
    """`mocks` gives the host this machine's size; here libvirt's own answer is used (a 3 GiB host)."""
    monkeypatch.setattr("components.host.capacity.read", READ_FROM_LIBVIRT)


def _declare(raw):
    from components.config.loader import declare
    with pytest.raises(InputError) as err:
        declare("dev", raw, config_keys={})
    return err.value.problems


def test_a_desktop_bigger_than_its_host_names_the_field_it_inherits_from(mocks):  # noqa: F811
    raw = example_stack("dev")
    raw["profiles"]["desktop"]["memory"] = "64TiB"
    assert _declare(raw) == [("profiles.desktop.memory", "65536 GiB is more than host 'local' has (3 GiB): "
                                                          "desktop 'dev' could never start")]
    assert mocks.resources == []


def test_more_vcpus_than_a_guest_may_have_names_the_users_own_field(mocks):
    raw = example_stack("dev")
    raw["users"][0]["vcpus"] = 4096
    problems = _declare(raw)
    assert [p for p, _ in problems] == ["users[0].vcpus"]
    assert problems[0][1].startswith("4096 vCPUs is more than a guest on host 'local' may have (")


def test_running_desktops_that_do_not_fit_together_name_the_host_and_the_desktops(mocks):
    raw = example_stack("dev")
    raw["profiles"]["desktop"]["memory"] = "1GiB"
    raw["users"] = [{"name": n, "profile": "desktop"} for n in ("ann", "ben", "cy", "dee")]
    problems = _declare(raw)
    assert problems == [("hosts.local", "its running desktops (ann, ben, cy, dee) need 4 GiB of memory; it has "
                                        "3 GiB x overcommit 1: move some to another host, stop some (running: "
                                        "false) or raise overcommit.memory")]
    raw["hosts"]["local"]["overcommit"] = {"memory": 1.5}
    raw["users"][3]["running"] = False
    from components.config.loader import declare
    declare("dev", raw, config_keys={})          # fits now: no error


def test_an_image_outside_the_allowed_roots_and_a_pool_at_the_root_are_refused(mocks):
    raw = example_stack("dev")
    raw["images"]["debian12"] = {"path": "/etc/shadow"}
    raw["pools"]["main"]["path"] = "/"
    problems = dict(_declare(raw))
    assert "'/etc/shadow' is outside the images roots" in problems["images.debian12.path"]
    assert "'/' is outside the pools roots" in problems["pools.main.path"]
    assert mocks.resources == []


def test_a_file_inside_an_allowed_root_must_really_be_a_disk_image(mocks, tmp_path):
    raw = example_stack("dev")
    fake = tmp_path / "disk.qcow2"
    fake.write_text("root:x:0:0:root:/root:/bin/bash\n")
    raw["images"]["debian12"] = {"path": str(fake)}
    assert dict(_declare(raw))["images.debian12.path"].endswith(
        "is not a disk image: vdesk imports qcow2 images and raw disks with a partition table (MBR or GPT)")
    backed = tmp_path / "backed.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/shadow", "-F", "raw", str(backed)],
                   check=True)
    raw["images"]["debian12"] = {"path": str(backed)}
    assert "on a backing file (/etc/shadow)" in dict(_declare(raw))["images.debian12.path"]


def test_a_uri_is_refused_before_any_connection_naming_the_uri(mocks, monkeypatch):
    monkeypatch.setattr("components.config.loader.resolve_host",
                        lambda h, probe_kernel: pytest.fail("connected to a refused URI"))
    raw = example_stack("dev")
    raw["hosts"]["local"]["uri"] = "http://attacker.example/"
    assert _declare(raw) == [("hosts.local.uri", "'http://attacker.example/': scheme 'http' is not a libvirt driver "
                                                 "vdesk uses (use qemu:// or lxc://, optionally +ssh, +tls, ...)")]


def test_container_mounts_are_held_to_the_same_roots(mocks):
    raw = copy.deepcopy(example_stack("lab"))
    name = next(iter(raw["containers"]))
    raw["containers"][name]["mounts"] = [{"source": "/etc", "target": "/mnt/etc"}]
    assert "'/etc' is outside the container mounts roots" in dict(_declare(raw))[f"containers.{name}.mounts[0].source"]


def test_shares_are_held_to_the_share_roots_and_named_where_they_are_used(mocks, tmp_path):
    raw = example_stack("dev")
    (tmp_path / "docs").mkdir()
    raw["shares"] = {"docs": {"path": str(tmp_path / "docs")}, "etc": {"path": "/etc"},
                     "far": {"host": "remote", "path": "/srv/far"},
                     "far-rw": {"host": "remote", "path": "/srv/far-rw", "writable": True}}
    raw["hosts"]["remote"] = {"uri": "qemu+ssh://kvm2.example.org/system", "accelerator": "kvm"}
    raw["profiles"]["desktop"]["shares"] = ["docs", "etc", "nope"]
    problems = dict(_declare(raw))
    assert "'/etc' is outside the shares roots" in problems["shares.etc.path"]
    # vdesk's virtiofsd (read-only, or writable with ids mapped) is on this machine only: no share elsewhere
    assert "a share needs vdesk's virtiofsd on its host" in problems["shares.far.host"]
    assert "a share needs vdesk's virtiofsd on its host" in problems["shares.far-rw.host"]
    assert problems["profiles.desktop.shares[2]"] == "unknown share 'nope' (declared: docs, etc, far, far-rw)"
    assert "shares.docs.path" not in problems


def test_image_recipes_and_what_templates_install_are_checked_naming_the_fields(mocks, monkeypatch, tmp_path):
    from tests.unit.images.conftest import FakeIndex
    monkeypatch.setenv("VDESK_CACHE", str(tmp_path / "cache"))          # nothing built: the recipe decides
    monkeypatch.setattr("components.images.debian_index.shared_index",
                        lambda: FakeIndex({"git", "vim", "build-essential", "python3-venv", "xfce4"}))
    raw = example_stack("dev")
    raw["images"]["desk"] = {"recipe": {"desktop": "kde", "packages": ["git", "no-such-package"],
                                        "locale": "german", "timezone": "Mars/Olympus"}}
    raw["images"]["plain"] = {"recipe": {"packages": ["git"]}}
    raw["profiles"]["dev"] = {"template": "developer", "pool": "main", "network": "lan", "image": "plain",
                              "autologin": True}
    raw["users"].append({"name": "ada", "profile": "dev"})
    problems = dict(_declare(raw))
    assert "kde" in problems["images.desk.recipe.desktop"]
    assert "'no-such-package' is not a package of Debian bookworm" in problems["images.desk.recipe.packages[1]"]
    assert "images.desk.recipe.locale" in problems and "images.desk.recipe.timezone" in problems
    # the developer template installs build-essential, python3-venv and vim, which 'plain' does not hold
    mismatch = problems["profiles.dev.template"]
    assert "'plain'" in mismatch and "vim" in mismatch and "images.plain.recipe.packages" in mismatch
    assert "no desktop environment" in problems["profiles.dev.autologin"]


def test_display_and_console_settings_are_checked_naming_the_fields(mocks):
    raw = example_stack("dev")
    raw["hosts"]["local"]["console"] = {"link_validity": "forever"}
    raw["hosts"]["local"]["display"] = {"listen": "everywhere"}
    raw["hosts"]["far"] = {"uri": "qemu+ssh://kvm2.example.org/system", "accelerator": "kvm",
                           "console": {"bind": "0.0.0.0"}}
    raw["profiles"]["desktop"]["display"] = {"password_valid_for": "3 weeks"}
    problems = dict(_declare(raw))
    assert "everywhere" in problems["hosts.local.display.listen"]
    assert "hosts.local.console.link_validity" in problems
    assert problems["hosts.far.console"] == "the browser console runs beside the embedded host only"
    assert "profiles.desktop.display.password_valid_for" in problems
    raw = example_stack("dev")
    raw["hosts"]["local"]["console"] = {"tls_cert": "/etc/shadow"}     # the gateway would read and serve it
    assert "the console gateway is the host's" in dict(_declare(raw))["hosts.local.console.tls_cert"]


def test_the_hosts_console_certificate_is_under_the_certificates_roots(tmp_path):
    from components.host import policy as host_policy
    file = tmp_path / "policy.yaml"
    file.write_text(f"certificates: [{tmp_path}]\nconsole:\n  tls_cert: /etc/shadow\n")  # it would serve it
    with pytest.raises(host_policy.PolicyError, match="console.tls_cert: '/etc/shadow' is outside the certificates "
                                                      "roots"):
        host_policy.load(file)


@pytest.mark.parametrize("console", [{"port": 0}, {"bind": "127.0.0.1"}, {}])
def test_a_console_block_that_sets_one_setting_takes_the_others_defaults(mocks, console):
    """The default link_validity ("1h") is converted like a written one, not handed on as text."""
    from components.config.loader import declare
    raw = example_stack("dev")
    raw["hosts"]["local"]["console"] = console
    declare("dev", raw, config_keys={})
