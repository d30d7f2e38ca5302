"""The stack -> resource graph, with Pulumi's mocks (no engine, no libvirt)."""
from __future__ import annotations

import pulumi
import pytest

from components import hosts as hosts_module
from components.hosts import ResolvedHost


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs back as outputs, adding what a provider would report."""

    def __init__(self):
        self.resources = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append((args.typ, args.name, dict(args.inputs)))
        outs = dict(args.inputs)
        if "pool" in outs and "name" in outs:
            outs["path"] = f"/pools/{outs['pool']}/{outs['name']}"
        outs.setdefault("uuid", f"uuid-{args.name}")
        outs.setdefault("public_key", "ssh-ed25519 AAAA test")
        outs.setdefault("private_key", "private")
        outs.setdefault("ip", "10.77.0.10")
        outs.setdefault("state", "running")
        return f"{args.name}-id", outs

    def call(self, args):
        return {}


@pytest.fixture
def mocks(monkeypatch):
    m = RecordingMocks()
    pulumi.runtime.set_mocks(m, project="vdesk", stack="unit", preview=False)
    monkeypatch.setattr("components.stack.resolve_host", lambda h, probe_kernel: ResolvedHost(
        h.name, "test:///default", "/run/netns/vdesk-unit", "qemu", "tcg requested explicitly",
        "/pools", "/displays"))
    monkeypatch.setattr("components.desktop.render_seed", _fake_render)
    return m


def _fake_render(profile, variables):
    from components.cloudinit import SeedDocuments
    return SeedDocuments(f"#cloud-config\nhostname: {variables['hostname']}\n", "instance-id: x\n", "version: 2\n")


def raw_config(tmp_path, desktops=("alice",)):
    image = tmp_path / "own.qcow2"
    image.write_bytes(b"QFI\xfb" + b"\0" * 60)
    return {
        "hosts": {"local": {"uri": "qemu:///system", "accelerator": "tcg"}},
        "pools": {"main": {"host": "local"}},
        "networks": {"lan": {"host": "local", "cidr": "10.77.0.0/24"}},
        "images": {"own": {"path": str(image), "boot": "bios"}},
        "desktops": {d: {"pool": "main", "network": "lan", "image": "own", "users": [{"name": d}]}
                     for d in desktops},
    }


def settle(outputs):
    """Resolve the program's outputs (and with them every registered resource)."""
    result = {}

    def grab(values):
        result.update(values)

    pulumi.Output.from_input(outputs).apply(grab)
    return result


@pulumi.runtime.test
def test_graph_of_one_desktop(mocks, tmp_path):
    from components.stack import declare
    outputs = declare("unit", raw_config(tmp_path))

    def check(desktops):
        kinds = sorted(name for _typ, name, _ in mocks.resources)
        assert kinds == sorted([
            "pool-main", "network-lan", "image-own-main-disk", "alice", "alice-login-key", "alice-host-key",
            "alice-disk", "alice-seed", "alice-vm", "alice-ready"])
        vm = next(inputs for _t, name, inputs in mocks.resources if name == "alice-vm")
        assert vm["name"] == "unit-alice" and vm["boot"] == "bios" and vm["domain_type"] == "qemu"
        assert vm["disks"][1]["readonly"] is True and vm["nics"][0]["network"] == "unit-lan"
        assert desktops["alice"]["ssh_command"].startswith("nsenter --net=/run/netns/vdesk-unit ssh -i ")
        assert desktops["alice"]["display_uri"] == "vnc+unix:///displays/unit-alice.vnc"

    return pulumi.Output.from_input(outputs["desktops"]).apply(check)


@pulumi.runtime.test
def test_adding_a_desktop_adds_only_its_own_resources(mocks, tmp_path):
    from components.stack import declare
    outputs = declare("unit", raw_config(tmp_path, desktops=("alice", "bob")))

    def check(_):
        names = [name for _t, name, _ in mocks.resources]
        bob = sorted(n for n in names if n.startswith("bob"))
        assert bob == ["bob", "bob-disk", "bob-host-key", "bob-login-key", "bob-ready", "bob-seed", "bob-vm"]
        assert names.count("image-own-main-disk") == 1   # the image is imported once per pool
        macs = {i["nics"][0]["mac"] for t, n, i in mocks.resources if n.endswith("-vm")}
        assert len(macs) == 2

    return pulumi.Output.from_input(outputs["desktops"]).apply(check)
