"""Container: a libvirt LXC container and the gate that proves it works, as one component."""
from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

import pulumi
from pydantic import ValidationError

from ..desktop.wording import from_error, path
from ..errors import InputError
from ..kinds import Timeouts
from ..names import stable_mac
from ..resources.container import LxcContainer
from ..resources.container_ready import ContainerReady
from .settings import ContainerSettings

if TYPE_CHECKING:
    from ..host.resolve import Host
    from ..image import Image
    from ..resources.network import Network


@dataclasses.dataclass(init=False)
class ContainerArgs:
    """A system container (the image's own init) unless `command` is given (an application container): what it
    is made from and where it lives, and its settings (declared once, in
    components.container.settings.ContainerSettings), given as a model or as keywords (`memory="512MiB"`),
    each checked by its declaration when the Container is declared."""

    host: "Host"
    image: "Image"                           # containers take their root tree from a golden image
    network: "Network | None" = None
    address_timeout_s: int = Timeouts().address
    libvirt_name: str | None = None          # default <stack>-<resource name>
    settings: ContainerSettings = dataclasses.field(default_factory=ContainerSettings)

    def __init__(self, host: "Host", image: "Image", network: "Network | None" = None, *,
                 address_timeout_s: int = Timeouts().address, libvirt_name: str | None = None,
                 settings: ContainerSettings | None = None, **keywords):
        self.host, self.image, self.network = host, image, network
        self.address_timeout_s, self.libvirt_name = address_timeout_s, libvirt_name
        unknown = sorted(set(keywords) - set(ContainerSettings.model_fields))
        if unknown:
            raise TypeError(f"ContainerArgs got an unexpected keyword argument {unknown[0]!r}")
        self.settings, self._written = settings or ContainerSettings(), keywords

    def __getattr__(self, name: str):
        """A setting, read as an attribute of the arguments (`args.memory`: bytes)."""
        if name in ContainerSettings.model_fields and "settings" in self.__dict__:
            return getattr(self.settings, name)
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    def check(self, name: str) -> None:
        """The settings written as keywords, each checked by its declaration: raise InputError listing every
        problem as `<name>.<setting>`."""
        if not self._written:
            return
        try:
            checked = ContainerSettings.model_validate(
                {k: list(v) if isinstance(v, tuple) else v for k, v in self._written.items()})
        except ValidationError as exc:
            raise InputError([(f"{name}.{path(loc)}", message)
                              for loc, message in from_error(exc, ContainerSettings)]) from None
        self.settings = self.settings.model_copy(update={k: getattr(checked, k) for k in self._written})
        self._written = {}


class Container(pulumi.ComponentResource):
    """A container; `ip` is known once its gate has passed (None without a network or when stopped)."""

    libvirt_name: str
    state: pulumi.Output[str]
    uid_base: pulumi.Output[int]
    ip: pulumi.Output[str]
    outputs: dict

    def __init__(self, name: str, args: ContainerArgs, opts: pulumi.ResourceOptions | None = None):
        host = args.host
        args.check(name)
        own = args.settings
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
            "command": list(own.command), "env": [f"{k}={v}" for k, v in own.env.items()],
            "memory": own.memory, "vcpus": own.vcpus, "networks": nics,
            # (only what is written: a mount's state stays as it was before `readonly` had a default)
            "mounts": [m.model_dump(exclude_unset=True) for m in own.mounts], "userns": own.userns,
            "running": own.running,
        }, opts=child)
        self.state, self.uid_base = container.state, container.uid_base
        self.ip = pulumi.Output.from_input(None)
        if own.running:
            ready = ContainerReady(f"{name}-ready", {
                "host_uri": host.lxc_uri, "name": lxc_name, "uuid": container.uuid, "mac": mac,
                "checks": [dict(c) for c in own.checks], "address_timeout_s": args.address_timeout_s,
            }, opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[container])))
            self.ip = ready.ip
        self.outputs = {"name": lxc_name, "state": self.state, "uid_base": self.uid_base, "ip": self.ip}
        self.register_outputs(self.outputs)
