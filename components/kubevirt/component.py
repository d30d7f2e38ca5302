"""A desktop on a KubeVirt cluster as one Pulumi component: its seed Secret, system DataVolume and
VirtualMachine, each a KubeObject, the VirtualMachine made after the two it refers to."""
from __future__ import annotations

import pulumi

from . import model
from .provider import KubeObject

TYPE = "vdesk:kubevirt:Desktop"


class KubevirtDesktopComponent(pulumi.ComponentResource):
    """`desktop` may be an Output (its seed rendered once generated keys are known)."""

    vm_uid: pulumi.Output[str]
    vm_name: str

    def __init__(self, name: str, *, desktop: pulumi.Input[model.KubevirtDesktop], kubeconfig: pulumi.Input[str],
                 context: pulumi.Input[str] = "", opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        spec = pulumi.Output.from_input(desktop)
        child = pulumi.ResourceOptions(parent=self)
        common = {"kubeconfig": kubeconfig, "context": context}
        secret = KubeObject(f"{name}-seed", manifest=spec.apply(model.seed_secret), kind="Secret",
                            opts=child, **common)
        volume = KubeObject(f"{name}-system", manifest=spec.apply(model.system_volume), kind="DataVolume",
                            opts=child, **common)
        machine = KubeObject(f"{name}-vm", manifest=spec.apply(model.virtual_machine), kind="VirtualMachine",
                             opts=pulumi.ResourceOptions(parent=self, depends_on=[secret, volume]), **common)
        self.vm_name = name
        self.vm_uid = machine.uid
        self.register_outputs({"vm_uid": self.vm_uid})
