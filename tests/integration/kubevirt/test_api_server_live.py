"""The test tier itself: a real kube-apiserver that holds KubeVirt's and CDI's schemas and enforces them."""
from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration

NAMESPACE = "tier-proof"


def _virtual_machine(name: str, spec_overrides: dict | None = None) -> dict:
    spec = {
        "runStrategy": "Halted",
        "template": {"spec": {
            "domain": {"devices": {}, "resources": {"requests": {"memory": "1Gi"}}},
        }},
    }
    spec.update(spec_overrides or {})
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


def _data_volume(name: str) -> dict:
    return {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"source": {"http": {"url": "http://images.invalid/debian.qcow2"}},
                     "storage": {"resources": {"requests": {"storage": "10Gi"}}}}}



def test_crds_are_served_as_api_resources(kube_client):
    groups = {g.name: [v.version for v in g.versions] for g in client.ApisApi(kube_client).get_api_versions().groups}
    assert "v1" in groups["kubevirt.io"]
    assert "v1beta1" in groups["cdi.kubevirt.io"]
    kinds = {r.kind for r in client.CustomObjectsApi(kube_client).get_api_resources("kubevirt.io", "v1").resources}
    assert {"VirtualMachine", "VirtualMachineInstance"} <= kinds


def test_valid_virtual_machine_and_data_volume_are_stored(kube_client, namespace):
    objects = client.CustomObjectsApi(kube_client)
    objects.create_namespaced_custom_object("kubevirt.io", "v1", namespace, "virtualmachines",
                                            _virtual_machine("valid-vm"))
    objects.create_namespaced_custom_object("cdi.kubevirt.io", "v1beta1", namespace, "datavolumes",
                                            _data_volume("valid-dv"))
    stored_vm = objects.get_namespaced_custom_object("kubevirt.io", "v1", namespace, "virtualmachines", "valid-vm")
    stored_dv = objects.get_namespaced_custom_object("cdi.kubevirt.io", "v1beta1", namespace, "datavolumes",
                                                     "valid-dv")
    assert stored_vm["spec"]["template"]["spec"]["domain"]["resources"]["requests"]["memory"] == "1Gi"
    assert stored_dv["spec"]["storage"]["resources"]["requests"]["storage"] == "10Gi"
    assert stored_vm["metadata"]["uid"] and stored_dv["metadata"]["uid"]


def test_crd_invalid_virtual_machine_is_refused_by_the_server(kube_client, namespace):
    objects = client.CustomObjectsApi(kube_client)
    bad = _virtual_machine("bad-vm", {"running": "yes"})
    with pytest.raises(ApiException) as refused:
        objects.create_namespaced_custom_object("kubevirt.io", "v1", namespace, "virtualmachines", bad)
    assert refused.value.status == 422
    causes = json.loads(refused.value.body)["details"]["causes"]
    assert any(c["field"] == "spec.running" and "must be of type boolean" in c["message"] for c in causes), causes
    with pytest.raises(ApiException) as missing:
        objects.get_namespaced_custom_object("kubevirt.io", "v1", namespace, "virtualmachines", "bad-vm")
    assert missing.value.status == 404


def test_virtual_machine_without_a_domain_is_refused_by_the_server(kube_client, namespace):
    bad = _virtual_machine("domainless-vm", {"template": {"spec": {}}})
    with pytest.raises(ApiException) as refused:
        client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
            "kubevirt.io", "v1", namespace, "virtualmachines", bad)
    assert refused.value.status == 422
    assert "spec.template.spec.domain: Required value" in json.loads(refused.value.body)["message"]
