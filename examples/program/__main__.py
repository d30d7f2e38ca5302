"""Two desktops on one network, declared through vdesk's component API instead of a stack file.

Run it from this folder in vdesk's environment (`source ../../tools/env.sh`):
    pulumi stack init demo && pulumi up
Settings (all optional): `pulumi config set accelerator kvm`, `pulumi config set cidr 10.88.0.0/24`.
"""
import pulumi

from components import (Desktop, DesktopArgs, DesktopSettings, DesktopUser, Host, Image, ImageArgs, Network,
                        NetworkArgs, StoragePool, StoragePoolArgs)

config = pulumi.Config()
host = Host.embedded("local", accelerator=config.get("accelerator") or "tcg")
pool = StoragePool("main", StoragePoolArgs(host=host))
lan = Network("lan", NetworkArgs(host=host, cidr=config.get("cidr") or "10.88.0.0/24"))
debian = Image("debian12", ImageArgs(golden="debian12"))

desktops = [
    Desktop(person, DesktopArgs(
        image=debian, pool=pool, network=lan, users=[DesktopUser(person, groups=["audio", "video"])],
        settings=DesktopSettings(memory="1GiB", vcpus=1,
                                 checks=[{"service": "ssh"}, {"user": person, "groups": ["audio", "video"]}])))
    for person in ("ada", "grace")
]

for desktop in desktops:
    pulumi.export(desktop.vm_name, {"ip": desktop.ip, "ssh": desktop.ssh_command, "state": desktop.state})
