"""examples/kubevirt, a stack file whose host is of kind kubevirt, through vdesk's own program and the
Pulumi engine against the real API server: preview, up, secrets in state, an in-place memory change, drift
repaired, destroy leaving no object of any kind; and bad stacks refused at preview at their stack paths.

No KubeVirt or CDI controller runs here, so the VirtualMachines never boot and the DataVolumes never
import: what is under test is what vdesk asks of the cluster and what the cluster stores. The example is
used as written, with its kubeconfig pointed at the test server."""
from __future__ import annotations

import base64
import copy
import os

import pytest
import yaml
from kubernetes import client

from components.config.loader import declare
from components.config.resolve import parse
from components.kubevirt import model, stack as kubevirt_stack
from components.errors import InputError
from tests.support.kubevirt import every_namespaced_object
from tests.support.project import REPO, isolated_env, make_project, open_stack, rewrite_config

pytestmark = pytest.mark.integration

NAMESPACE = "vdesk"          # the example's namespace
STACK = "kubevirt"
EXAMPLE = REPO / "examples" / "kubevirt" / f"Pulumi.{STACK}.yaml"
TIGHT = "tight"              # a namespace whose ResourceQuota leaves 4Gi of memory
OBJECTS = sorted((kind, f"{STACK}-{user}{suffix}") for user in ("ada", "bob") for kind, suffix in (
    ("Secret", "-cloudinit"), ("DataVolume", "-system"), ("PersistentVolumeClaim", "-home"),
    ("VirtualMachine", ""), ("Service", "-ssh")))


def example_config(kube_server) -> dict:
    config = yaml.safe_load(EXAMPLE.read_text())["config"]
    config["vdesk:hosts"]["cluster"]["kubeconfig"] = str(kube_server.kubeconfig)
    return config


@pytest.fixture(scope="module")
def cluster(kube_server, namespace, tmp_path_factory):
    """The storage class the example names, as a cluster's administrator provides it, and a namespace
    under a memory quota. No quota controller runs here: the test writes the use it would. This machine's
    policy lets a stack use the test server's kubeconfig and those two namespaces."""
    policy = tmp_path_factory.mktemp("policy") / "policy.yaml"
    policy.write_text(f"kubeconfigs: [{kube_server.kubeconfig.parent}]\nkubevirt_namespaces: [{NAMESPACE}, {TIGHT}]\n")
    patch = pytest.MonkeyPatch()
    patch.setenv("VDESK_POLICY", str(policy))
    api_client = kube_server.api_client()
    client.StorageV1Api(api_client).create_storage_class(
        {"metadata": {"name": "standard"}, "provisioner": "kubernetes.io/no-provisioner"})
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": TIGHT}})
    core.create_namespaced_resource_quota(TIGHT, {"metadata": {"name": "team"},
                                                  "spec": {"hard": {"requests.memory": "4Gi"}}})
    core.patch_namespaced_resource_quota_status("team", TIGHT, {"status": {
        "hard": {"requests.memory": "4Gi"}, "used": {"requests.memory": "0"}}})
    yield kube_server
    client.StorageV1Api(api_client).delete_storage_class("standard")
    api_client.close()
    patch.undo()


def _env(state) -> dict:
    return {**isolated_env(state), "VDESK_POLICY": os.environ["VDESK_POLICY"]}


def _vm(kube_client, user: str) -> dict:
    return client.CustomObjectsApi(kube_client).get_namespaced_custom_object(
        "kubevirt.io", "v1", NAMESPACE, "virtualmachines", f"{STACK}-{user}")


def test_example_previews_comes_up_updates_in_place_repairs_drift_and_goes_away_with_the_test_as_pvc_protection(
        cluster, kube_client, tmp_path):
    config = example_config(cluster)
    project, state = make_project(tmp_path / "program", STACK, config), tmp_path / "state"
    stack = open_stack(project, STACK, _env(state))
    try:
        preview = stack.preview(on_output=print)
        assert preview.change_summary.get("create", 0) >= 15       # 2 desktops: 2 keys and 5 objects each
        assert every_namespaced_object(kube_client, NAMESPACE) == []  # a preview makes nothing

        up = stack.up(on_output=print)
        assert up.summary.result == "succeeded"
        assert every_namespaced_object(kube_client, NAMESPACE) == OBJECTS
        bob = _vm(kube_client, "bob")
        assert bob["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "3072Mi"    # users[1].memory
        assert up.outputs["desktops"].value["bob"]["vm_uid"] == bob["metadata"]["uid"]
        claim = client.CoreV1Api(kube_client).read_namespaced_persistent_volume_claim(f"{STACK}-ada-home", NAMESPACE)
        assert (claim.spec.storage_class_name, claim.spec.resources.requests["storage"]) == ("standard", "5Gi")

        # The Secret holds the guest's private host key: in the cluster, never in plain text in state.
        seed = client.CoreV1Api(kube_client).read_namespaced_secret(f"{STACK}-ada-cloudinit", NAMESPACE)
        user_data = base64.b64decode(seed.data["userdata"]).decode()
        assert "BEGIN OPENSSH PRIVATE KEY" in user_data and "ada@laptop" in user_data
        stored = "".join(path.read_text() for path in (state / "backend").rglob("*.json"))
        for needle in ("PRIVATE KEY", seed.data["userdata"], seed.data["userdata"][:40]):
            assert needle not in stored

        # A memory change is an in-place update of the same VirtualMachine.
        bigger = copy.deepcopy(config)
        bigger["vdesk:users"][1]["memory"] = "4GiB"
        rewrite_config(project, STACK, bigger)
        changed = stack.up(on_output=print)
        assert changed.summary.resource_changes.get("update") == 1, changed.summary.resource_changes
        assert "replace" not in changed.summary.resource_changes
        after = _vm(kube_client, "bob")
        assert after["metadata"]["uid"] == bob["metadata"]["uid"]
        assert after["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "4096Mi"

        # Drift: a DataVolume deleted behind vdesk's back is seen by refresh and made again by up.
        client.CustomObjectsApi(kube_client).delete_namespaced_custom_object(
            "cdi.kubevirt.io", "v1beta1", NAMESPACE, "datavolumes", f"{STACK}-ada-system")
        stack.refresh(on_output=print)
        assert stack.preview().change_summary.get("create") == 1
        stack.up(on_output=print)
        assert every_namespaced_object(kube_client, NAMESPACE) == OBJECTS
        assert set(stack.preview().change_summary) == {"same"}       # a second run changes nothing

        stack.destroy(on_output=print)
        # Each home claim is being deleted, held by the finalizer that kube-controller-manager's pvc-protection
        # controller lifts once no pod mounts it: no such controller runs here, so the test lifts it.
        core = client.CoreV1Api(kube_client)
        for claim in core.list_namespaced_persistent_volume_claim(NAMESPACE).items:
            assert claim.metadata.deletion_timestamp is not None, claim.metadata.name
            assert claim.metadata.finalizers == ["kubernetes.io/pvc-protection"]
            core.patch_namespaced_persistent_volume_claim(claim.metadata.name, NAMESPACE,
                                                          {"metadata": {"finalizers": None}})
        assert every_namespaced_object(kube_client, NAMESPACE) == []
    finally:
        stack.destroy()


def _bad(kube_server) -> dict:
    """The example with a storage class the cluster lacks, in the tight namespace with bob's memory beyond its
    quota, and ada's vCPUs beyond what the VirtualMachine CRD's schema takes (an integer, at most 2^63 - 1)."""
    raw = {key.split(":", 1)[1]: value for key, value in example_config(kube_server).items()}
    raw["hosts"]["cluster"].update(storage_class="missing", namespace=TIGHT)
    raw["users"][1]["memory"] = "6GiB"
    raw["users"][0]["vcpus"] = 2**64
    return raw


def test_bad_stack_is_refused_naming_every_stack_path_at_once_and_nothing_is_made(cluster, kube_client):
    with pytest.raises(InputError) as refused:
        declare(STACK, _bad(cluster), config_keys={})
    problems = refused.value.problems
    assert [path for path, _ in problems] == ["hosts.cluster.storage_class", "users[0].vcpus", "users[1].memory"], \
        problems
    messages = dict(problems)
    assert messages["hosts.cluster.storage_class"] == "storage class 'missing' does not exist in the cluster"
    assert "spec.template.spec.domain.cpu.cores in body must be of type integer" in messages["users[0].vcpus"]
    assert messages["users[1].memory"] == ("6144Mi is beyond namespace 'tight''s quota 'team': requests.memory 4Gi, "
                                           "of which 0 is used")
    assert every_namespaced_object(kube_client, TIGHT) == [("ResourceQuota", "team")]    # the test's own


def test_bad_stack_fails_pulumi_preview_with_its_stack_paths(cluster, kube_client, tmp_path):
    config = {f"vdesk:{key}": value for key, value in _bad(cluster).items()}
    config["vdesk:users"][0].pop("vcpus")     # (the engine's config carries no integer beyond 64 bits)
    project = make_project(tmp_path / "program", STACK, config)
    stack = open_stack(project, STACK, _env(tmp_path / "state"))
    with pytest.raises(Exception) as failed:
        stack.preview()
    for path in ("hosts.cluster.storage_class", "users[1].memory"):
        assert path in str(failed.value)
    assert every_namespaced_object(kube_client, TIGHT) == [("ResourceQuota", "team")]


def test_memory_or_vcpus_no_node_can_give_are_refused_at_their_paths_with_the_test_registering_a_node(
        cluster, kube_client):
    """No kubelet runs here: the test registers a node and writes its allocatable capacity, as one would."""
    core = client.CoreV1Api(kube_client)
    core.create_node({"metadata": {"name": "node-1"}})
    core.patch_node_status("node-1", {"status": {"allocatable": {"memory": "8Gi", "cpu": "4"},
                                                 "capacity": {"memory": "8Gi", "cpu": "4"}}})
    try:
        raw = {key.split(":", 1)[1]: value for key, value in example_config(cluster).items()}
        raw["users"][0]["vcpus"] = 8
        raw["users"][1]["memory"] = "16GiB"
        with pytest.raises(InputError) as refused:
            declare(STACK, raw, config_keys={})
        assert refused.value.problems == [
            ("users[0].vcpus", "8 is more cpu than any node of the cluster can give: the largest allocatable is 4 "
                               "(node node-1)"),
            ("users[1].memory", "16384Mi is more memory than any node of the cluster can give: the largest "
                                "allocatable is 8Gi (node node-1)")]
        assert every_namespaced_object(kube_client, NAMESPACE) == []
        example = parse({key.split(":", 1)[1]: value for key, value in example_config(cluster).items()}, stack=STACK)
        _rest, desktops, clusters = kubevirt_stack.split(example)
        assert kubevirt_stack.preview_problems(desktops, clusters, STACK) == []     # the example fits node-1
    finally:
        core.delete_node("node-1")


def _cluster_problems(raw: dict) -> list[tuple[str, str]]:
    """What the cluster says of the stack's desktops at preview."""
    _rest, desktops, clusters = kubevirt_stack.split(parse(raw, stack=STACK))
    return kubevirt_stack.preview_problems(desktops, clusters, STACK)


def _in_tight(kube_server, **memory) -> dict:
    """The example in the tight namespace, its users' memory as given (users[i]: size)."""
    raw = {key.split(":", 1)[1]: value for key, value in example_config(kube_server).items()}
    raw["hosts"]["cluster"]["namespace"] = TIGHT
    for i, size in memory.items():
        raw["users"][int(i.removeprefix("user"))]["memory"] = size
    return raw


def _quota_use(kube_client, used: str) -> None:
    """What the quota controller (not running here) would write while the namespace's pods ask for `used`."""
    client.CoreV1Api(kube_client).patch_namespaced_resource_quota_status("team", TIGHT, {"status": {
        "hard": {"requests.memory": "4Gi"}, "used": {"requests.memory": used}}})


def test_new_desktops_that_each_fit_the_quota_but_not_together_are_refused_at_the_path_of_each_beyond(
        cluster, kube_client):
    with pytest.raises(InputError) as refused:
        declare(STACK, _in_tight(cluster, user0="2GiB", user1="3GiB"), config_keys={})
    assert refused.value.problems == [(
        "users[1].memory", "3072Mi is beyond namespace 'tight''s quota 'team': requests.memory 4Gi, of which 0 is "
                           "used: the stack's desktops before it in the namespace ask for 2048Mi (users[0].memory "
                           "2048Mi), 5120Mi in all")]
    assert every_namespaced_object(kube_client, TIGHT) == [("ResourceQuota", "team")]
    assert _cluster_problems(_in_tight(cluster, user0="2GiB", user1="2GiB")) == []    # 4Gi in all: the quota


def test_an_in_place_memory_change_counts_only_its_growth_against_the_quota_with_the_test_as_quota_controller(
        cluster, kube_client):
    """ada's VirtualMachine exists with 2048Mi, and the quota counts it as used while it runs."""
    from tests.support.kubevirt import desktop
    custom = client.CustomObjectsApi(kube_client)
    ada = model.virtual_machine(desktop(name=f"{STACK}-ada", namespace=TIGHT, memory_mib=2048))
    custom.create_namespaced_custom_object("kubevirt.io", "v1", TIGHT, "virtualmachines", ada)
    _quota_use(kube_client, "2Gi")
    try:
        assert _cluster_problems(_in_tight(cluster, user0="2GiB", user1="2GiB")) == []   # bob's 2048Mi: what is left

        with pytest.raises(InputError) as refused:
            declare(STACK, _in_tight(cluster, user0="3GiB", user1="2GiB"), config_keys={})
        assert refused.value.problems == [(
            "users[1].memory", "2048Mi is beyond namespace 'tight''s quota 'team': requests.memory 4Gi, of which "
                               "2Gi is used: the stack's desktops before it in the namespace ask for 1024Mi "
                               "(users[0].memory 1024Mi), 3072Mi in all")]

        with pytest.raises(InputError) as refused:
            declare(STACK, _in_tight(cluster, user0="5GiB", user1="1GiB"), config_keys={})
        assert refused.value.problems == [
            ("users[0].memory", "5120Mi (up from 2048Mi: +3072Mi) is beyond namespace 'tight''s quota 'team': "
                                "requests.memory 4Gi, of which 2Gi is used"),
            ("users[1].memory", "1024Mi is beyond namespace 'tight''s quota 'team': requests.memory 4Gi, of which "
                                "2Gi is used: the stack's desktops before it in the namespace ask for 3072Mi "
                                "(users[0].memory 3072Mi), 4096Mi in all")]
    finally:
        custom.delete_namespaced_custom_object("kubevirt.io", "v1", TIGHT, "virtualmachines", f"{STACK}-ada")
        _quota_use(kube_client, "0")
    assert every_namespaced_object(kube_client, TIGHT) == [("ResourceQuota", "team")]


def test_desktops_that_each_fit_a_node_but_not_all_the_nodes_together_are_refused_with_the_test_registering_nodes(
        cluster, kube_client):
    """No kubelet runs here: the test registers the nodes and writes their allocatable capacity, as one would."""
    core = client.CoreV1Api(kube_client)
    nodes = ("node-a", "node-b")
    for node in nodes:
        core.create_node({"metadata": {"name": node}})
    core.patch_node_status("node-a", {"status": {"allocatable": {"memory": "8Gi", "cpu": "4"},
                                                 "capacity": {"memory": "8Gi", "cpu": "4"}}})
    try:
        raw = {key.split(":", 1)[1]: value for key, value in example_config(cluster).items()}
        for user in raw["users"]:
            user["memory"] = "5GiB"
        with pytest.raises(InputError) as refused:
            declare(STACK, raw, config_keys={})
        assert refused.value.problems == [(
            "users[1].memory", "5120Mi is more memory than the cluster's nodes can give together (8192Mi allocatable "
                               "on 1 node): the stack's desktops before it ask for 5120Mi (users[0].memory 5120Mi), "
                               "10240Mi in all")]
        assert every_namespaced_object(kube_client, NAMESPACE) == []

        core.patch_node_status("node-b", {"status": {"allocatable": {"memory": "8Gi", "cpu": "4"},
                                                     "capacity": {"memory": "8Gi", "cpu": "4"}}})
        assert _cluster_problems(raw) == []     # one on each node
    finally:
        for node in nodes:
            core.delete_node(node)
