"""What one desktop becomes on a KubeVirt cluster: the manifests of its Secret, DataVolume, home
PersistentVolumeClaim, VirtualMachine and SSH Service.

Built from plain parameters and the NoCloud documents that the libvirt backend renders from the same
templates (components.cloudinit.render.render_seed), so both backends boot the same guest."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Literal

from pydantic import ConfigDict, model_validator
from pydantic.dataclasses import dataclass as checked_dataclass

from ..cloudinit import SeedDocuments
from ..desktop.args import HOME_SERIAL    # as on a libvirt host: the guest finds its home by this disk serial

KUBEVIRT_API = "kubevirt.io/v1"
CDI_API = "cdi.kubevirt.io/v1beta1"
RUN_STRATEGIES = ("Always", "Halted", "Manual", "RerunOnFailure", "Once")
# The keys KubeVirt's cloudInitNoCloud secretRef / networkDataSecretRef read.
USER_DATA_KEY = "userdata"
NETWORK_DATA_KEY = "networkdata"
SYSTEM_DISK = "system"
CLOUD_INIT_DISK = "cloudinit"
HOME_DISK = "home"
SSH_PORT = 22
MANAGED_BY = {"app.kubernetes.io/managed-by": "vdesk"}


@dataclass(frozen=True)
class DataSourceRef:
    """A CDI DataSource that the administrator provides (a golden image already in the cluster)."""
    namespace: str
    name: str


@checked_dataclass(frozen=True, config=ConfigDict(arbitrary_types_allowed=True))
class KubevirtDesktop:
    """One desktop's settings, as the KubeVirt backend needs them (checked when made: a program may make one)."""
    name: str
    namespace: str
    cpus: int
    memory_mib: int
    disk_gib: int
    seed: SeedDocuments
    mac: str                                # the MAC that the seed's network config matches on
    image_url: str | None = None            # the DataVolume imports this image over HTTP(S) ...
    data_source: DataSourceRef | None = None  # ... or clones the administrator's DataSource
    run_strategy: Literal[RUN_STRATEGIES] = "Always"
    storage_class: str | None = None
    home_gib: int | None = None             # a home of its own: a PersistentVolumeClaim kept apart from the system disk

    @model_validator(mode="after")
    def _one_source(self):
        if (self.image_url is None) == (self.data_source is None):
            raise ValueError("a KubeVirt desktop needs exactly one of image_url and data_source")
        return self

    @property
    def seed_secret_name(self) -> str:
        return f"{self.name}-cloudinit"

    @property
    def system_volume_name(self) -> str:
        return f"{self.name}-system"

    @property
    def home_claim_name(self) -> str:
        return f"{self.name}-home"

    @property
    def ssh_service_name(self) -> str:
        return f"{self.name}-ssh"


def _metadata(desktop: KubevirtDesktop, name: str) -> dict:
    return {"name": name, "namespace": desktop.namespace,
            "labels": {**MANAGED_BY, "vdesk.io/desktop": desktop.name}}


def _encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def seed_secret(desktop: KubevirtDesktop) -> dict:
    """The NoCloud user data and network config, which hold the host's private key: a Secret, never a ConfigMap."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(desktop, desktop.seed_secret_name),
            "data": {USER_DATA_KEY: _encoded(desktop.seed.user_data),
                     NETWORK_DATA_KEY: _encoded(desktop.seed.network_config)}}


def system_volume(desktop: KubevirtDesktop) -> dict:
    """The system disk: imported from the image URL, or cloned from the administrator's DataSource."""
    storage: dict = {"resources": {"requests": {"storage": f"{desktop.disk_gib}Gi"}}}
    if desktop.storage_class is not None:
        storage["storageClassName"] = desktop.storage_class
    spec: dict = {"storage": storage}
    if desktop.image_url is not None:
        spec["source"] = {"http": {"url": desktop.image_url}}
    else:
        spec["sourceRef"] = {"kind": "DataSource", "namespace": desktop.data_source.namespace,
                             "name": desktop.data_source.name}
    return {"apiVersion": CDI_API, "kind": "DataVolume",
            "metadata": _metadata(desktop, desktop.system_volume_name), "spec": spec}


def home_volume(desktop: KubevirtDesktop) -> dict | None:
    """The home: an empty claim of its own (the guest formats it once), so a new system disk leaves it be."""
    if not desktop.home_gib:
        return None
    spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{desktop.home_gib}Gi"}}}
    if desktop.storage_class is not None:
        spec["storageClassName"] = desktop.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _metadata(desktop, desktop.home_claim_name), "spec": spec}


def ssh_service(desktop: KubevirtDesktop) -> dict:
    """A ClusterIP Service in front of the guest's SSH, for the readiness gate and `vdesk access` inside the cluster."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _metadata(desktop, desktop.ssh_service_name),
            "spec": {"type": "ClusterIP", "selector": {"vdesk.io/desktop": desktop.name},
                     "ports": [{"name": "ssh", "protocol": "TCP", "port": SSH_PORT, "targetPort": SSH_PORT}]}}


def virtual_machine(desktop: KubevirtDesktop) -> dict:
    """The VirtualMachine booting the system DataVolume with the seed Secret as its NoCloud disk."""
    memory = f"{desktop.memory_mib}Mi"
    domain = {
        "cpu": {"cores": desktop.cpus},
        "memory": {"guest": memory},
        "resources": {"requests": {"memory": memory}},
        "devices": {
            "disks": [{"name": SYSTEM_DISK, "disk": {"bus": "virtio"}},
                      {"name": CLOUD_INIT_DISK, "disk": {"bus": "virtio"}}],
            "interfaces": [{"name": "default", "masquerade": {}, "macAddress": desktop.mac}],
        },
    }
    volumes = [
        {"name": SYSTEM_DISK, "dataVolume": {"name": desktop.system_volume_name}},
        {"name": CLOUD_INIT_DISK, "cloudInitNoCloud": {
            "secretRef": {"name": desktop.seed_secret_name},
            "networkDataSecretRef": {"name": desktop.seed_secret_name}}},
    ]
    if desktop.home_gib:
        domain["devices"]["disks"].append({"name": HOME_DISK, "serial": HOME_SERIAL, "disk": {"bus": "virtio"}})
        volumes.append({"name": HOME_DISK, "persistentVolumeClaim": {"claimName": desktop.home_claim_name}})
    return {"apiVersion": KUBEVIRT_API, "kind": "VirtualMachine",
            "metadata": _metadata(desktop, desktop.name),
            "spec": {"runStrategy": desktop.run_strategy,
                     "template": {"metadata": {"labels": {"vdesk.io/desktop": desktop.name}},
                                  "spec": {"domain": domain,
                                           "networks": [{"name": "default", "pod": {}}],
                                           "volumes": volumes}}}}


def manifests(desktop: KubevirtDesktop) -> list[dict]:
    """Every object of the desktop, in the order they are created (the VM refers to the volumes and the Secret)."""
    home = home_volume(desktop)
    return [seed_secret(desktop), system_volume(desktop), *([home] if home else []), virtual_machine(desktop),
            ssh_service(desktop)]
