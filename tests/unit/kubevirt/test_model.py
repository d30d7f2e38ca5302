"""Tier 1: a desktop's settings become the Secret, DataVolume and VirtualMachine manifests."""
from __future__ import annotations

import base64

import pytest
import yaml

from components.kubevirt import model
from tests.support.kubevirt import IMAGE_URL, MAC, desktop


def test_objects_come_in_creation_order_in_the_desktops_namespace():
    kinds = [(m["kind"], m["metadata"]["name"], m["metadata"]["namespace"]) for m in model.manifests(desktop())]
    assert kinds == [("Secret", "desk1-cloudinit", "team-a"), ("DataVolume", "desk1-system", "team-a"),
                     ("VirtualMachine", "desk1", "team-a"), ("Service", "desk1-ssh", "team-a")]
    with_home = [(m["kind"], m["metadata"]["name"]) for m in model.manifests(desktop(home_gib=5))]
    assert with_home[2] == ("PersistentVolumeClaim", "desk1-home")


def test_home_is_a_claim_of_its_own_the_guest_finds_by_serial():
    spec = desktop(home_gib=5, storage_class="fast")
    claim = model.home_volume(spec)
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}},
                             "storageClassName": "fast"}
    vm = model.virtual_machine(spec)["spec"]["template"]["spec"]
    assert {"name": "home", "serial": "vdesk-home", "disk": {"bus": "virtio"}} in vm["domain"]["devices"]["disks"]
    assert {"name": "home", "persistentVolumeClaim": {"claimName": "desk1-home"}} in vm["volumes"]
    assert model.home_volume(desktop()) is None


def test_ssh_service_selects_the_desktops_pod_on_port_22():
    spec = model.ssh_service(desktop())["spec"]
    vm = model.virtual_machine(desktop())
    assert spec["selector"] == vm["spec"]["template"]["metadata"]["labels"] == {"vdesk.io/desktop": "desk1"}
    assert spec["ports"] == [{"name": "ssh", "protocol": "TCP", "port": 22, "targetPort": 22}]


def test_seed_secret_holds_the_rendered_nocloud_documents():
    spec = desktop()
    data = model.seed_secret(spec)["data"]
    assert base64.b64decode(data["userdata"]).decode() == spec.seed.user_data
    assert base64.b64decode(data["networkdata"]).decode() == spec.seed.network_config
    assert yaml.safe_load(spec.seed.user_data)["hostname"] == "desk1"


def test_virtual_machine_carries_cpu_memory_run_strategy_and_the_seeds_mac():
    vm = model.virtual_machine(desktop(cpus=4, memory_mib=6144, run_strategy="Halted"))
    domain = vm["spec"]["template"]["spec"]["domain"]
    assert vm["spec"]["runStrategy"] == "Halted"
    assert domain["cpu"] == {"cores": 4}
    assert domain["memory"] == {"guest": "6144Mi"}
    assert domain["resources"]["requests"]["memory"] == "6144Mi"
    assert domain["devices"]["interfaces"][0]["macAddress"] == MAC
    volumes = {v["name"]: v for v in vm["spec"]["template"]["spec"]["volumes"]}
    assert volumes["system"]["dataVolume"] == {"name": "desk1-system"}
    assert volumes["cloudinit"]["cloudInitNoCloud"]["secretRef"] == {"name": "desk1-cloudinit"}


def test_system_volume_imports_the_image_or_clones_a_data_source():
    imported = model.system_volume(desktop(disk_gib=30, storage_class="fast"))["spec"]
    assert imported["source"] == {"http": {"url": IMAGE_URL}}
    assert imported["storage"] == {"resources": {"requests": {"storage": "30Gi"}}, "storageClassName": "fast"}
    cloned = model.system_volume(desktop(image_url=None, data_source=model.DataSourceRef("images", "debian-13")))
    assert cloned["spec"]["sourceRef"] == {"kind": "DataSource", "namespace": "images", "name": "debian-13"}
    assert "source" not in cloned["spec"]


@pytest.mark.parametrize("sources", [{"image_url": None}, {"data_source": model.DataSourceRef("images", "d")}])
def test_system_volume_needs_exactly_one_source(sources):
    with pytest.raises(ValueError, match="exactly one of image_url and data_source"):
        model.system_volume(desktop(**sources))


def test_unknown_run_strategy_is_refused():
    with pytest.raises(ValueError, match="run_strategy\n  Input should be 'Always', 'Halted', 'Manual', "
                                         "'RerunOnFailure' or 'Once'"):
        model.virtual_machine(desktop(run_strategy="Sometimes"))
