"""Tier 1: the Kubernetes object provider's diff and drift projection (no server: the live tier has one)."""
from __future__ import annotations

import pickle

import pytest

from components.kubevirt import model
from components.kubevirt.provider import KubeObjectProvider, object_id, projected
from tests.support.kubevirt import desktop


def _props(manifest, kubeconfig="/k/config"):
    return {"kubeconfig": kubeconfig, "context": "", "manifest": manifest}


def test_projection_keeps_declared_fields_and_drops_server_defaults():
    live = {"metadata": {"name": "a", "uid": "u", "labels": {"x": "1"}},
            "spec": {"list": [{"a": 1, "default": True}], "other": 3}, "status": {"ready": False}}
    desired = {"metadata": {"name": "a", "labels": {"x": "2"}}, "spec": {"list": [{"a": 1}]}}
    assert projected(live, desired) == {"metadata": {"name": "a", "labels": {"x": "1"}},
                                        "spec": {"list": [{"a": 1}]}}


def test_memory_change_updates_in_place():
    old, new = (model.virtual_machine(desktop(memory_mib=m)) for m in (2048, 4096))
    diff = KubeObjectProvider().diff("id", _props(old), _props(new))
    assert diff.changes and diff.replaces == []


@pytest.mark.parametrize("change", [{"name": "desk2"}, {"namespace": "team-b"}])
def test_identity_change_replaces(change):
    old = model.virtual_machine(desktop())
    new = model.virtual_machine(desktop(**change))
    diff = KubeObjectProvider().diff("id", _props(old), _props(new))
    assert diff.replaces == ["manifest"] and diff.delete_before_replace


def test_other_cluster_replaces_and_no_change_is_no_change():
    manifest = model.seed_secret(desktop())
    provider = KubeObjectProvider()
    assert provider.diff("id", _props(manifest), _props(manifest, "/other")).replaces == ["kubeconfig"]
    assert not provider.diff("id", _props(manifest), _props(manifest)).changes


def test_manifest_without_kind_or_name_fails_check_before_any_server_is_asked():
    failures = KubeObjectProvider().check({}, _props({"apiVersion": "v1", "metadata": {}})).failures
    assert [(f.property, f.reason) for f in failures] == [      # (every part missing, at once)
        ("manifest", "manifest: kind: Field required; metadata.name: Field required")]


def test_provider_pickles_and_ids_name_the_object():
    assert isinstance(pickle.loads(pickle.dumps(KubeObjectProvider())), KubeObjectProvider)
    assert object_id(model.virtual_machine(desktop())) == "kubevirt.io/v1/VirtualMachine/team-a/desk1"


def test_unreadable_kubeconfig_fails_check_naming_it(tmp_path):
    missing = str(tmp_path / "no-such-kubeconfig")
    failures = KubeObjectProvider().check({}, _props(model.seed_secret(desktop()), missing)).failures
    assert [f.property for f in failures] == ["kubeconfig"]
    assert missing in failures[0].reason
