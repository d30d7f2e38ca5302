"""One desktop on a KubeVirt cluster (a VirtualMachine, a CDI DataVolume, a cloud-init Secret), declared
through vdesk's kubevirt component. Its seed is rendered from the same templates as on a libvirt host.

Run it from this folder in vdesk's environment (`source ../../tools/env.sh`):
    pulumi stack init demo && pulumi config set kubeconfig ~/.kube/config && pulumi up
Settings: `kubeconfig` (required), `context`, `namespace` (default vdesk, must exist), `image_url`,
`memory_mib` (default 2048), `storage_class`.
"""
import pulumi

from components.cloudinit import render_seed
from components.kubevirt.component import KubevirtDesktopComponent
from components.kubevirt.model import KubevirtDesktop
from components.resources.keys import SshKeyPair

PERSON = "ada"
MAC = "52:54:00:6b:76:01"
DEBIAN_CLOUD_IMAGE = "https://cloud.debian.org/images/cloud/trixie/latest/debian-13-genericcloud-amd64.qcow2"

config = pulumi.Config()
login_key = SshKeyPair(f"{PERSON}-login", comment=f"vdesk-{PERSON}")
host_key = SshKeyPair(f"{PERSON}-host", comment=f"root@{PERSON}")


def _desktop(keys) -> KubevirtDesktop:
    login_public, host_public, host_private = keys
    seed = render_seed("desktop", {
        "hostname": PERSON, "instance_id": f"iid-{PERSON}-0001",
        "users": [{"name": PERSON, "ssh_authorized_keys": [login_public]}],
        "host_keys": {"ed25519_public": host_public, "ed25519_private": host_private},
        "interfaces": [{"mac": MAC}],
    })
    return KubevirtDesktop(name=PERSON, namespace=config.get("namespace") or "vdesk", cpus=2,
                           memory_mib=config.get_int("memory_mib") or 2048, disk_gib=20, seed=seed, mac=MAC,
                           image_url=config.get("image_url") or DEBIAN_CLOUD_IMAGE,
                           storage_class=config.get("storage_class"))


desktop = KubevirtDesktopComponent(
    PERSON, desktop=pulumi.Output.all(login_key.public_key, host_key.public_key, host_key.private_key).apply(_desktop),
    kubeconfig=config.require("kubeconfig"), context=config.get("context") or "")
pulumi.export("vm_uid", desktop.vm_uid)
pulumi.export("host_key_fingerprint", host_key.fingerprint)
