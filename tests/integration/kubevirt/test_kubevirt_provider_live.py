"""The KubeVirt backend's provider against the real API server: dry run, create, in-place update, drift, delete.

No KubeVirt or CDI controller runs here, so nothing boots or imports: what is under test is what the
cluster stores and validates, which is all the provider changes."""
from __future__ import annotations

import copy

import pytest
from kubernetes import client

from components.kubevirt import model
from components.errors import VdeskError
from components.kubevirt.provider import KubeObjectProvider
from tests.support.kubevirt import desktop, managed_objects
from tests.support.providers import checked

pytestmark = pytest.mark.integration

NAMESPACE = "desks"


def _props(kube_server, manifest) -> dict:
    return {"kubeconfig": str(kube_server.kubeconfig), "manifest": manifest}


def test_desktop_passes_server_side_dry_run_and_nothing_is_made(kube_server, kube_client, namespace):
    provider = KubeObjectProvider()
    for manifest in model.manifests(desktop("dry", NAMESPACE)):
        checked(provider, _props(kube_server, manifest))
    assert managed_objects(kube_client, NAMESPACE) == []


def test_crd_invalid_value_fails_check_naming_the_field(kube_server, kube_client, namespace):
    vm = model.virtual_machine(desktop("bad", NAMESPACE))
    vm["spec"]["template"]["spec"]["domain"]["cpu"]["cores"] = "two"
    result = KubeObjectProvider().check({}, _props(kube_server, vm))
    failures = [(f.property, f.reason) for f in result.failures]
    assert [path for path, _ in failures] == ["manifest.spec.template.spec.domain.cpu.cores"], failures
    assert "expected numeric (int or float), got string" in failures[0][1]
    assert managed_objects(kube_client, NAMESPACE) == []


def test_create_update_memory_in_place_drift_and_delete_leaves_nothing(kube_server, kube_client, namespace):
    provider = KubeObjectProvider()
    made = {}
    for manifest in model.manifests(desktop("desk1", NAMESPACE)):
        created = provider.create(checked(provider, _props(kube_server, manifest)))
        made[manifest["kind"]] = created
    assert managed_objects(kube_client, NAMESPACE) == [("DataVolume", "desk1-system"), ("Secret", "desk1-cloudinit"),
                                     ("VirtualMachine", "desk1")]
    vm = made["VirtualMachine"]
    for kind, created in made.items():     # nothing drifted yet: read gives back what was declared
        assert provider.read(created.id, created.outs).outs["manifest"] == created.outs["manifest"], kind

    # A memory change is an in-place update of the same VirtualMachine (same uid).
    bigger = _props(kube_server, model.virtual_machine(desktop("desk1", NAMESPACE, memory_mib=4096)))
    diff = provider.diff(vm.id, vm.outs, checked(provider, bigger, vm.outs))
    assert diff.changes and diff.replaces == []
    updated = provider.update(vm.id, vm.outs, bigger)
    assert updated.outs["uid"] == vm.outs["uid"]
    live = client.CustomObjectsApi(kube_client).get_namespaced_custom_object(
        "kubevirt.io", "v1", NAMESPACE, "virtualmachines", "desk1")
    assert live["metadata"]["uid"] == vm.outs["uid"]
    assert live["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "4096Mi"

    # Drift: someone else changes the memory and deletes the system DataVolume; read sees both.
    client.CustomObjectsApi(kube_client).patch_namespaced_custom_object(
        "kubevirt.io", "v1", NAMESPACE, "virtualmachines", "desk1",
        {"spec": {"template": {"spec": {"domain": {"memory": {"guest": "1024Mi"}}}}}})
    drifted = provider.read(vm.id, updated.outs).outs["manifest"]
    assert drifted["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "1024Mi"
    expected = copy.deepcopy(updated.outs["manifest"])
    expected["spec"]["template"]["spec"]["domain"]["memory"]["guest"] = "1024Mi"
    assert drifted == expected
    client.CustomObjectsApi(kube_client).delete_namespaced_custom_object(
        "cdi.kubevirt.io", "v1beta1", NAMESPACE, "datavolumes", "desk1-system")
    volume = made["DataVolume"]
    assert provider.read(volume.id, volume.outs).id == ""
    provider.delete(volume.id, volume.outs)       # already gone: delete succeeds quietly

    # Up after the drift: the VirtualMachine is brought back to the declaration, the volume made again.
    provider.update(vm.id, {**updated.outs, "manifest": drifted}, bigger)
    assert provider.read(vm.id, updated.outs).outs["manifest"] == bigger["manifest"]
    made["DataVolume"] = provider.create(volume.outs)

    for kind in ("VirtualMachine", "DataVolume", "Secret"):
        provider.delete(made[kind].id, made[kind].outs)
    assert managed_objects(kube_client, NAMESPACE) == []


def test_missing_storage_class_fails_check_and_an_existing_one_passes(kube_server, kube_client, namespace):
    client.StorageV1Api(kube_client).create_storage_class(
        {"metadata": {"name": "local"}, "provisioner": "kubernetes.io/no-provisioner"})
    provider = KubeObjectProvider()
    missing = provider.check({}, _props(kube_server, model.system_volume(desktop("sc", NAMESPACE,
                                                                                storage_class="fast"))))
    assert [(f.property, f.reason) for f in missing.failures] == [
        ("manifest.spec.storage.storageClassName", "storage class 'fast' does not exist in the cluster")]
    checked(provider, _props(kube_server, model.system_volume(desktop("sc", NAMESPACE, storage_class="local"))))
    client.StorageV1Api(kube_client).delete_storage_class("local")


def test_memory_beyond_quota_fails_check_with_the_test_playing_the_quota_controller(kube_server, kube_client):
    quota_namespace = "quota-check"
    core = client.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": quota_namespace}})
    core.create_namespaced_resource_quota(quota_namespace, {"metadata": {"name": "team"},
                                                            "spec": {"hard": {"requests.memory": "3Gi"}}})
    # No kube-controller-manager runs here: the test writes the use that its quota controller would.
    core.patch_namespaced_resource_quota_status("team", quota_namespace, {"status": {
        "hard": {"requests.memory": "3Gi"}, "used": {"requests.memory": "2Gi"}}})
    provider = KubeObjectProvider()
    too_big = provider.check({}, _props(kube_server, model.virtual_machine(
        desktop("big", quota_namespace, memory_mib=2048))))
    assert [(f.property, f.reason) for f in too_big.failures] == [(
        "manifest.spec.template.spec.domain.resources.requests.memory",
        "2048Mi is beyond namespace 'quota-check''s quota 'team': requests.memory 3Gi, of which 2Gi is used")]
    checked(provider, _props(kube_server, model.virtual_machine(desktop("fits", quota_namespace, memory_mib=1024))))
    both = model.virtual_machine(desktop("both", quota_namespace, memory_mib=4096))
    both["spec"]["template"]["spec"]["domain"]["cpu"]["cores"] = "two"
    failures = provider.check({}, _props(kube_server, both)).failures
    assert sorted(f.property for f in failures) == ["manifest.spec.template.spec.domain.cpu.cores",
                                                    "manifest.spec.template.spec.domain.resources.requests.memory"]


def test_an_existing_object_is_refused_unless_adopted_then_brought_to_the_declaration(
        kube_server, kube_client, namespace):
    declared = model.seed_secret(desktop("adoptee", NAMESPACE))
    core = client.CoreV1Api(kube_client)
    made_by_hand = core.create_namespaced_secret(NAMESPACE, {
        "metadata": {"name": declared["metadata"]["name"]}, "data": {"userdata": "b2xk"}})
    provider = KubeObjectProvider()
    with pytest.raises(VdeskError, match="v1/Secret/desks/adoptee-cloudinit already exists; declare adopt: true"):
        provider.create(checked(provider, _props(kube_server, declared)))
    adopted = provider.create(checked(provider, {**_props(kube_server, declared), "adopt": True}))
    assert adopted.outs["uid"] == made_by_hand.metadata.uid
    live = core.read_namespaced_secret(declared["metadata"]["name"], NAMESPACE)
    assert live.data["userdata"] == declared["data"]["userdata"]
    assert live.metadata.labels == declared["metadata"]["labels"]
    provider.delete(adopted.id, adopted.outs)
    assert managed_objects(kube_client, NAMESPACE) == []
