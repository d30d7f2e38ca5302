"""Container: a libvirt LXC container and the gate that proves it works, as one component."""
from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Mapping, Sequence

import pulumi

from ..errors import InputError
from ..names import parse_size, stable_mac
from ..resources.container import LxcContainer
from ..resources.container_ready import ContainerReady

if TYPE_CHECKING:
    from ..host.resolve import Host
    from ..image import Image
    from ..resources.network import Network


@dataclasses.dataclass
class ContainerArgs:
    """A system container (the image's own init) unless `command` is given (an application container)."""

    host: "Host"
    image: "Image"                           # containers take their root tree from a golden image
    network: "Network | None" = None
    memory: int | str = 256                  # an int is MiB
    vcpus: int = 1
    command: Sequence[str] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    mounts: Sequence[Mapping] = ()           # {source, target, readonly}: read-only unless readonly: false
    userns: bool = True                      # root inside is an unprivileged host uid
    running: bool = True
    checks: Sequence[Mapping] = ()
    address_timeout_s: int = 600
    libvirt_name: str | None = None          # default <stack>-<resource name>


class Container(pulumi.ComponentResource):
    """A container; `ip` is known once its gate has passed (None without a network or when stopped)."""

    libvirt_name: str
    state: pulumi.Output[str]
    uid_base: pulumi.Output[int]
    ip: pulumi.Output[str]
    outputs: dict

    def __init__(self, name: str, args: ContainerArgs, opts: pulumi.ResourceOptions | None = None):
        host = args.host
        if not host.lxc_uri:
            raise InputError([(f"{name}.host", f"host {host.name!r} has no LXC driver vdesk can use")])
        if not args.image.files.kernel:
            raise InputError([(f"{name}.image", "containers take their root tree from a golden image")])
        super().__init__("vdesk:index:Container", name, None, opts)
        # Declared at the stack's root before containers were components: keep those resources.
        child = pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)])
        self.libvirt_name = lxc_name = args.libvirt_name or f"{pulumi.get_stack()}-{name}"
        mac, nics = None, []
        if args.network is not None:
            mac = stable_mac(host.lxc_uri, lxc_name, "nic0")
            nics = [args.network.name.apply(lambda n: {"network": n, "mac": mac})]
        container = LxcContainer(name, {
            "host_uri": host.lxc_uri, "name": lxc_name, "owner": pulumi.get_stack(), "project": pulumi.get_project(),
            # A recipe image's directory comes from its build, so the container waits for it.
            "image": (args.image.build.directory if getattr(args.image, "build", None)
                      else os.path.dirname(args.image.files.disk)), "containers_dir": host.containers_dir,
            "command": list(args.command), "env": [f"{k}={v}" for k, v in args.env.items()],
            "memory_mib": parse_size(args.memory, default_unit="MiB") // 1024**2, "vcpus": args.vcpus,
            "networks": nics, "mounts": [dict(m) for m in args.mounts], "userns": args.userns,
            "running": args.running,
        }, opts=child)
        self.state, self.uid_base = container.state, container.uid_base
        self.ip = pulumi.Output.from_input(None)
        if args.running:
            ready = ContainerReady(f"{name}-ready", {
                "host_uri": host.lxc_uri, "name": lxc_name, "uuid": container.uuid, "mac": mac,
                "checks": [dict(c) for c in args.checks], "address_timeout_s": args.address_timeout_s,
            }, opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[container])))
            self.ip = ready.ip
        self.outputs = {"name": lxc_name, "state": self.state, "uid_base": self.uid_base, "ip": self.ip}
        self.register_outputs(self.outputs)
