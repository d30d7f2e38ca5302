"""Tier 1: a host of kind kubevirt in the stack file: what it takes, what its desktops may ask for, and
the problems of each at their stack paths, all at once (no cluster is asked: that is the live tier's)."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from components.cloudinit import SeedDocuments
from components.config.resolve import parse
from components.config.stackfile import StackFile
from components.errors import InputError
from components.kubevirt import stack as kubevirt_stack

NO_SEED = SeedDocuments("", "", "")      # (what the seed holds is not these tests' subject)
MAC = "52:54:00:00:00:01"
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "kubevirt" / "Pulumi.kubevirt.yaml"


def example() -> dict:
    config = yaml.safe_load(EXAMPLE.read_text())["config"]
    return {key.split(":", 1)[1]: value for key, value in config.items()}


def problems(raw: dict) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as caught:
        parse(raw, stack="kv")
    return caught.value.problems


def test_the_example_resolves_its_users_to_desktops_on_the_cluster():
    config = parse(example(), stack="kv")
    rest, desktops, clusters = kubevirt_stack.split(config)
    assert rest.hosts == {} and rest.desktops == {} and rest.images == {}   # nothing for a libvirt host to make
    assert sorted(desktops) == ["ada", "bob"] and list(clusters) == ["cluster"]
    bob = kubevirt_stack.desktop_of(desktops["bob"], clusters["cluster"], "kv", seed=NO_SEED, mac="52:54:00:00:00:01")
    assert (bob.name, bob.namespace, bob.memory_mib, bob.cpus, bob.disk_gib, bob.home_gib) == \
        ("kv-bob", "vdesk", 3072, 2, 20, 5)
    assert (bob.storage_class, bob.run_strategy) == ("standard", "Always")
    assert bob.image_url.startswith("https://cloud.debian.org/")


def test_a_kubevirt_host_as_written_carries_no_libvirt_uri_and_a_libvirt_host_its_default():
    """What reads the stack file (exposure checks, policy) sees the cluster, not the default `embedded`."""
    written = StackFile.model_validate({**example(), "hosts": {**example()["hosts"], "local": {}}})
    assert written.hosts["cluster"].uri is None and "uri" not in written.hosts["cluster"].model_fields_set
    assert written.hosts["local"].uri == "embedded"
    config = parse(example(), stack="kv")
    assert config.hosts["cluster"].uri == "kubevirt://current-context/vdesk"


def _with(change) -> dict:
    raw = copy.deepcopy(example())
    change(raw)
    return raw


CASES = [
    ("libvirt settings on a kubevirt host",
     lambda r: r["hosts"]["cluster"].update(uri="qemu:///system", accelerator="kvm"),
     [("hosts.cluster.accelerator", "is a libvirt host's setting (this host is kind kubevirt)"),
      ("hosts.cluster.uri", "is a libvirt host's setting (this host is kind kubevirt)")]),
    ("kubevirt settings on a libvirt host",
     lambda r: r["hosts"].update(local={"uri": "embedded", "namespace": "desks"}),
     [("hosts.local.namespace", "is a kubevirt host's setting (this host is kind libvirt: set kind: kubevirt)")]),
    ("no kubeconfig or namespace",
     lambda r: [r["hosts"]["cluster"].pop(k) for k in ("kubeconfig", "namespace")],
     [("hosts.cluster.kubeconfig", "is required on a kubevirt host (the kubeconfig file that reaches the cluster)"),
      ("hosts.cluster.namespace", "is required on a kubevirt host (the namespace its desktops go in)")]),
    ("an image the host has no source for, a pool on the cluster",
     lambda r: (r["images"].update(other={"golden": "debian12"}), r["profiles"]["standard"].update(image="other"),
                r.update(pools={"main": {"host": "cluster"}})),
     [("pools.main.host", "'cluster' is a kubevirt host: pools are a libvirt host's"),
      ("profiles.standard.image", "host 'cluster' has no source for image 'other': declare "
                                  "hosts.cluster.images.other (url or data_source)")]),
    ("both image sources, a bad storage class name",
     lambda r: r["hosts"]["cluster"].update(storage_class="Fast_SSD", images={"debian": {
         "url": "https://example.org/d.qcow2", "data_source": "golden/debian"}}),
     [("hosts.cluster.storage_class", "'Fast_SSD' is not a storage class name (lowercase letters, digits, '-' and '.')"),
      ("hosts.cluster.images.debian", "give url (an image CDI imports) or data_source (a DataSource it clones), one "
                                      "of the two")]),
    ("a desktop placed across a kubevirt host and a libvirt one",
     lambda r: (r["hosts"].update(local={"uri": "embedded"}), r["profiles"]["standard"].pop("host"),
                r["profiles"]["standard"].update(hosts=["cluster", "local"])),
     [("profiles.standard.pool", "is required (the name of one of the pools)"),
      ("profiles.standard.network", "is required (the name of one of the networks)"),
      ("profiles.standard.hosts", "'cluster' is a kubevirt host: pin the desktop to it (host: cluster); the "
                                  "cluster's scheduler places it on a node")]),
]


def test_a_kubeconfig_outside_the_administrators_roots_is_refused(tmp_path, monkeypatch):
    (tmp_path / "policy.yaml").write_text(f"kubeconfigs: [{tmp_path}]\nkubevirt_namespaces: [vdesk]\n")
    monkeypatch.setenv("VDESK_POLICY", str(tmp_path / "policy.yaml"))
    allowed = _with(lambda r: r["hosts"]["cluster"].update(kubeconfig=str(tmp_path / "kubeconfig")))
    parse(allowed, stack="kv")
    refused = problems(_with(lambda r: r["hosts"]["cluster"].update(kubeconfig="/root/.kube/config")))
    assert refused == [("hosts.cluster.kubeconfig", f"'/root/.kube/config' is outside the kubeconfigs roots this "
                                                    f"machine's administrator allows ({tmp_path}; set in "
                                                    f"{tmp_path / 'policy.yaml'})")]


def test_a_namespace_is_one_the_administrators_policy_allows_and_none_without_a_policy_file(tmp_path, monkeypatch):
    monkeypatch.setenv("VDESK_POLICY", str(tmp_path / "absent.yaml"))
    assert problems(example()) == [("hosts.cluster.namespace", "puts desktops in a cluster's namespace: 'vdesk' is not "
                                                               "allowed on this machine: its administrator may add it "
                                                               "to `kubevirt_namespaces` in built-in defaults (allowed "
                                                               "now: none)")]
    policy = tmp_path / "policy.yaml"
    policy.write_text("kubevirt_namespaces: [team-*]\n")
    monkeypatch.setenv("VDESK_POLICY", str(policy))
    assert problems(example()) == [("hosts.cluster.namespace", "puts desktops in a cluster's namespace: 'vdesk' is not "
                                                               "allowed on this machine: its administrator may add it "
                                                               f"to `kubevirt_namespaces` in {policy} (allowed now: "
                                                               "team-*)")]
    config = parse(_with(lambda r: r["hosts"]["cluster"].update(namespace="team-a")), stack="kv")
    assert config.hosts["cluster"].kubevirt.namespace == "team-a"


@pytest.mark.parametrize("change,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_problems_name_their_stack_path_all_at_once(change, expected):
    found = problems(_with(change))
    for problem in expected:
        assert problem in found, found


def test_a_setting_a_virtual_machine_cannot_carry_is_reported_where_it_is_written():
    found = problems(_with(lambda r: (r["profiles"]["standard"].update(tpm=True, checks=[{"service": "ssh"}]),
                                      r["users"][1].update(gpus=[{"pci": "0000:01:00.0"}]))))
    assert ("profiles.standard.tpm", "is not available on a kubevirt host (cluster)") in found
    assert ("profiles.standard.checks", "is not available on a kubevirt host (cluster): no readiness gate runs for "
                                        "a desktop there yet (its SSH is reached only from inside the cluster, "
                                        "through its <name>-ssh Service), and a declared check that never runs must "
                                        "not look passed") in found
    assert ("users[1].gpus", "is not available on a kubevirt host (cluster)") in found


def test_a_cluster_that_cannot_be_reached_is_one_problem_at_its_kubeconfig(tmp_path):
    config = parse(example(), stack="kv")
    _rest, desktops, clusters = kubevirt_stack.split(config)
    unreachable = {"cluster": dataclasses.replace(clusters["cluster"], kubevirt=dataclasses.replace(
        clusters["cluster"].kubevirt, kubeconfig=str(tmp_path / "no-such-kubeconfig")))}
    found = kubevirt_stack.preview_problems(desktops, unreachable, "kv")
    assert [path for path, _ in found] == ["hosts.cluster.kubeconfig"], found
    assert found[0][1].startswith("cannot reach the cluster: ")


def test_a_stack_with_libvirt_and_kubevirt_hosts_keeps_each_desktop_on_its_own_kind():
    dev = {key.split(":", 1)[1]: value for key, value in
           yaml.safe_load((EXAMPLE.parents[2] / "stacks" / "Pulumi.dev.yaml").read_text())["config"].items()}
    raw = copy.deepcopy(dev)
    kube = example()
    raw["hosts"]["cluster"] = kube["hosts"]["cluster"]
    raw["images"]["debian"] = kube["images"]["debian"]
    raw["profiles"]["cluster"] = kube["profiles"]["standard"]
    raw["users"] = [*raw.get("users", []), {"name": "zoe", "profile": "cluster"}]
    raw["desktops"] = {**raw.get("desktops", {}), "spare": {"host": "cluster", "image": "debian"}}
    secrets = {key: True for key, value in raw.items() if isinstance(value, dict) and "secure" in value}
    config = parse({k: v for k, v in raw.items() if k not in secrets}, stack="dev", config_keys=secrets)
    rest, desktops, clusters = kubevirt_stack.split(config)
    assert sorted(desktops) == ["spare", "zoe"] and list(clusters) == ["cluster"]
    assert "cluster" not in rest.hosts and "debian" not in rest.images
    assert set(rest.desktops) == set(config.desktops) - {"spare", "zoe"} and rest.desktops
    assert all(d.pool is not None and d.network is not None for d in rest.desktops.values())


@pytest.mark.parametrize("source,expected", [("golden/debian13", ("golden", "debian13")),
                                             ("debian13", ("vdesk", "debian13"))])
def test_a_data_source_is_cloned_from_its_namespace_or_the_hosts(source, expected):
    raw = _with(lambda r: r["hosts"]["cluster"].update(images={"debian": {"data_source": source}}))
    _rest, desktops, clusters = kubevirt_stack.split(parse(raw, stack="kv"))
    ada = kubevirt_stack.desktop_of(desktops["ada"], clusters["cluster"], "kv", seed=NO_SEED, mac="52:54:00:00:00:01")
    assert (ada.image_url, ada.data_source.namespace, ada.data_source.name) == (None, *expected)


def test_running_false_is_the_halted_run_strategy():
    raw = _with(lambda r: r["users"][1].update(running=False))
    _rest, desktops, clusters = kubevirt_stack.split(parse(raw, stack="kv"))
    strategies = {name: kubevirt_stack.desktop_of(d, clusters["cluster"], "kv", NO_SEED, MAC).run_strategy
                  for name, d in desktops.items()}
    assert strategies == {"ada": "Always", "bob": "Halted"}
