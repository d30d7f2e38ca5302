"""Each documented key of every section, set on its own on top of the `dev` stack, previews with no problem.

The keys are walked from the stack file's models (components.config.stackfile),
so a new key is covered as soon as it is declared: the guard test fails until
EXAMPLES gives it a value. The preview is the program's own (`declare`, as
`pulumi preview` runs it) under Pulumi's mocks, with libvirt's test driver as
the host wherever the host is read (capacity, CPUs, devices).
"""
from __future__ import annotations

import copy
import dataclasses
import subprocess
from pathlib import Path
from typing import Any, get_args, get_origin

import pulumi
import pytest
import yaml

from components.config.problems import bare, is_model
from components.config.kubevirt_host import KUBEVIRT_SETTINGS
from components.config.stackfile import StackFile
from components import xmlmodel
from components.host import capacity, hardware
from components.host import policy as host_policy
from components.host.resolve import ResolvedHost
from tests.unit.config.test_program import after, example_stack, golden, mocks  # noqa: F401  (fixtures)

READ_FROM_LIBVIRT = capacity.read
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hosts"
# libvirt's test driver with a host's devices: GPUs to pass through and mediated device types (vGPUs)
HOST = f"test://{FIXTURES / 'gpu-host.xml'}"
NEW = "extra"     # the name of a new entry, in a section the dev stack has none of (or where its own would clash)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMOlV3KX7h6q0s9n4d0yUqjLxgq8n6l4mJ0Bq7n3m2Zr alice@example.org"
TMP = "{tmp}"     # stands for this test's directory, which the test's host policy allows for paths


@dataclasses.dataclass(frozen=True)
class With:
    """An example value that needs other settings of its entry (None: leave that one out)."""
    value: Any
    entry: dict = dataclasses.field(default_factory=dict)


# One valid example per key, as "Model.key". A value of a small record (a DHCP range, a GPU) is one example.
EXAMPLES: dict[str, Any] = {
    "StackFile.prefix": "lab",
    # hosts.local
    "Host.uri": "embedded", "Host.accelerator": "auto", "Host.kind": "libvirt",
    # hosts.extra, of kind kubevirt (with no desktop on it, its preview asks nothing of the cluster)
    "Host.kubeconfig": "/etc/vdesk/kubeconfig", "Host.context": "team", "Host.namespace": "desks",
    "Host.storage_class": "fast", "Host.images": {"console": {"url": "https://images.example.org/debian.qcow2"}},
    "Host.overcommit": {"memory": 1.5, "cpu": 8.0},
    "HostDisplay.listen": "loopback", "HostDisplay.spice": False,
    "HostConsole.bind": "127.0.0.2", "HostConsole.port": 6080,
    "HostConsole.tls_cert": f"{TMP}/console-and-key.pem",     # a certificate file that holds its key
    "HostConsole.tls_key": With(f"{TMP}/console.key", {"tls_cert": f"{TMP}/console.pem"}),
    "HostConsole.link_validity": "12h",
    # pools.main
    "Pool.host": "local", "Pool.hosts": With(["local"], {"host": None}), "Pool.type": "dir",
    "Pool.path": "/var/lib/libvirt/images/vdesk-lab",
    "Pool.source_devices": With([f"{TMP}/disk0"], {"type": "logical"}),
    "Pool.source_name": With("testvg1", {"type": "logical"}),   # a volume group the test host has
    "Pool.source_format": With("nfs", {"type": "netfs", "source_host": "nas.example.org", "source_dir": "/srv/d",
                                       "path": "/var/lib/libvirt/images/nas"}),
    "Pool.source_host": With("nas.example.org", {"type": "netfs", "source_dir": "/srv/d",
                                                 "path": "/var/lib/libvirt/images/nas"}),
    "Pool.source_dir": With("/srv/d", {"type": "netfs", "source_host": "nas.example.org",
                                       "path": "/var/lib/libvirt/images/nas"}),
    "Pool.adopt": True, "Pool.keep_on_destroy": True,
    # networks.lan
    "Network.host": "local", "Network.hosts": With(["local"], {"host": None}), "Network.cidr": "10.76.0.0/24",
    "Network.cidr6": "fd00:77::/64", "Network.mode": "isolated",
    "Network.bridge": With("br0", {"mode": "bridge", "cidr": None}), "Network.dhcp": True,
    "Network.dhcp_range": {"start": "10.77.0.100", "end": "10.77.0.200"},
    "Network.domain": "lab.example", "Network.dhcp_hosts": [{"mac": "52:54:00:aa:bb:cc", "ip": "10.77.0.50"}],
    "Network.dns_hosts": [{"ip": "10.77.0.60", "hostnames": ["printer"]}],
    "Network.address_sources": ["lease", "agent", "arp"], "Network.adopt": True, "Network.keep_on_destroy": True,
    # images.xfce (its recipe)
    "ImageRecipe.base": "debian12", "ImageRecipe.desktop": "lxqt", "ImageRecipe.packages": ["vim", "git"],
    "ImageRecipe.locale": "de_DE.UTF-8", "ImageRecipe.keyboard": "de", "ImageRecipe.timezone": "Europe/Berlin",
    "ImageRecipe.firmware": "uefi",
    # images.extra (an image no desktop uses)
    "Image.golden": "debian12",
    "Image.path": With(f"{TMP}/own.qcow2", {"golden": None}),
    "Image.boot": With("uefi", {"path": f"{TMP}/own.qcow2", "golden": None}),
    # profiles.desktop, and desktops.extra (what they share, then each one's own)
    "host": "local", "hosts": With(["local"], {"host": None}), "pool": "main", "network": "lan",
    "extra_networks": ["more"], "image": "xfce", "memory": "768MiB", "vcpus": 2, "max_vcpus": 2,
    "cpu_topology": With({"sockets": 1, "cores": 2, "threads": 1}, {"vcpus": 2}), "machine": "q35",
    "disk": "12GiB", "disk_clone": "full", "shares": ["docs"], "home": "6GiB", "home_on_removal": "delete",
    "disk_backup_days": 0, "running": False, "autostart": True, "kernel_args": "quiet",
    "Cpu.mode": "host-model", "Cpu.model": "pentium3", "Cpu.pinning": [0],
    "gpus": [{"mdev": "nvidia-222"}],
    "DesktopDisplay.password_rotation": "2026-12", "DesktopDisplay.password_valid_for": "30d",
    "autologin": True, "resolution": "1920x1080",
    "secure_boot": With(True, {"machine": "q35", "image": "uefi"}), "tpm": True,
    "checks": [{"service": "ssh"}],
    "Schedule.days": With(["mon", "sat"], {"start": "08:00", "stop": "18:00"}),
    "Schedule.start": With("06:30", {"stop": "22:00"}), "Schedule.stop": With("02:00", {"start": "18:00"}),
    "Schedule.timezone": With("Europe/Berlin", {"start": "07:00", "stop": "20:00"}),
    "MaintenanceWindow.days": With(["sat"], {"start": "02:00", "stop": "05:00"}),
    "MaintenanceWindow.start": With("23:00", {"stop": "01:00"}),
    "MaintenanceWindow.stop": With("04:00", {"start": "03:00"}),
    "MaintenanceWindow.timezone": With("Europe/Berlin", {"start": "02:00", "stop": "05:00"}),
    "apply_when": "idle", "IdlePolicy.after": "45m", "IdlePolicy.action": "shutdown", "IdlePolicy.warn": "2m",
    "Profile.template": "developer", "Profile.groups": ["audio"],
    "Desktop.profile": With("developer", {"image": "xfce"}),
    "Desktop.address": With("10.79.0.50", {"network": "static"}),
    "Desktop.adopt": True,
    "Desktop.users": [{"name": "ann"}], "Desktop.autologin": With(True, {"image": "xfce"}),
    "DesktopUser.name": "ann", "DesktopUser.ssh_authorized_keys": [KEY], "DesktopUser.groups": ["audio"],
    "DesktopUser.password": "dev-password", "DesktopUser.email": "ann@example.org",
    # users[0]
    "User.name": "ann", "User.profile": "desktop", "User.hosts": ["local"], "User.ssh_authorized_keys": [KEY],
    "User.password": "dev-password", "User.email": "ann@example.org", "User.groups": ["audio"], "User.memory": "1GiB", "User.vcpus": 1,
    "User.max_vcpus": 3, "User.disk": "10GiB", "User.home": "2GiB", "User.autologin": False,
    "User.resolution": "1024x768", "User.shares": ["docs"], "User.disk_clone": "full",
    "User.checks": [{"port": 22}], "User.running": False, "User.autostart": True,
    "User.address": With("10.79.0.51", {"profile": "static"}),
    "User.gpus": [{"mdev": "nvidia-222"}], "User.adopt": True,
    # containers.extra
    "Container.host": "local", "Container.network": "lan", "Container.image": "console", "Container.memory": "512MiB",
    "Container.vcpus": 2, "Container.command": ["/bin/sleep", "infinity"], "Container.env": {"LANG": "C.UTF-8"},
    "Container.mounts": [{"source": f"{TMP}/shared", "target": "/srv"}], "Container.userns": True,
    "Container.running": False, "Container.checks": [{"port": 22}],
    # shares.extra
    "Share.host": "local", "Share.path": f"{TMP}/shared", "Share.writable": True,
    # quotas
    "Quotas.users": {"ann": {"desktops": 2, "memory": "8GiB"}}, "Quotas.groups": {"audio": {"desktops": 10}},
    # timeouts
    "Timeouts.address": 60, "Timeouts.ssh": 60, "Timeouts.cloud_init": 60, "Timeouts.shutdown": 10,
    "Timeouts.graphical": 60,
}
# What an entry needs that a new entry of its section starts from (the dev stack has the others).
NEW_ENTRIES = {"desktops": {"pool": "main", "network": "lan", "image": "console"},
               "containers": {"image": "console"}, "shares": {"path": f"{TMP}/shared"},
               "images": {"golden": "debian12"},
               "hosts": {"kind": "kubevirt", "kubeconfig": "/etc/vdesk/kubeconfig", "namespace": "desks"}}
# Sections whose keys go on a new entry although the dev stack has one (its own would clash: one image kind).
ON_A_NEW_ENTRY = {"images": "Image"}


def _entry_place(section: str, model_name: str) -> tuple:
    """Where a key of this section's entries goes: the dev stack's entry, or a new one."""
    dev = example_stack("dev")
    if section == "users":
        return ("users", 0)
    if section in dev and ON_A_NEW_ENTRY.get(section) != model_name:
        return (section, next(iter(dev[section])))
    return (section, NEW)


def keys() -> list[tuple[str, tuple, str]]:
    """(example key, place in the file, model.key) for every key the models declare."""
    found = []

    def walk(model, loc: tuple):
        for name, field in model.model_fields.items():
            tp = bare(field.annotation)[0]
            item = bare(get_args(tp)[0])[0] if get_origin(tp) is list else None
            if is_model(tp) and not tp.record:
                walk(tp, (*loc, name))
            elif is_model(item) and not item.record and model.__name__ == "Desktop":
                found.append((f"{model.__name__}.{name}", (*loc, name), f"{model.__name__}.{name}"))
                walk(item, (*loc, name, 0))
            else:
                found.append((f"{model.__name__}.{name}", (*loc, name), f"{model.__name__}.{name}"))

    for section, field in StackFile.model_fields.items():
        tp = bare(field.annotation)[0]
        if get_origin(tp) in (dict, list):
            entry = bare(get_args(tp)[-1])[0]
            walk(entry, _entry_place(section, "" if section != "images" else "Image"))
            if section == "images":      # the dev stack's own image: the keys of its recipe
                walk(bare(entry.model_fields["recipe"].annotation)[0], ("images", "xfce", "recipe"))
        elif is_model(tp):
            walk(tp, (section,))
        else:
            found.append((f"StackFile.{section}", (section,), f"StackFile.{section}"))
    # a kubevirt host's keys go on a new host of that kind (a libvirt host takes none of them)
    found = [(key, ("hosts", NEW, loc[-1]), name) if loc[:1] == ("hosts",) and loc[-1] in KUBEVIRT_SETTINGS
             else (key, loc, name) for key, loc, name in found]
    # the images.xfce keys of Image itself are walked on images.extra; its recipe keys on images.xfce
    return [k for k in found if not (k[1][:2] == ("images", NEW) and k[1][2:3] == ("recipe",) and len(k[1]) > 3)]


def example(key: str) -> Any:
    """The example of `Model.key`, or of the key shared by profiles and desktops."""
    return EXAMPLES[key] if key in EXAMPLES else EXAMPLES[key.split(".", 1)[1]]


def has_example(key: str) -> bool:
    return key in EXAMPLES or key.split(".", 1)[1] in EXAMPLES


def _fill(value, tmp) -> Any:
    if isinstance(value, str):
        return value.replace(TMP, str(tmp))
    if isinstance(value, list):
        return [_fill(v, tmp) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, tmp) for k, v in value.items()}
    return value


def stack_with(loc: tuple, key: str, tmp) -> dict:
    """The dev stack with this key set (and what its example needs), plus the entries examples refer to."""
    raw = copy.deepcopy(example_stack("dev"))
    raw["images"]["console"] = {"golden": "debian12"}
    raw["images"]["uefi"] = {"recipe": {"desktop": "xfce", "firmware": "uefi",
                                        "packages": ["build-essential", "git", "python3-venv", "vim"]}}
    raw["networks"]["more"] = {"host": "local", "cidr": "10.78.0.0/24"}
    raw["networks"]["static"] = {"host": "local", "cidr": "10.79.0.0/24", "dhcp": False}
    raw["profiles"]["static"] = {"pool": "main", "network": "static", "image": "xfce", "memory": "1GiB"}
    raw["shares"] = {"docs": {"path": str(tmp / "shared")}}
    node = raw
    for i, part in enumerate(loc[:-1]):
        if isinstance(node, dict) and part not in node:
            node[part] = copy.deepcopy(_fill(NEW_ENTRIES.get(loc[0], {}), tmp)) \
                if part == NEW else [{"name": "ann"}] if isinstance(loc[i + 1], int) else {}
        node = node[part]
    value = example(key)
    if isinstance(value, With):
        for other, setting in _fill(value.entry, tmp).items():
            if setting is None:
                node.pop(other, None)
            else:
                node[other] = setting
        value = value.value
    node[loc[-1]] = _fill(value, tmp)
    return raw


@pytest.fixture
def allowed(tmp_path, monkeypatch):
    """A host policy that allows this test's directory for paths, and the files the examples name."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "disk0").write_bytes(b"")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp_path / "own.qcow2"), "16M"], check=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=localhost", "-days", "1", "-keyout", str(tmp_path / "console.key"),
                    "-out", str(tmp_path / "console.pem")], check=True, capture_output=True)
    (tmp_path / "console-and-key.pem").write_bytes((tmp_path / "console.pem").read_bytes()
                                                   + (tmp_path / "console.key").read_bytes())
    policy = tmp_path / "policy.yaml"
    policy.write_text("".join(f"{kind}: [{tmp_path}]\n" for kind in ("images", "shares", "container_mounts",
                                                                     "devices", "certificates"))
                      + "pools: [/var/lib/libvirt/images]\n"
                      # the exposures the examples ask for, allowed as an administrator would allow them
                      + f"writable_shares: [{tmp_path}]\nbridges: [br0]\nmdev_parents: ['*']\n"
                      + "netfs_servers: [nas.example.org]\nvolume_groups: [testvg1]\nkubevirt_namespaces: [desks]\n")
    monkeypatch.setenv("VDESK_POLICY", str(policy))
    monkeypatch.setattr("components.host.capacity.read", READ_FROM_LIBVIRT)   # libvirt's own answer
    monkeypatch.setattr("components.config.loader.resolve_host", lambda h, probe_kernel: ResolvedHost(
        h.name, HOST, "/run/netns/vdesk-unit", "qemu", "tcg requested explicitly", "/pools", "/displays",
        lxc_uri="lxc:///", containers_dir="/containers"))
    real = hardware._domain_caps      # the test driver has no domain capabilities: those of a KVM host with VFIO
    monkeypatch.setattr(hardware, "_domain_caps", lambda conn, domain_type, machine: real(conn, domain_type, machine)
                        or xmlmodel.DomainCapabilities.from_xml((FIXTURES / "domcaps-kvm-vfio-x86_64.xml").read_text()))
    return tmp_path


def test_every_declared_key_has_an_example():
    missing = [key for key, _loc, _ in keys() if not has_example(key)]
    assert not missing, f"give these keys an example in EXAMPLES: {missing}"


def test_every_example_is_of_a_declared_key():
    declared = {key for key, _loc, _ in keys()} | {key.split(".", 1)[1] for key, _loc, _ in keys()}
    assert set(EXAMPLES) - declared == set()


@pytest.mark.parametrize("key,loc", [(k, loc) for k, loc, _ in keys()], ids=lambda v: v if isinstance(v, str)
                         else ".".join(map(str, v)))
@pulumi.runtime.test
def test_each_key_on_its_own_previews_with_no_problem(key, loc, mocks, golden, allowed):  # noqa: F811
    from components.config.loader import declare
    raw = stack_with(loc, key, allowed)
    if loc[:3] == ("hosts", "local", "console") and loc[-1] in host_policy.CONSOLE_KEYS:
        # the gateway's own settings are the host's: the administrator sets them, and a stack may restate them
        console = {k: v for k, v in raw["hosts"]["local"]["console"].items() if k in host_policy.CONSOLE_KEYS}
        with (allowed / "policy.yaml").open("a") as policy:
            policy.write(yaml.safe_dump({"console": console}))
    outputs = declare("dev", raw, config_keys={"dev-password": True},
                      secret=lambda key: pulumi.Output.secret("a password"))

    def check(out):
        assert "dev-vm" in mocks.names() or "ann-vm" in mocks.names()

    return after(outputs, check)
