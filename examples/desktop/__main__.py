"""A graphical desktop: an Xfce image built from a recipe, a developer's desktop logged in at boot.

Run it from this folder in vdesk's environment (`source ../../tools/env.sh`):
    pulumi stack init demo && pulumi up
`up` builds the image first (once per recipe: the build is cached in
~/.cache/vdesk/images and shared by every stack that declares the same recipe);
`preview` says whether it will be built or reused.
Settings (all optional): `pulumi config set accelerator kvm`, `pulumi config set cidr 10.88.0.0/24`,
`pulumi config set user ada`, `pulumi config set --secret password ...` (log in at the greeter too).
"""
import pulumi

from components import (Desktop, DesktopArgs, DesktopSettings, DesktopUser, Host, Image, ImageArgs, Network, NetworkArgs,
                        StoragePool, StoragePoolArgs, Timeouts)

config = pulumi.Config()
host = Host.embedded("local", accelerator=config.get("accelerator") or "tcg")
pool = StoragePool("main", StoragePoolArgs(host=host))
lan = Network("lan", NetworkArgs(host=host, cidr=config.get("cidr") or "10.88.0.0/24"))

# Xfce behind LightDM, with what the `developer` template installs (guests are offline).
workstation = Image("workstation", ImageArgs(recipe={
    "base": "debian12", "desktop": "xfce",
    "packages": ["build-essential", "git", "python3-venv", "vim"],
    "locale": "en_US.UTF-8", "keyboard": "us", "timezone": "Etc/UTC",
}))

person = config.get("user") or "ada"
desk = Desktop(person, DesktopArgs(
    image=workstation, pool=pool, network=lan, template="developer",
    users=[DesktopUser(person, password=config.get_secret("password"))],
    settings=DesktopSettings(memory="2GiB", vcpus=2, disk="8GiB", autologin=True, resolution="1280x800", checks=[
        {"session": person},                                    # user ada has an active graphical session
        {"command": "git --version", "output_matches": "^git version "},
        {"service": "lightdm"},
        {"command": "DISPLAY=:0 xrandr --current", "output_matches": "current 1280 x 800"},
    ]),
    timeouts=Timeouts(cloud_init=1200, graphical=900)))

pulumi.export("desktop", {"name": desk.vm_name, "ip": desk.ip, "ssh": desk.ssh_command, "state": desk.state,
                          "screenshot": desk.screenshot, "display": desk.display_uri, "host_key": desk.host_key,
                          "user": person})
pulumi.export("login_private_key", pulumi.Output.secret(desk.outputs["login_private_key"]))
pulumi.export("netns", host.netns)
pulumi.export("host_uri", host.uri)
pulumi.export("image", {"recipe_hash": workstation.recipe.hash, "directory": workstation.build.directory,
                        "reused": workstation.build.reused, "build_seconds": workstation.build.build_seconds,
                        "disk_file_bytes": workstation.build.disk_file_bytes})
