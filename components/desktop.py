"""Desktop: one virtual desktop = keys + disk + seed + domain + readiness gate.

A component, so `pulumi preview` shows a desktop as one thing with its parts
beneath it, and each part is updated on its own: a memory change touches the
domain only, a new user touches the seed only.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pulumi

from .cloudinit import render_seed
from .config import DesktopConfig
from .domain import Domain
from .guest.keys import generate_ed25519
from .hosts import ResolvedHost
from .keys import SshKeyPair
from .names import stable_mac
from .readiness import GuestReady
from .seed import CloudInitSeed
from .volume import Volume

# A throw-away key for the preview-time render: the template and cloud-init
# schema are checked before anything exists, when the real keys are unknown.
_PREVIEW = generate_ed25519("vdesk-preview")
_PREVIEW_KEY, _PREVIEW_PRIVATE = _PREVIEW.public_openssh, _PREVIEW.private_openssh


@dataclasses.dataclass(frozen=True)
class ImageVolumes:
    """The image's volumes in the desktop's pool."""

    disk_path: pulumi.Input[str]
    boot: str
    kernel_path: pulumi.Input[str] | None = None
    initrd_path: pulumi.Input[str] | None = None
    cmdline: str | None = None


def state_dir() -> Path:
    return Path(os.environ.get("VDESK_STATE") or Path(os.environ.get("XDG_STATE_HOME")
                                                      or Path.home() / ".local" / "state") / "vdesk")


def key_file(stack: str, desktop: str) -> Path:
    """Where `vdesk access` writes the desktop's login key for the printed SSH command."""
    return state_dir() / "ssh" / stack / f"{desktop}.key"


def seed_variables(cfg: DesktopConfig, *, hostname: str, mac: str, login_key: str, host_private: str,
                   host_public: str) -> dict:
    return {
        "hostname": hostname,
        # Fresh per clone: derived from the host key, which is generated for each new desktop.
        "instance_id": "vdesk-" + hashlib.sha256(host_public.encode()).hexdigest()[:20],
        "users": [{"name": u.name, "groups": list(u.groups),
                   "ssh_authorized_keys": [login_key, *u.ssh_authorized_keys]} for u in cfg.users],
        "host_keys": {"ed25519_private": host_private, "ed25519_public": host_public},
        "interfaces": [{"mac": mac, "dhcp4": True}],
    }


class Desktop(pulumi.ComponentResource):
    ip: pulumi.Output[str]

    def __init__(self, name: str, *, cfg: DesktopConfig, stack: str, prefix: str, host: ResolvedHost,
                 pool_name: pulumi.Input[str], network_name: pulumi.Input[str], image: ImageVolumes,
                 timeouts: dict, opts: pulumi.ResourceOptions | None = None):
        super().__init__("vdesk:index:Desktop", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vm_name = f"{prefix}-{cfg.name}"
        mac = stable_mac(host.uri, vm_name, "nic0")
        user = cfg.users[0].name

        # Check the template and cloud-init schema now, at preview, with placeholder keys.
        render_seed(cfg.profile, seed_variables(cfg, hostname=cfg.name, mac=mac, login_key=_PREVIEW_KEY,
                                                host_private=_PREVIEW_PRIVATE, host_public=_PREVIEW_KEY))

        login = SshKeyPair(f"{name}-login-key", comment=f"vdesk login {vm_name}", opts=child)
        host_key = SshKeyPair(f"{name}-host-key", comment=f"vdesk host {vm_name}", opts=child)

        disk = Volume(f"{name}-disk", host_uri=host.uri, pool=pool_name, volume_name=f"{vm_name}.qcow2",
                      capacity_bytes=cfg.disk_bytes, backing_path=image.disk_path, opts=child)

        docs = pulumi.Output.all(login.public_key, host_key.private_key, host_key.public_key).apply(
            lambda keys: render_seed(cfg.profile, seed_variables(
                cfg, hostname=cfg.name, mac=mac, login_key=keys[0], host_private=keys[1], host_public=keys[2])))
        seed = CloudInitSeed(f"{name}-seed", host_uri=host.uri, pool=pool_name, volume_name=f"{vm_name}-seed.iso",
                             user_data=pulumi.Output.secret(docs.apply(lambda d: d.user_data)),
                             meta_data=docs.apply(lambda d: d.meta_data),
                             network_config=docs.apply(lambda d: d.network_config), opts=child)

        domain = Domain(f"{name}-vm", {
            "host_uri": host.uri, "name": vm_name, "owner": stack, "domain_type": host.domain_type,
            "boot": image.boot, "memory_mib": cfg.memory_mib, "vcpus": cfg.vcpus,
            "kernel": image.kernel_path, "initrd": image.initrd_path, "cmdline": image.cmdline,
            "disks": [
                pulumi.Output.from_input(disk.path).apply(lambda p: {"path": p, "format": "qcow2"}),
                pulumi.Output.from_input(seed.path).apply(
                    lambda p: {"path": p, "format": "raw", "readonly": True}),
            ],
            "nics": [pulumi.Output.from_input(network_name).apply(lambda n: {"network": n, "mac": mac})],
            "graphics_socket": f"{host.display_dir}/{vm_name}.vnc" if host.display_dir else None,
            "running": cfg.running,
            "shutdown_timeout_s": timeouts["shutdown"],
        }, opts=child)

        ready = None
        if cfg.running:
            ready = GuestReady(f"{name}-ready", {
                "host_uri": host.uri, "domain_name": vm_name, "domain_uuid": domain.uuid, "mac": mac,
                "netns": host.netns, "user": user, "private_key": login.private_key,
                "host_public_key": host_key.public_key, "seed_sha256": seed.sha256,
                "address_timeout_s": timeouts["address"], "ssh_timeout_s": timeouts["ssh"],
                "cloud_init_timeout_s": timeouts["cloud_init"],
                "checks": list(cfg.checks),
                "screenshot_path": str(state_dir() / "screenshots" / stack / f"{cfg.name}.png"),
            }, opts=child)

        self.ip = ready.ip if ready else pulumi.Output.from_input(None)
        known_hosts = state_dir() / "ssh" / stack / f"{cfg.name}.known_hosts"
        keyfile = key_file(stack, cfg.name)
        via = f"nsenter --net={host.netns} " if host.netns else ""
        self.outputs = {
            "name": vm_name,
            "ip": self.ip,
            "ssh_command": self.ip.apply(lambda ip: (
                f"{via}ssh -i {keyfile} -o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes "
                f"{user}@{ip}") if ip else None),
            "display_uri": (f"vnc+unix://{host.display_dir}/{vm_name}.vnc" if host.display_dir
                            else domain.display_port.apply(lambda p: f"vnc://127.0.0.1:{p}" if p else None)),
            "state": domain.state,
            "host": host.name,
            "user": user,
            "checks": list(cfg.checks),
            "screenshot": ready.screenshot if ready else None,
            "host_key": host_key.public_key,
            "login_private_key": login.private_key,
        }
        self.register_outputs(self.outputs)
