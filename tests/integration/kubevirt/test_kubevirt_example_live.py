"""examples/kubevirt, the hand-written program, through the Pulumi engine against the real API server:
preview, up, secrets in state, drift repaired, an in-place memory change, destroy leaving nothing.

No KubeVirt or CDI controller runs here, so the VirtualMachine never boots and the DataVolume never
imports: what is under test is what vdesk asks of the cluster and what the cluster stores."""
from __future__ import annotations

import base64
import shutil

import pytest
from kubernetes import client
from pulumi import automation as auto

from tests.support.kubevirt import managed_objects
from tests.support.project import REPO, isolated_env

pytestmark = pytest.mark.integration

NAMESPACE = "example"
OBJECTS = [("DataVolume", "ada-system"), ("Secret", "ada-cloudinit"), ("VirtualMachine", "ada")]


def _vm(kube_client) -> dict:
    return client.CustomObjectsApi(kube_client).get_namespaced_custom_object(
        "kubevirt.io", "v1", NAMESPACE, "virtualmachines", "ada")


def test_example_comes_up_keeps_secrets_repairs_drift_updates_in_place_and_goes_away(
        kube_server, kube_client, namespace, tmp_path):
    project, state = tmp_path / "program", tmp_path / "state"
    shutil.copytree(REPO / "examples" / "kubevirt", project)
    env = isolated_env(state)
    stack = auto.create_or_select_stack("demo", work_dir=str(project),
                                        opts=auto.LocalWorkspaceOptions(env_vars=env, pulumi_home=env["PULUMI_HOME"]))
    stack.set_all_config({"kubeconfig": auto.ConfigValue(str(kube_server.kubeconfig)),
                          "namespace": auto.ConfigValue(NAMESPACE),
                          "image_url": auto.ConfigValue("http://images.invalid/debian-13.qcow2")})
    try:
        assert stack.preview().change_summary.get("create", 0) >= 6    # stack, component, 2 keys, 3 objects
        assert managed_objects(kube_client, NAMESPACE) == []             # a preview makes nothing

        up = stack.up(on_output=print)
        assert up.summary.result == "succeeded"
        assert managed_objects(kube_client, NAMESPACE) == OBJECTS
        uid = _vm(kube_client)["metadata"]["uid"]
        assert up.outputs["vm_uid"].value == uid

        # The Secret holds the guest's private host key: in the cluster, never in plain text in state.
        seed = client.CoreV1Api(kube_client).read_namespaced_secret("ada-cloudinit", NAMESPACE)
        assert "BEGIN OPENSSH PRIVATE KEY" in base64.b64decode(seed.data["userdata"]).decode()
        # (The Automation API's export_stack decrypts: read the backend's own files, as they are stored.)
        stored = "".join(path.read_text() for path in (state / "backend").rglob("*.json"))
        assert '"vm_uid"' in stored
        for needle in ("PRIVATE KEY", seed.data["userdata"], seed.data["userdata"][:40]):
            assert needle not in stored

        # Drift: the DataVolume deleted behind vdesk's back is seen by refresh and made again by up.
        client.CustomObjectsApi(kube_client).delete_namespaced_custom_object(
            "cdi.kubevirt.io", "v1beta1", NAMESPACE, "datavolumes", "ada-system")
        stack.refresh(on_output=print)
        assert stack.preview().change_summary.get("create") == 1
        stack.up(on_output=print)
        assert managed_objects(kube_client, NAMESPACE) == OBJECTS

        # A memory change is an in-place update of the same VirtualMachine.
        stack.set_config("memory_mib", auto.ConfigValue("4096"))
        changed = stack.up(on_output=print)
        assert changed.summary.resource_changes.get("update") == 1
        assert "replace" not in changed.summary.resource_changes
        vm = _vm(kube_client)
        assert vm["metadata"]["uid"] == uid
        assert vm["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "4096Mi"
        assert set(stack.preview().change_summary) == {"same"}          # a second run changes nothing

        stack.destroy(on_output=print)
        assert managed_objects(kube_client, NAMESPACE) == []
    finally:
        stack.destroy()
