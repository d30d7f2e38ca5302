"""Preview checks that a server-side dry run cannot make, since no controller acts in a dry run: the
storage class a DataVolume names exists, a new VirtualMachine's memory fits the namespace's quota, and
its memory and vCPUs fit at least one node's allocatable capacity.

Each returns (property path, message) pairs, so every problem is reported at once."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

MEMORY_QUOTA_KEYS = ("requests.memory", "memory")
_MEMORY_PATH = ("spec", "template", "spec", "domain", "resources", "requests", "memory")
_CORES_PATH = ("spec", "template", "spec", "domain", "cpu", "cores")


def _dig(mapping, path):
    for key in path:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def storage_class_problems(api_client, manifest: dict) -> list[tuple[str, str]]:
    """A DataVolume's storage class must exist: CDI would otherwise leave its PVC pending for ever."""
    if manifest.get("kind") != "DataVolume":
        return []
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    problems = []
    for section in ("storage", "pvc"):
        name = _dig(manifest, ("spec", section, "storageClassName"))
        if not isinstance(name, str) or not name:
            continue
        try:
            client.StorageV1Api(api_client).read_storage_class(name)
        except ApiException as err:
            if err.status != 404:
                raise
            problems.append((f"manifest.spec.{section}.storageClassName",
                             f"storage class {name!r} does not exist in the cluster"))
    return problems


def memory_quota_problems(api_client, manifest: dict) -> list[tuple[str, str]]:
    """A new VirtualMachine's memory request must fit what each ResourceQuota of its namespace has left.

    Only a lower bound: virt-launcher's pod asks for the guest's memory plus its own overhead, so a VM
    refused here would certainly be refused, while one that passes may still be short by that overhead."""
    if manifest.get("kind") != "VirtualMachine":
        return []
    wanted = _dig(manifest, _MEMORY_PATH)
    namespace = manifest["metadata"].get("namespace")
    if not isinstance(wanted, str) or not namespace:
        return []
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    from kubernetes.utils import parse_quantity
    try:
        client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            "kubevirt.io", "v1", namespace, "virtualmachines", manifest["metadata"]["name"])
        return []      # it exists: its memory is already counted in the quota's use while it runs
    except ApiException as err:
        if err.status != 404:
            raise
    problems = []
    for quota in client.CoreV1Api(api_client).list_namespaced_resource_quota(namespace).items:
        hard = (quota.spec.hard or {}) if quota.spec else {}
        used = (quota.status.used or {}) if quota.status else {}
        for key in MEMORY_QUOTA_KEYS:
            if key not in hard:
                continue
            left = parse_quantity(hard[key]) - parse_quantity(used.get(key, "0"))
            if parse_quantity(wanted) > left:
                problems.append(("manifest." + ".".join(_MEMORY_PATH),
                                 f"{wanted} is beyond namespace {namespace!r}'s quota {quota.metadata.name!r}: "
                                 f"{key} {hard[key]}, of which {used.get(key, '0')} is used"))
    return problems


def node_capacity_problems(api_client, manifest: dict) -> list[tuple[str, str]]:
    """A VirtualMachine's memory and vCPUs must fit one node's allocatable capacity, or the scheduler never
    places its pod. Nodes that cannot be listed (a namespaced role) or none at all: nothing to say."""
    if manifest.get("kind") != "VirtualMachine":
        return []
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    from kubernetes.utils import parse_quantity
    try:
        nodes = client.CoreV1Api(api_client).list_node().items
    except ApiException as err:
        if err.status == 403:
            return []
        raise
    allocatable = [(node.metadata.name, (node.status.allocatable or {}) if node.status else {}) for node in nodes]
    problems = []
    for key, path, wanted in (("memory", _MEMORY_PATH, _dig(manifest, _MEMORY_PATH)),
                              ("cpu", _CORES_PATH, _dig(manifest, _CORES_PATH))):
        offered = [(parse_quantity(a[key]), a[key], name) for name, a in allocatable if key in a]
        if not offered or isinstance(wanted, bool) or not isinstance(wanted, (int, str)):
            continue
        largest, written, name = max(offered)
        if parse_quantity(wanted) > largest:
            problems.append(("manifest." + ".".join(path),
                             f"{wanted} is more {key} than any node of the cluster can give: the largest "
                             f"allocatable is {written} (node {name})"))
    return problems


CHECKS = (storage_class_problems, memory_quota_problems, node_capacity_problems)
