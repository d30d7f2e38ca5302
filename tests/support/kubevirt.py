"""A desktop for the KubeVirt backend's tests, its seed rendered from the real templates."""
from __future__ import annotations

import dataclasses

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from components.cloudinit import render_seed
from components.kubevirt.model import MANAGED_BY, KubevirtDesktop

ALICE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"
MAC = "52:54:00:6b:76:01"
IMAGE_URL = "http://images.invalid/debian-13-genericcloud-amd64.qcow2"


def host_keys() -> dict:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return {"ed25519_private": private.decode(), "ed25519_public": public.decode() + " root@desk"}


def desktop(name: str = "desk1", namespace: str = "team-a", **settings) -> KubevirtDesktop:
    seed = render_seed("desktop", {
        "hostname": name, "instance_id": f"iid-{name}-0001",
        "users": [{"name": "alice", "ssh_authorized_keys": [ALICE_KEY]}],
        "host_keys": host_keys(), "interfaces": [{"mac": MAC}],
    })
    base = KubevirtDesktop(name=name, namespace=namespace, cpus=2, memory_mib=2048, disk_gib=20, seed=seed,
                           mac=MAC, image_url=IMAGE_URL)
    return dataclasses.replace(base, **settings)


def managed_objects(api_client, namespace: str) -> list[tuple[str, str]]:
    """(kind, name) of every Secret, DataVolume and VirtualMachine that vdesk labelled in the namespace."""
    from kubernetes import client
    selector = ",".join(f"{key}={value}" for key, value in MANAGED_BY.items())
    found = [("Secret", s.metadata.name) for s in
             client.CoreV1Api(api_client).list_namespaced_secret(namespace, label_selector=selector).items]
    objects = client.CustomObjectsApi(api_client)
    for kind, group, version, plural in (("DataVolume", "cdi.kubevirt.io", "v1beta1", "datavolumes"),
                                         ("VirtualMachine", "kubevirt.io", "v1", "virtualmachines")):
        listed = objects.list_namespaced_custom_object(group, version, namespace, plural, label_selector=selector)
        found += [(kind, item["metadata"]["name"]) for item in listed["items"]]
    return sorted(found)


def every_namespaced_object(api_client, namespace: str) -> list[tuple[str, str]]:
    """(kind, name) of every object of every namespaced kind the server serves, in the namespace: what
    "leaves nothing behind" means, whoever made it. Events are left out (below)."""
    from kubernetes import dynamic
    from kubernetes.dynamic.resource import ResourceList
    client = dynamic.DynamicClient(api_client)
    found = []
    for resource in client.resources.search():
        if isinstance(resource, ResourceList) or not resource.namespaced or "list" not in (resource.verbs or ()) or "/" in resource.name:
            continue
        if resource.kind == "Event":
            # The server's journal, not anyone's object: vdesk writes no Events, but kube-apiserver's own
            # controllers can write one about our Services (seen once in CI: 'kubevirt-bob-ssh.18ef...'), and
            # Events expire on their own TTL. (events.k8s.io serves the same Events again.)
            continue
        listed = client.get(resource, namespace=namespace)
        found += [(resource.kind, item.metadata.name) for item in listed.items]
    return sorted(set(found))      # (a kind served in several versions is listed once per version)
