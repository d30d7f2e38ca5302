"""vdesk's component API: declare virtual desktops on KVM hosts from any Pulumi program.

    from vdesk import (Desktop, DesktopArgs, DesktopSettings, DesktopUser, Host, Image, ImageArgs,
                       Network, NetworkArgs, StoragePool, StoragePoolArgs)

    local = Host.embedded("local", accelerator="tcg")
    pool = StoragePool("main", StoragePoolArgs(host=local))
    lan = Network("lan", NetworkArgs(host=local, cidr="10.77.0.0/24"))
    debian = Image("debian12", ImageArgs(golden="debian12"))
    alice = Desktop("alice", DesktopArgs(image=debian, pool=pool, network=lan, users=[DesktopUser("alice")],
                                         settings=DesktopSettings(memory="2GiB", vcpus=2)))

A setting may also be given on its own, `DesktopArgs(..., memory="2GiB")`: DesktopSettings declares them all.

Installed (`pip install`), the package is `vdesk`; in a checkout the same code is `components`.
Names are imported lazily, so `python -m components.cli...` tools do not load Pulumi's runtime.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Host": ".host.resolve",
    "StoragePool": ".resources.pool", "StoragePoolArgs": ".resources.pool",
    "Network": ".resources.network", "NetworkArgs": ".resources.network",
    "Volume": ".resources.volume", "VolumeArgs": ".resources.volume",
    "Image": ".image", "ImageArgs": ".image",
    "Desktop": ".desktop", "DesktopArgs": ".desktop", "DesktopSettings": ".desktop",
    "DesktopUser": ".desktop", "Timeouts": ".desktop", "Share": ".desktop",
    "Container": ".container", "ContainerArgs": ".container",
    "InputError": ".errors", "VdeskError": ".errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
