"""A desktop on a KubeVirt cluster as one Pulumi component: its seed Secret, system DataVolume, home
PersistentVolumeClaim, VirtualMachine and SSH Service, each a KubeObject, the VirtualMachine made after
the objects it refers to."""
from __future__ import annotations

import pulumi

from . import model
from .provider import KubeObject

TYPE = "vdesk:kubevirt:Desktop"


class KubevirtDesktopComponent(pulumi.ComponentResource):
    """`desktop` may be an Output (its seed rendered once generated keys are known); `home`: whether it has
    a home claim (its size is the desktop's), kept at removal when `keep_home`; `adopt`: take over its objects
    if they exist."""

    vm_uid: pulumi.Output[str]
    vm_name: str

    def __init__(self, name: str, *, desktop: pulumi.Input[model.KubevirtDesktop], kubeconfig: pulumi.Input[str],
                 context: pulumi.Input[str] = "", home: bool = False, keep_home: bool = False, adopt: bool = False,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        spec = pulumi.Output.from_input(desktop)
        child = pulumi.ResourceOptions(parent=self)
        common = {"kubeconfig": kubeconfig, "context": context, "adopt": adopt}
        secret = KubeObject(f"{name}-seed", manifest=spec.apply(model.seed_secret), kind="Secret",
                            opts=child, **common)
        volumes = [KubeObject(f"{name}-system", manifest=spec.apply(model.system_volume), kind="DataVolume",
                              opts=child, **common)]
        if home:
            volumes.append(KubeObject(f"{name}-home", manifest=spec.apply(model.home_volume),
                                      kind="PersistentVolumeClaim", opts=pulumi.ResourceOptions(
                                          parent=self, retain_on_delete=keep_home or None), **common))
        machine = KubeObject(f"{name}-vm", manifest=spec.apply(model.virtual_machine), kind="VirtualMachine",
                             opts=pulumi.ResourceOptions(parent=self, depends_on=[secret, *volumes]), **common)
        KubeObject(f"{name}-ssh", manifest=spec.apply(model.ssh_service), kind="Service", opts=child, **common)
        self.vm_name = name
        self.vm_uid = machine.uid
        self.register_outputs({"vm_uid": self.vm_uid})
