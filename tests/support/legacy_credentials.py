"""A desktop's credentials as vdesk declared them before they were one resource, for a state of before.

Installed by a test's program before the loader runs: the Desktop component then declares its login key, host
key and display password as the three resources it made before components.resources.credentials (the same
names, classes and inputs), so a test can make a real state of before and move it over.
"""
from __future__ import annotations

import types

import pulumi

from components.desktop import component
from components.resources.display import DisplayPassword
from components.resources.keys import SshKeyPair


def _three_resources(desktop: str, *, vm_name: str, rotation: str = "", valid_for_s: int | None = None,
                     opts: pulumi.ResourceOptions | None = None):
    login = SshKeyPair(f"{desktop}-login-key", comment=f"vdesk login {vm_name}", opts=opts)
    host = SshKeyPair(f"{desktop}-host-key", comment=f"vdesk host {vm_name}", opts=opts)
    display = DisplayPassword(f"{desktop}-display-password", rotation=rotation, valid_for_s=valid_for_s, opts=opts)
    return types.SimpleNamespace(login_public_key=login.public_key, login_private_key=login.private_key,
                                 host_public_key=host.public_key, host_private_key=host.private_key,
                                 display_password=display.password, display_password_valid_to=display.valid_to)


def install() -> None:
    component.DesktopCredentials = _three_resources
