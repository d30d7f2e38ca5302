"""Preview checks that a server-side dry run cannot make, since no controller acts in a dry run: the
storage class a DataVolume names exists, the memory that new or growing VirtualMachines add fits what
their namespace's quota has left, each one's memory and vCPUs fit at least one node's allocatable
capacity, and their memory together fits all the nodes'.

Each returns (property path, message) pairs, so every problem is reported at once."""
from __future__ import annotations

import dataclasses
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


@dataclasses.dataclass(frozen=True)
class MemoryDemand:
    """What one VirtualMachine adds to its namespace's memory use: all of it when new, its growth when changed."""
    where: str               # the path its problem is reported at
    asked: str               # its memory request as written, e.g. 3072Mi
    adds: int                # bytes it adds to the namespace's use
    grows_from: str | None = None    # an existing VirtualMachine's request now

    @property
    def wording(self) -> str:
        if self.grows_from is None:
            return self.asked
        return f"{self.asked} (up from {self.grows_from}: +{_mib(self.adds)})"


def _mib(amount) -> str:
    return f"{-(-int(amount) // 2**20)}Mi"


def memory_demand(api_client, manifest: dict, where: str = "manifest." + ".".join(_MEMORY_PATH)
                  ) -> MemoryDemand | None:
    """A VirtualMachine's memory request, counted as what it adds: an existing one's memory is already in the
    quota's use while it runs, so only its growth counts."""
    if manifest.get("kind") != "VirtualMachine":
        return None
    wanted = _dig(manifest, _MEMORY_PATH)
    namespace = manifest["metadata"].get("namespace")
    if not isinstance(wanted, str) or not namespace:
        return None
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    from kubernetes.utils import parse_quantity
    try:
        asked = parse_quantity(wanted)
    except ValueError:
        return None          # the dry run says what is wrong with it
    try:
        live = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            "kubevirt.io", "v1", namespace, "virtualmachines", manifest["metadata"]["name"])
    except ApiException as err:
        if err.status != 404:
            raise
        return MemoryDemand(where, wanted, int(asked))
    have = _dig(live, _MEMORY_PATH)
    try:
        before = parse_quantity(have) if isinstance(have, str) else 0
    except ValueError:
        before = 0
    return MemoryDemand(where, wanted, max(0, int(asked - before)), have if isinstance(have, str) else None)


def quota_problems(api_client, namespace: str, demands: list[MemoryDemand]) -> list[tuple[str, str]]:
    """The VirtualMachines of one namespace, in the order given, against what each of its ResourceQuotas has
    left: each one whose memory, added to that of the ones before it, goes beyond is reported.

    Only a lower bound: virt-launcher's pod asks for the guest's memory plus its own overhead, so a VM
    refused here would certainly be refused, while one that passes may still be short by that overhead."""
    if not any(demand.adds for demand in demands):
        return []
    from kubernetes import client
    from kubernetes.utils import parse_quantity
    problems = []
    for quota in client.CoreV1Api(api_client).list_namespaced_resource_quota(namespace).items:
        hard = (quota.spec.hard or {}) if quota.spec else {}
        used = (quota.status.used or {}) if quota.status else {}
        for key in MEMORY_QUOTA_KEYS:
            if key not in hard:
                continue
            left = parse_quantity(hard[key]) - parse_quantity(used.get(key, "0"))
            limit = (f"namespace {namespace!r}'s quota {quota.metadata.name!r}: {key} {hard[key]}, of which "
                     f"{used.get(key, '0')} is used")
            for demand, before, prior in _in_turn(demands):
                if demand.adds > left:
                    problems.append((demand.where, f"{demand.wording} is beyond {limit}"))
                elif before + demand.adds > left:
                    problems.append((demand.where, f"{demand.wording} is beyond {limit}: "
                                                   + _before_it(demand, before, prior, " in the namespace")))
    return problems


def _in_turn(demands: list[MemoryDemand]):
    """(demand, what the ones before it add, their wording) for each one that adds memory, in order."""
    total, prior = 0, []
    for demand in demands:
        if demand.adds:
            yield demand, total, tuple(prior)
            total += demand.adds
            prior.append(f"{demand.where} {_mib(demand.adds)}")


def _before_it(demand: MemoryDemand, before: int, prior: tuple[str, ...], where: str = "") -> str:
    return (f"the stack's desktops before it{where} ask for {_mib(before)} ({', '.join(prior)}), "
            f"{_mib(before + demand.adds)} in all")


def memory_quota_problems(api_client, manifest: dict) -> list[tuple[str, str]]:
    """One VirtualMachine, new or growing, must fit what each ResourceQuota of its namespace has left
    (a whole stack's are summed by components.kubevirt.stack)."""
    demand = memory_demand(api_client, manifest)
    if demand is None:
        return []
    return quota_problems(api_client, manifest["metadata"]["namespace"], [demand])


def node_capacity_problems(api_client, manifest: dict) -> list[tuple[str, str]]:
    """A VirtualMachine's memory and vCPUs must fit one node's allocatable capacity, or the scheduler never
    places its pod. Nodes that cannot be listed (a namespaced role) or none at all: nothing to say."""
    if manifest.get("kind") != "VirtualMachine":
        return []
    from kubernetes.utils import parse_quantity
    allocatable = _allocatable(api_client)
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


def nodes_together_problems(api_client, demands: list[MemoryDemand]) -> list[tuple[str, str]]:
    """The memory the stack's VirtualMachines add, summed, must fit the nodes' allocatable memory together.

    A lower bound again (the nodes' other pods are not counted): past it some of them certainly never get a
    node. One beyond the largest node on its own is node_capacity_problems' to report."""
    if not any(demand.adds for demand in demands):
        return []
    from kubernetes.utils import parse_quantity
    offered = [parse_quantity(a["memory"]) for _name, a in _allocatable(api_client) if "memory" in a]
    if not offered:
        return []
    together, largest = sum(offered), max(offered)
    return [(demand.where, f"{demand.wording} is more memory than the cluster's nodes can give together "
                           f"({_mib(together)} allocatable on {len(offered)} node{'s' if len(offered) > 1 else ''}): "
                           + _before_it(demand, before, prior))
            for demand, before, prior in _in_turn(demands)
            if demand.adds <= largest and before + demand.adds > together]


def _allocatable(api_client) -> list[tuple[str, dict]]:
    """(name, allocatable capacity) of each node; none when the stack's role may not list nodes."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    try:
        nodes = client.CoreV1Api(api_client).list_node().items
    except ApiException as err:
        if err.status == 403:
            return []
        raise
    return [(node.metadata.name, (node.status.allocatable or {}) if node.status else {}) for node in nodes]


CHECKS = (storage_class_problems, memory_quota_problems, node_capacity_problems)
