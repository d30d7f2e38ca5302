"""What a desktop's cloud-init seed is rendered from: identity, users, keys, password hashes, NICs.

Passwords arrive as Pulumi secrets and reach the seed only as SHA-512 crypt
hashes. The salt is derived from the desktop's own host key (random per
desktop, kept secret in state) and the user name, so the hash - and with it
the seed - stays the same from one `up` to the next, while no two desktops or
users share a salt and the salt reveals nothing about the password.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
from pathlib import Path
from typing import Mapping, Sequence

from ..cloudinit import hash_password, render_seed
from ..cloudinit.passwords import ITOA64, MIN_ROUNDS, SALT_LENGTH
from ..guest.keys import generate_ed25519
from ..names import stable_mac
from ..paths import state_dir

# A throw-away key for the preview-time render: the template and cloud-init
# schema are checked before anything exists, when the real keys are unknown.
_PREVIEW = generate_ed25519("vdesk-preview")
_PREVIEW_KEY, _PREVIEW_PRIVATE = _PREVIEW.public_openssh, _PREVIEW.private_openssh


def key_file(stack: str, desktop: str) -> Path:
    """Where `vdesk access` writes the desktop's login key for the printed SSH command."""
    return state_dir() / "ssh" / stack / f"{desktop}.key"


def nic_mac(host_uri: str, prefix: str, desktop: str, index: int = 0) -> str:
    """The MAC of the desktop's NIC `index` (eth<index>): stable across updates, different for every desktop."""
    return stable_mac(host_uri, f"{prefix}-{desktop}", f"nic{index}")


def vm_mac(host_uri: str, vm_name: str, index: int = 0) -> str:
    """nic_mac, from the desktop's libvirt name (<prefix>-<desktop>)."""
    return stable_mac(host_uri, vm_name, f"nic{index}")


def mdev_uuid(vm_name: str, index: int) -> str:
    """The UUID of a desktop's index-th mediated device (vGPU): stable, so a preview can tell it is its own."""
    import uuid
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"vdesk:mdev/{vm_name}/{index}"))


def password_salt(host_private: str, user: str) -> str:
    """A crypt salt that is stable for one desktop's user and unpredictable without its host key."""
    digest = hmac.new(host_private.encode(), f"vdesk password salt/{user}".encode(), hashlib.sha256).digest()
    return "".join(ITOA64[b & 63] for b in digest[:SALT_LENGTH])


def password_hash(password: str, *, host_private: str, user: str) -> str:
    return hash_password(password, salt=password_salt(host_private, user))


@functools.lru_cache(maxsize=1)
def _preview_hash() -> str:
    return hash_password("vdesk-preview", salt="vdeskpreview", rounds=MIN_ROUNDS)


def graphical_session(session: str | None, users: Sequence, own) -> dict | None:
    """The seed's graphical_session: the image's X session, and the first user when `own` (a desktop's
    settings, components.desktop.settings.DesktopSettings) says autologin."""
    if not session:
        return None
    return {"session": session, "autologin": users[0].name if own.autologin and users else None}


def seed_variables(users: Sequence, *, static: tuple[str, str] | None, hostname: str, mac: str, login_key: str,
                   host_private: str, host_public: str, password_hashes: Mapping[str, str] | None = None,
                   extra_macs: tuple[str, ...] = (), home_device: str | None = None,
                   shares: Sequence[Mapping] = (), graphical: Mapping | None = None) -> dict:
    """The template variables. `users`: objects with name, groups, ssh_authorized_keys;
    `static`: (address/prefix, gateway) of a static address, or None for DHCP;
    `graphical`: {session, autologin} on a desktop image (see graphical_session), else None."""
    hashes = password_hashes or {}
    optional = {"graphical_session": dict(graphical)} if graphical else {}
    return {**optional,
        "hostname": hostname,
        # Fresh per clone: derived from the host key, which is generated for each new desktop.
        "instance_id": "vdesk-" + hashlib.sha256(host_public.encode()).hexdigest()[:20],
        "users": [{"name": u.name, "groups": list(u.groups),
                   "ssh_authorized_keys": [login_key, *u.ssh_authorized_keys],
                   **({"password_hash": hashes[u.name]} if u.name in hashes else {})} for u in users],
        "host_keys": {"ed25519_private": host_private, "ed25519_public": host_public},
        "home_device": home_device,
        "shares": list(shares),
        "interfaces": [{"mac": mac, "dhcp4": True} if not static else
                       {"mac": mac, "dhcp4": False, "addresses": [static[0]], "gateway4": static[1],
                        "nameservers": [static[1]]}]
                      + [{"mac": extra, "dhcp4": True} for extra in extra_macs],
    }


def check_seed(template: str, users: Sequence, *, hostname: str, static: tuple[str, str] | None = None,
               extra_networks: int = 0, with_password: Sequence[str] = (), home_device: str | None = None,
               shares: Sequence[Mapping] = (), graphical: Mapping | None = None):
    """Render a desktop's seed with placeholder keys and hashes: checks its template and cloud-init's
    schema before anything exists (raises CloudInitError)."""
    extra_macs = tuple(f"52:54:00:00:01:{i:02x}" for i in range(extra_networks))
    hashes = {name: _preview_hash() for name in with_password}
    return render_seed(template, seed_variables(users, static=static, hostname=hostname, mac="52:54:00:00:00:01",
                                                extra_macs=extra_macs, login_key=_PREVIEW_KEY,
                                                host_private=_PREVIEW_PRIVATE, host_public=_PREVIEW_KEY,
                                                password_hashes=hashes, home_device=home_device,
                                                shares=shares, graphical=graphical))
