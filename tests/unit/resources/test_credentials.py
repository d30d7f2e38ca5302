"""DesktopCredentials: a desktop's keys and display password made once, each again only on its own trigger;
and a state of before (three resources) moved into one, values and dependencies as they were."""
from __future__ import annotations

import copy

from components.guest.keys import fingerprint_sha256
from components.resources.credentials import DesktopCredentialsProvider, merge_legacy
from components.resources.display import PASSWORD_LENGTH, DisplayPasswordProvider
from components.resources.keys import KeyPairProvider
from pulumi.dynamic.dynamic import serialize_provider

INPUTS = {"login_comment": "vdesk login s-d00", "host_comment": "vdesk host s-d00",
          "display_password_rotation": "", "display_password_valid_for_s": 3600}


def _created(**changes) -> dict:
    p = DesktopCredentialsProvider()
    checked = p.check({}, {**INPUTS, **changes})
    assert checked.failures == []
    return p.create(checked.inputs).outs


def test_two_keys_and_a_password_are_made_once():
    made = _created()
    assert made["login_public_key"].endswith(" vdesk login s-d00") and "PRIVATE KEY" in made["login_private_key"]
    assert made["host_public_key"].endswith(" vdesk host s-d00") and "PRIVATE KEY" in made["host_private_key"]
    assert fingerprint_sha256(made["login_public_key"]) != fingerprint_sha256(made["host_public_key"])
    assert len(made["display_password"]) == PASSWORD_LENGTH and made["display_password"].isalnum()
    assert made["display_password_valid_to"] > made["display_password_generated_at"]
    p = DesktopCredentialsProvider()
    assert not p.diff("id", made, dict(INPUTS)).changes, "a no-op up changes nothing"
    same = p.update("id", made, dict(INPUTS)).outs
    assert same == made


def test_each_part_is_made_again_only_on_its_own_trigger():
    made = _created()
    p = DesktopCredentialsProvider()
    diff = p.diff("id", made, {**INPUTS, "display_password_rotation": "2026-12"})
    assert diff.changes and diff.replaces == [], "an update in place: the keys are kept"
    rotated = p.update("id", made, {**INPUTS, "display_password_rotation": "2026-12"}).outs
    assert rotated["display_password"] != made["display_password"]
    assert (rotated["login_private_key"], rotated["host_private_key"]) == (made["login_private_key"],
                                                                          made["host_private_key"])
    longer = p.update("id", made, {**INPUTS, "display_password_valid_for_s": 7200}).outs
    assert longer["display_password"] == made["display_password"]
    assert longer["display_password_valid_to"] > made["display_password_valid_to"]
    assert p.update("id", made, {**INPUTS, "display_password_valid_for_s": None}).outs[
        "display_password_valid_to"] == ""
    renamed = p.update("id", made, {**INPUTS, "login_comment": "vdesk login s-d01"}).outs
    assert renamed["login_private_key"] != made["login_private_key"]
    assert renamed["host_private_key"] == made["host_private_key"]
    assert renamed["display_password"] == made["display_password"]


def test_the_display_password_settings_are_the_display_passwords_own_declarations():
    p = DesktopCredentialsProvider()
    assert p.PROPS["display_password_valid_for_s"] is DisplayPasswordProvider.PROPS["valid_for_s"]
    failures = p.check({}, {**INPUTS, "display_password_valid_for_s": 0}).failures
    assert [f.property for f in failures] == ["display_password_valid_for_s"]


def test_a_state_not_moved_over_is_refused_not_given_new_keys():
    # aliased to the login key of before, the engine hands check that resource's inputs as the olds
    olds = {"comment": "vdesk login s-d00", "algorithm": "ed25519"}
    failures = DesktopCredentialsProvider().check(olds, dict(INPUTS)).failures
    assert [f.property for f in failures] == ["login_comment"]
    assert "components.cli.migrate" in failures[0].reason


# -- a state of before ---------------------------------------------------------------------------------------

STACK, PROJECT = "s", "vdesk"
PARENT = f"urn:pulumi:{STACK}::{PROJECT}::vdesk:index:Desktop::d00"
PROVIDER = f"urn:pulumi:{STACK}::{PROJECT}::pulumi:providers:pulumi-python::default::1234"


def _urn(name: str, parent_type: str = "vdesk:index:Desktop") -> str:
    return f"urn:pulumi:{STACK}::{PROJECT}::{parent_type}$pulumi-python:dynamic:Resource::{name}"


def _secret(ciphertext: str) -> dict:
    return {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "ciphertext": ciphertext}


def _dynamic(name: str, provider, inputs: dict, outputs: dict, *, parent=PARENT, deps=(), prop_deps=None) -> dict:
    blob = serialize_provider(provider)
    return {"urn": _urn(name), "custom": True, "id": f"id-{name}", "type": "pulumi-python:dynamic:Resource",
            "inputs": {"__provider": blob, **inputs}, "outputs": {"__provider": blob, **inputs, **outputs},
            "parent": parent, "provider": PROVIDER, "dependencies": list(deps),
            "propertyDependencies": prop_deps or {}}


def deployment_of_before() -> dict:
    login = _dynamic("d00-login-key", KeyPairProvider(), {"comment": "vdesk login s-d00", "algorithm": "ed25519"},
                     {"public_key": "ssh-ed25519 LOGIN", "private_key": _secret("c-login"), "fingerprint": "f1"})
    host = _dynamic("d00-host-key", KeyPairProvider(), {"comment": "vdesk host s-d00", "algorithm": "ed25519"},
                    {"public_key": "ssh-ed25519 HOST", "private_key": _secret("c-host"), "fingerprint": "f2"})
    display = _dynamic("d00-display-password", DisplayPasswordProvider(), {"rotation": "", "valid_for_s": 3600},
                       {"password": _secret("c-pw"), "generated_at": "2026-12-01T00:00:00",
                        "valid_to": "2026-12-01T01:00:00"})
    seed = _dynamic("d00-seed", KeyPairProvider(), {}, {}, deps=[login["urn"], host["urn"], "urn:other"],
                    prop_deps={"user_data": [login["urn"], host["urn"]], "pool": ["urn:other"]})
    vm = _dynamic("d00-vm", KeyPairProvider(), {}, {}, deps=[seed["urn"], display["urn"]],
                  prop_deps={"display_password": [display["urn"]], "disks": [seed["urn"]]})
    # a kubevirt desktop's keys have no Desktop parent: they stay SshKeyPairs
    kube = _dynamic("k00-login-key", KeyPairProvider(), {"comment": "x", "algorithm": "ed25519"}, {},
                    parent=f"urn:pulumi:{STACK}::{PROJECT}::pulumi:pulumi:Stack::vdesk-s")
    stack = {"urn": f"urn:pulumi:{STACK}::{PROJECT}::pulumi:pulumi:Stack::vdesk-s", "custom": False,
             "type": "pulumi:pulumi:Stack"}
    component = {"urn": PARENT, "custom": False, "type": "vdesk:index:Desktop", "parent": stack["urn"]}
    return {"manifest": {}, "resources": [stack, component, login, host, display, seed, vm, kube]}


def test_the_three_resources_of_before_become_one_with_the_same_values():
    deployment = deployment_of_before()
    assert merge_legacy(deployment) == ["d00"]
    names = [r["urn"].rsplit("::", 1)[1] for r in deployment["resources"]]
    assert names == ["vdesk-s", "d00", "d00-credentials", "d00-seed", "d00-vm", "k00-login-key"]
    held = deployment["resources"][2]
    assert held["urn"] == _urn("d00-credentials") and held["parent"] == PARENT and held["provider"] == PROVIDER
    assert held["inputs"] == {"__provider": serialize_provider(DesktopCredentialsProvider()), **{
        k: v for k, v in INPUTS.items()} | {"login_comment": "vdesk login s-d00", "host_comment": "vdesk host s-d00"}}
    outs = held["outputs"]
    assert (outs["login_public_key"], outs["login_private_key"]) == ("ssh-ed25519 LOGIN", _secret("c-login"))
    assert (outs["host_public_key"], outs["host_private_key"]) == ("ssh-ed25519 HOST", _secret("c-host"))
    assert (outs["display_password"], outs["display_password_generated_at"], outs["display_password_valid_to"]) \
        == (_secret("c-pw"), "2026-12-01T00:00:00", "2026-12-01T01:00:00")
    assert set(held["additionalSecretOutputs"]) == {"login_private_key", "host_private_key", "display_password"}
    # what the program sends today diffs as no change
    assert not DesktopCredentialsProvider().diff("id", outs, dict(INPUTS)).changes


def test_what_depended_on_them_depends_on_the_one():
    deployment = deployment_of_before()
    merge_legacy(deployment)
    by_name = {r["urn"].rsplit("::", 1)[1]: r for r in deployment["resources"]}
    new = _urn("d00-credentials")
    assert by_name["d00-seed"]["dependencies"] == [new, "urn:other"]
    assert by_name["d00-seed"]["propertyDependencies"] == {"user_data": [new], "pool": ["urn:other"]}
    assert by_name["d00-vm"]["dependencies"] == [_urn("d00-seed"), new]
    assert by_name["d00-vm"]["propertyDependencies"]["display_password"] == [new]


def test_a_state_of_now_or_a_part_missing_is_left_as_it_is():
    deployment = deployment_of_before()
    merge_legacy(deployment)
    again = copy.deepcopy(deployment)
    assert merge_legacy(again) == [] and again == deployment
    partial = deployment_of_before()
    partial["resources"] = [r for r in partial["resources"] if not r["urn"].endswith("::d00-display-password")]
    untouched = copy.deepcopy(partial)
    assert merge_legacy(partial) == [] and partial == untouched
