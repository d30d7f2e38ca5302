"""vdesk's component API: declare virtual desktops on KVM hosts from any Pulumi program.

    from components import (Desktop, DesktopArgs, DesktopUser, Host, Image, ImageArgs,
                            Network, NetworkArgs, StoragePool, StoragePoolArgs)

    local = Host.embedded("local", accelerator="tcg")
    pool = StoragePool("main", StoragePoolArgs(host=local))
    lan = Network("lan", NetworkArgs(host=local, cidr="10.77.0.0/24"))
    debian = Image("debian12", ImageArgs(golden="debian12"))
    alice = Desktop("alice", DesktopArgs(image=debian, pool=pool, network=lan, memory="2GiB",
                                         users=[DesktopUser("alice")]))

Names are imported lazily, so `python -m components.cli...` tools do not load Pulumi's runtime.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Host": "components.host.resolve",
    "StoragePool": "components.resources.pool", "StoragePoolArgs": "components.resources.pool",
    "Network": "components.resources.network", "NetworkArgs": "components.resources.network",
    "Volume": "components.resources.volume", "VolumeArgs": "components.resources.volume",
    "Image": "components.image", "ImageArgs": "components.image",
    "Desktop": "components.desktop", "DesktopArgs": "components.desktop",
    "DesktopUser": "components.desktop", "Timeouts": "components.desktop", "Share": "components.desktop",
    "Container": "components.container", "ContainerArgs": "components.container",
    "InputError": "components.errors", "VdeskError": "components.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'components' has no attribute {name!r}")
