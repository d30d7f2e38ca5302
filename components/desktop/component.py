"""Desktop: one virtual desktop = keys + disk + seed + domain + readiness gate.

A component, so `pulumi preview` shows a desktop as one thing with its parts
beneath it, and each part is updated on its own: a memory change touches the
domain only, a new user touches the seed only.

Passwords arrive as Pulumi secrets and reach the seed only as SHA-512 crypt
hashes. The salt is derived from the desktop's own host key (random per
desktop, kept secret in state) and the user name, so the hash - and with it
the seed - stays the same from one `up` to the next, while no two desktops or
users share a salt and the salt reveals nothing about the password.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import os
from pathlib import Path
from typing import Mapping

import pulumi

from ..cloudinit import hash_password, render_seed
from ..cloudinit.passwords import ITOA64, MIN_ROUNDS, SALT_LENGTH
from ..config.models import DesktopConfig
from ..resources.domain import Domain
from ..guest.keys import generate_ed25519
from ..host.resolve import ResolvedHost
from ..resources.keys import SshKeyPair
from ..names import stable_mac
from ..resources.readiness import GuestReady
from ..resources.seed import CloudInitSeed
from ..resources.volume import Volume

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


def nic_mac(host_uri: str, prefix: str, desktop: str, index: int = 0) -> str:
    """The MAC of the desktop's NIC `index` (eth<index>): stable across updates, different for every desktop."""
    return stable_mac(host_uri, f"{prefix}-{desktop}", f"nic{index}")


def password_salt(host_private: str, user: str) -> str:
    """A crypt salt that is stable for one desktop's user and unpredictable without its host key."""
    digest = hmac.new(host_private.encode(), f"vdesk password salt/{user}".encode(), hashlib.sha256).digest()
    return "".join(ITOA64[b & 63] for b in digest[:SALT_LENGTH])


def password_hash(password: str, *, host_private: str, user: str) -> str:
    return hash_password(password, salt=password_salt(host_private, user))


@functools.lru_cache(maxsize=1)
def _preview_hash() -> str:
    return hash_password("vdesk-preview", salt="vdeskpreview", rounds=MIN_ROUNDS)


def seed_variables(cfg: DesktopConfig, *, hostname: str, mac: str, login_key: str, host_private: str,
                   host_public: str, password_hashes: Mapping[str, str] | None = None,
                   extra_macs: tuple[str, ...] = ()) -> dict:
    hashes = password_hashes or {}
    return {
        "hostname": hostname,
        # Fresh per clone: derived from the host key, which is generated for each new desktop.
        "instance_id": "vdesk-" + hashlib.sha256(host_public.encode()).hexdigest()[:20],
        "users": [{"name": u.name, "groups": list(u.groups),
                   "ssh_authorized_keys": [login_key, *u.ssh_authorized_keys],
                   **({"password_hash": hashes[u.name]} if u.name in hashes else {})} for u in cfg.users],
        "host_keys": {"ed25519_private": host_private, "ed25519_public": host_public},
        "interfaces": [{"mac": mac, "dhcp4": True} if not cfg.address else
                       {"mac": mac, "dhcp4": False, "addresses": [cfg.address], "gateway4": cfg.gateway,
                        "nameservers": [cfg.gateway]}]
                      + [{"mac": extra, "dhcp4": True} for extra in extra_macs],
    }


def check_seed(cfg: DesktopConfig, *, mac: str = "52:54:00:00:00:01"):
    """Render the desktop's seed with placeholder keys and hashes: checks its template and cloud-init's
    schema before anything exists (raises CloudInitError)."""
    extra_macs = tuple(f"52:54:00:00:01:{i:02x}" for i, _ in enumerate(cfg.extra_networks))
    hashes = {u.name: _preview_hash() for u in cfg.users if u.password}
    return render_seed(cfg.profile, seed_variables(cfg, hostname=cfg.name, mac=mac, extra_macs=extra_macs,
                                                   login_key=_PREVIEW_KEY,
                                                   host_private=_PREVIEW_PRIVATE, host_public=_PREVIEW_KEY,
                                                   password_hashes=hashes))


class Desktop(pulumi.ComponentResource):
    ip: pulumi.Output[str]

    def __init__(self, name: str, *, cfg: DesktopConfig, stack: str, prefix: str, host: ResolvedHost,
                 pool_name: pulumi.Input[str], network_name: pulumi.Input[str], image: ImageVolumes,
                 extra_network_names: tuple[pulumi.Input[str], ...] = (),
                 timeouts: dict, passwords: Mapping[str, pulumi.Input[str]] | None = None,
                 address_sources: tuple[str, ...] = ("lease", "agent"),
                 opts: pulumi.ResourceOptions | None = None):
        """`passwords`: user name -> plaintext password as a secret Output (hashed here, never stored)."""
        super().__init__("vdesk:index:Desktop", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        vm_name = f"{prefix}-{cfg.name}"
        mac = nic_mac(host.uri, prefix, cfg.name)
        extra_macs = tuple(nic_mac(host.uri, prefix, cfg.name, i + 1) for i, _ in enumerate(cfg.extra_networks))
        user = cfg.users[0].name
        with_password = [u.name for u in cfg.users if passwords and u.name in passwords]

        login = SshKeyPair(f"{name}-login-key", comment=f"vdesk login {vm_name}", opts=child)
        host_key = SshKeyPair(f"{name}-host-key", comment=f"vdesk host {vm_name}", opts=child)

        # linked: a qcow2 clone on the image (the image must stay); full: an independent copy of it.
        clone = {"copy_of": image.disk_path} if cfg.disk_clone == "full" else {"backing_path": image.disk_path}
        disk = Volume(f"{name}-disk", host_uri=host.uri, pool=pool_name, volume_name=f"{vm_name}.qcow2",
                      capacity_bytes=cfg.disk_bytes, adopt=cfg.adopt, opts=child, **clone)

        def render(values):
            login_key, host_private, host_public, *secrets = values
            hashes = {n: password_hash(pw, host_private=host_private, user=n)
                      for n, pw in zip(with_password, secrets)}
            return render_seed(cfg.profile, seed_variables(
                cfg, hostname=cfg.name, mac=mac, extra_macs=extra_macs, login_key=login_key, host_private=host_private,
                host_public=host_public, password_hashes=hashes))

        docs = pulumi.Output.all(login.public_key, host_key.private_key, host_key.public_key,
                                 *(pulumi.Output.secret(passwords[n]) for n in with_password)).apply(render)
        seed = CloudInitSeed(f"{name}-seed", host_uri=host.uri, pool=pool_name, volume_name=f"{vm_name}-seed.iso",
                             user_data=pulumi.Output.secret(docs.apply(lambda d: d.user_data)),
                             meta_data=docs.apply(lambda d: d.meta_data),
                             network_config=docs.apply(lambda d: d.network_config), adopt=cfg.adopt, opts=child)

        domain = Domain(f"{name}-vm", {
            "host_uri": host.uri, "name": vm_name, "owner": stack, "domain_type": host.domain_type,
            "boot": image.boot, "memory_mib": cfg.memory_mib, "vcpus": cfg.vcpus, "max_vcpus": cfg.max_vcpus,
            "cpu_topology": dict(zip(("sockets", "cores", "threads"), cfg.cpu_topology)) if cfg.cpu_topology else None,
            "machine": cfg.machine,
            "kernel": image.kernel_path, "initrd": image.initrd_path, "cmdline": image.cmdline,
            # Known keys with outputs inside (not outputs of whole entries), so a preview of a new
            # desktop shows each entry with only its path or network still to be known.
            "disks": [
                {"path": disk.path, "format": "qcow2"},
                {"path": seed.path, "format": "raw", "readonly": True},
            ],
            "nics": [{"network": network_name, "mac": mac},
                     *({"network": net, "mac": m} for net, m in zip(extra_network_names, extra_macs))],
            "graphics_socket": f"{host.display_dir}/{vm_name}.vnc" if host.display_dir else None,
            "log_file": f"{host.qemu_log_dir}/{vm_name}.log" if host.qemu_log_dir else None,
            "running": cfg.running,
            "autostart": cfg.autostart,
            "shutdown_timeout_s": timeouts["shutdown"],
            "adopt": cfg.adopt,
        }, opts=child)

        ready = None
        if cfg.running:
            ready = GuestReady(f"{name}-ready", {
                "host_uri": host.uri, "domain_name": vm_name, "domain_uuid": domain.uuid, "mac": mac,
                "netns": host.netns, "user": user, "private_key": login.private_key,
                "host_public_key": host_key.public_key, "seed_sha256": seed.sha256,
                # A static address is known: the gate goes straight to SSH.
                "address_sources": [f"static:{cfg.address.split('/')[0]}"] if cfg.address else list(address_sources),
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
