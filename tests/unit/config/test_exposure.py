"""Exposure is the administrator's: each is refused at preview without the host policy's leave, and accepted with it.

The stack is the example `dev` (or `lab`) stack with one exposure added; the policy is the tests' session
policy with every exposure key taken out, then with the one key that gives leave. A refusal names the
stack field and the policy key, and nothing is declared.
"""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from components.errors import InputError
from components.host import policy as host_policy
from tests.unit.config.test_program import example_stack, golden, mocks  # noqa: F401  (fixtures)

EXPOSURE_KEYS = (*host_policy.EXPOSURE_LISTS, *host_policy.EXPOSURE_ROOTS, *host_policy.EXPOSURE_FLAGS)


@pytest.fixture
def with_policy(monkeypatch, tmp_path):
    """write(extra): the session policy without its exposure grants, plus `extra` lines; in force at once."""
    session = Path(os.environ["VDESK_POLICY"]).read_text().splitlines()
    kept = [line for line in session if line.split(":", 1)[0] not in EXPOSURE_KEYS]

    def write(*extra: str) -> Path:
        file = tmp_path / f"policy-{len(list(tmp_path.glob('policy-*')))}.yaml"
        file.write_text("\n".join([*kept, f"certificates: [{tmp_path}]", *extra]) + "\n")
        monkeypatch.setenv("VDESK_POLICY", str(file))
        return file
    return write


def _problems(raw, stack="dev") -> dict[str, str]:
    from components.config.loader import declare
    try:
        declare(stack, raw, config_keys={})
    except InputError as exc:
        return dict(exc.problems)
    return {}


def _display(raw, tmp):
    raw["hosts"]["local"]["display"] = {"listen": "10.0.0.5"}


def _console(raw, tmp):
    (tmp / "console.pem").write_text("certificate and key\n")
    raw["hosts"]["local"]["console"] = {"bind": "0.0.0.0", "tls_cert": str(tmp / "console.pem")}


def _bridge(raw, tmp):
    raw["networks"]["office"] = {"host": "local", "mode": "bridge", "bridge": "br7"}


def _pci(raw, tmp):
    raw["users"][0]["gpus"] = [{"pci": "01:00.0"}]


def _mdev_parent(raw, tmp):
    raw["users"][0]["gpus"] = [{"mdev": "nvidia-222", "parent": "0000:02:00.0"}]


def _mdev_anywhere(raw, tmp):
    raw["users"][0]["gpus"] = [{"mdev": "nvidia-222"}]


def _writable_share(raw, tmp):
    (tmp / "docs").mkdir()
    raw["shares"] = {"docs": {"path": str(tmp / "docs"), "writable": True}}


def _netfs(raw, tmp):
    raw["pools"]["nas"] = {"host": "local", "type": "netfs", "source_host": "nas.example.org",
                           "source_dir": "/srv/desktops"}


def _volume_group(raw, tmp):
    raw["pools"]["vg"] = {"host": "local", "type": "logical", "source_name": "vg_desktops"}


def _remote_host(raw, tmp):
    raw["hosts"]["far"] = {"uri": "qemu+ssh://admin@kvm9.example.org/system", "accelerator": "kvm"}


def _system_libvirtd(raw, tmp):
    raw["hosts"]["system"] = {"uri": "qemu:///system", "accelerator": "kvm"}


def _kubevirt_namespace(raw, tmp):
    raw["hosts"]["cluster"] = {"kind": "kubevirt", "kubeconfig": "/etc/vdesk/kubeconfig", "namespace": "desks-a"}


CASES = [  # (case, change, field, policy key, the line that gives leave)
    ("display-beyond-loopback", _display, "hosts.local.display.listen", "display_listen",
     "display_listen: [10.0.0.5]"),
    ("console-beyond-loopback", _console, "hosts.local.console.bind", "console.bind",
     "console:\n  bind: 0.0.0.0\n  tls_cert: {tmp}/console.pem"),
    ("bridge-onto-a-host-bridge", _bridge, "networks.office.bridge", "bridges", "bridges: [br7]"),
    ("pci-passthrough", _pci, "users[0].gpus[0].pci", "pci_devices", "pci_devices: ['0000:01:00.*']"),
    ("mdev-on-a-parent", _mdev_parent, "users[0].gpus[0].parent", "mdev_parents", "mdev_parents: ['0000:02:00.0']"),
    ("mdev-on-any-parent", _mdev_anywhere, "users[0].gpus[0].mdev", "mdev_parents", "mdev_parents: ['*']"),
    ("writable-share", _writable_share, "shares.docs.writable", "writable_shares", "writable_shares: [{tmp}]"),
    ("netfs-server", _netfs, "pools.nas.source_host", "netfs_servers", "netfs_servers: ['*.Example.org']"),
    ("existing-volume-group", _volume_group, "pools.vg.source_name", "volume_groups", "volume_groups: [vg_desktops]"),
    ("remote-libvirt-host", _remote_host, "hosts.far.uri", "libvirt_hosts", "libvirt_hosts: [kvm9.example.org]"),
    ("this-machines-libvirtd", _system_libvirtd, "hosts.system.uri", "libvirt_hosts", "libvirt_hosts: [localhost]"),
    ("kubevirt-namespace", _kubevirt_namespace, "hosts.cluster.namespace", "kubevirt_namespaces",
     "kubevirt_namespaces: [desks-*]"),
]


@pytest.mark.parametrize("change,field,key,leave", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_exposure_is_refused_without_leave_naming_the_field_and_the_key(change, field, key, leave, mocks,
                                                                          golden, with_policy, tmp_path):  # noqa: F811
    raw = example_stack("dev")
    change(raw, tmp_path)
    file = with_policy()
    problems = _problems(raw)
    assert field in problems, problems
    assert f"`{key}`" in problems[field] and str(file) in problems[field]
    assert mocks.resources == []


@pytest.mark.parametrize("change,field,key,leave", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_exposure_is_accepted_with_the_policys_leave(change, field, key, leave, mocks, golden,
                                                       with_policy, tmp_path):  # noqa: F811
    raw = example_stack("dev")
    change(raw, tmp_path)
    with_policy(leave.format(tmp=tmp_path))
    problems = _problems(raw)          # (what the host itself says of a GPU may remain: the test driver has none)
    assert "not allowed on this machine" not in problems.get(field, "")
    assert not any(f"`{key}`" in message for message in problems.values()), problems


def test_containers_without_a_user_namespace_need_leave(mocks, golden, with_policy):  # noqa: F811
    raw = example_stack("lab")
    name = next(iter(raw["containers"]))
    raw["containers"][name]["userns"] = False
    with_policy()
    problems = _problems(raw, "lab")
    assert problems[f"containers.{name}.userns"].startswith("false makes the container's root the host's root: "
                                                            "not allowed on this machine")
    assert "`containers_without_userns: true`" in problems[f"containers.{name}.userns"]
    assert mocks.resources == []
    with_policy("containers_without_userns: true")
    assert f"containers.{name}.userns" not in _problems(raw, "lab")


def test_a_console_beyond_loopback_is_never_served_without_tls(mocks, golden, with_policy, tmp_path):  # noqa: F811
    with_policy("console:\n  bind: 0.0.0.0")
    with pytest.raises(host_policy.PolicyError, match=r"console.bind: '0.0.0.0' is beyond loopback: the console is "
                                                      r"served there only over TLS \(set console.tls_cert\), never "
                                                      "plain HTTP"):
        host_policy.load()
    (tmp_path / "console.pem").write_text("certificate and key\n")
    with_policy(f"console:\n  bind: 0.0.0.0\n  tls_cert: {tmp_path}/console.pem")
    assert host_policy.load().console.bind == "0.0.0.0"
    assert mocks.resources == []


@pytest.mark.parametrize("console,field", [({"port": 6080}, "port"), ({"bind": "0.0.0.0"}, "bind"),
                                           ({"tls_cert": "/etc/vdesk/console.pem"}, "tls_cert"),
                                           ({"tls_key": "/etc/vdesk/console.key"}, "tls_key")])
def test_the_gateways_settings_are_the_hosts_a_stack_cannot_change_them(console, field, mocks, golden,  # noqa: F811
                                                                        with_policy):
    raw = example_stack("dev")
    raw["hosts"]["local"]["console"] = {**console, "link_validity": "15m"}
    file = with_policy()
    message = _problems(raw)[f"hosts.local.console.{field}"]
    assert "the console gateway is the host's, shared by every stack on it" in message
    assert f"`console.{field}` in {file}" in message
    assert mocks.resources == []


def test_a_stack_sets_only_how_long_its_own_links_last(mocks, golden, with_policy):  # noqa: F811
    raw = example_stack("dev")
    with_policy("console:\n  port: 6080")
    raw["hosts"]["local"]["console"] = {"port": 6080, "link_validity": "15m"}      # restating the host's: fine
    assert _problems(raw) == {}
    from components.config.loader import validate
    console = validate("dev", raw, config_keys={}).hosts["local"].console
    assert (console.bind, console.port, console.link_validity_s) == ("127.0.0.1", 6080, 900)


@pytest.mark.parametrize("switch", ["no_verify=1", "known_hosts_verify=ignore", "tls_priority=NONE"])
def test_certificate_and_host_key_checks_cannot_be_turned_off_from_a_stack(switch, mocks, golden,  # noqa: F811
                                                                           with_policy):
    raw = example_stack("dev")
    raw["hosts"]["far"] = {"uri": f"qemu+tls://kvm9.example.org/system?{switch}", "accelerator": "kvm"}
    with_policy("libvirt_hosts: ['*']")          # every host allowed: the switch is still refused
    assert "never from a stack" in _problems(raw)["hosts.far.uri"]


def test_loopback_and_sockets_need_no_leave(mocks, golden, with_policy):  # noqa: F811
    raw = example_stack("dev")
    raw["hosts"]["local"]["display"] = {"listen": "127.0.0.1"}
    raw["hosts"]["local"]["console"] = {"bind": "::1"}
    with_policy("console:\n  bind: '::1'")           # a loopback gateway needs no TLS
    assert _problems(raw) == {}


def test_without_a_policy_file_nothing_is_exposed(tmp_path):
    policy = host_policy.load(tmp_path / "absent.yaml")
    assert all(getattr(policy, key) in ((), False) for key in EXPOSURE_KEYS)
    assert "not allowed on this machine" in policy.uri_problem("qemu:///system")
    assert policy.uri_problem("test:///default") is None


def test_the_readmes_example_policy_is_one_vdesk_reads(tmp_path):
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    example = readme.split("An example policy for a runner", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    file = tmp_path / "policy.yaml"
    file.write_text(textwrap.dedent(example))
    policy = host_policy.load(file)
    assert policy.allows("libvirt_hosts", "kvm2.example.org") and policy.allows("pci_devices", "0000:65:00.0")
    assert policy.containers_without_userns is False and policy.volume_groups == ()
