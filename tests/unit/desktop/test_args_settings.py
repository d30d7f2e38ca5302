"""DesktopArgs holds a DesktopSettings: a setting given as a keyword goes into that model, checked by it."""
import pytest
from pydantic import ValidationError

from components.desktop.args import DesktopArgs
from components.errors import InputError
from components.desktop.settings import DesktopSettings, domain_inputs
from components.desktop.users import DesktopUser
from components.desktop.wording import from_error


class _Net:
    class args:
        cidr = "10.0.0.0/24"
        gateway = "10.0.0.1"
        dhcp = True
    host = type("H", (), {"uri": "u", "name": "h"})()


_POOL = type("P", (), {"host": _Net.host})()


def _args(**keywords) -> DesktopArgs:
    return DesktopArgs(image=None, pool=_POOL, network=_Net(), **keywords)


def test_keywords_and_a_settings_model_are_the_same_settings():
    by_keyword = _args(memory="2GiB", vcpus=2, cpu_mode="host-model", display_password_valid_for="30d")
    by_model = _args(settings=DesktopSettings(memory="2GiB", vcpus=2, cpu={"mode": "host-model"},
                                              display={"password_valid_for": "30d"}))
    assert by_keyword.settings == by_model.settings
    assert by_keyword.memory == 2 * 1024**3 and by_keyword.memory_mib == 2048
    assert by_keyword.cpu_mode == "host-model" and by_keyword.display_password_valid_for_s == 30 * 86400
    by_keyword.check("d"), by_model.check("d")      # (no problem: neither raises)


def test_a_keyword_is_laid_over_the_settings_it_is_given_with():
    args = _args(settings=DesktopSettings(memory="2GiB", vcpus=2), vcpus=3)
    assert (args.memory, args.vcpus) == (2 * 1024**3, 3)


def test_a_wrong_keyword_is_reported_as_written_and_the_declared_default_stays():
    args = _args(cpu_pinning=["x"], vcpus=0, memory="2GiB")
    with pytest.raises(InputError) as err:
        args.check("d")
    assert [field for field, _ in err.value.problems] == ["d.vcpus", "d.cpu_pinning[0]"]
    assert (args.vcpus, args.memory) == (1, 2 * 1024**3)


def test_an_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="'memroy'"):
        _args(memroy="2GiB")
    with pytest.raises(TypeError, match="'cpu_speed'"):
        _args(cpu_speed=3)


def test_the_domain_inputs_are_the_settings_in_bytes_and_firmware_off_is_unset():
    inputs = domain_inputs(DesktopSettings(memory="1536MiB", secure_boot=True, cpu_topology={
        "sockets": 1, "cores": 2, "threads": 1}, max_vcpus=2, idle={"after": "45m"}, apply_when="idle"))
    assert inputs == {"memory": 1536 * 1024**2, "vcpus": 1, "max_vcpus": 2,
                      "cpu_topology": {"sockets": 1, "cores": 2, "threads": 1}, "machine": None, "running": True,
                      "autostart": False, "secure_boot": True, "tpm": None,
                      "idle": {"after": 2700, "action": "suspend", "warn": 300}, "apply_when": "idle",
                      "schedule": None, "maintenance_window": None}


def test_the_vcpu_rules_are_the_stack_files_and_name_the_keyword_as_written():
    args = _args(vcpus=2, max_vcpus=1, cpu_mode="host-model", cpu_model="Haswell-noTSX", cpu_pinning=[1, 2, 3])
    with pytest.raises(InputError) as err:
        args.check("d")
    assert err.value.problems == [
        ("d.max_vcpus", "must be >= vcpus (2)"),
        ("d.cpu_model", "a named model is mode custom; mode host-model takes no model"),
        ("d.cpu_pinning", "pins 3 vCPUs, but the desktop has at most 2 (max_vcpus, else vcpus)")]
    topology = _args(settings=DesktopSettings(vcpus=2, cpu_topology={"sockets": 1, "cores": 1, "threads": 1}))
    with pytest.raises(InputError) as err:
        topology.check("d")
    assert err.value.problems == [
        ("d.cpu_topology", "sockets x cores x threads is 1, but the vCPU maximum (max_vcpus, else vcpus) is 2")]


def test_validating_raises_every_problem_between_settings_and_references_at_its_place():
    """The stack loader's way in: DesktopArgs.model_validate, whose error places the loader puts under the
    desktop's own (users[3].max_vcpus)."""
    far = type("N", (), {"args": _Net.args, "host": type("H", (), {"uri": "far", "name": "far"})()})()
    with pytest.raises(ValidationError) as err:
        DesktopArgs.model_validate({"image": None, "pool": _POOL, "network": _Net(), "extra_networks": [far],
                                    "settings": DesktopSettings(vcpus=2, max_vcpus=1), "address": "10.0.0.1"})
    assert from_error(err.value, DesktopArgs) == [
        (("max_vcpus",), "must be >= vcpus (2)"),
        (("extra_networks", 0), "is on host 'far', but the pool is on 'h'"),
        (("address",), "10.0.0.1 is not a usable host address of 10.0.0.0/24 (10.0.0.1 is its gateway)")]


def test_the_users_are_the_one_account_model_and_checked_by_it():
    args = _args(users=[DesktopUser("ada", groups=["audio", "audio"]), {"name": "root"}])
    with pytest.raises(InputError) as err:
        args.check("d")
    assert err.value.problems == [("d.users[1].name", "'root' is not a usable login name: it is a system account")]
    assert [u.name for u in args.users] == ["desk"]       # (the declared default stays)
    ada = _args(users=[DesktopUser("ada", groups=["audio", "audio"], email="ada@example.org")])
    assert (ada.users[0].groups, ada.users[0].email) == (["audio"], "ada@example.org")
    with pytest.raises(InputError) as err:
        _args(users=[]).check("d")
    assert err.value.problems == [("d.users", "declare at least one user")]


def test_validating_raises_a_settings_own_problem_with_those_between_the_others():
    with pytest.raises(ValidationError) as err:
        DesktopArgs.model_validate({"image": None, "pool": _POOL, "network": _Net(), "users": [{"name": "root"}],
                                    "settings": DesktopSettings(vcpus=2, max_vcpus=1), "address": "10.0.0.1"})
    assert [loc for loc, _ in from_error(err.value, DesktopArgs)] == [("users", 0, "name"), ("max_vcpus",),
                                                                      ("address",)]


def test_a_users_password_is_not_in_its_repr():
    assert "hunter2" not in repr(DesktopUser("ada", password="hunter2"))
    assert "hunter2" not in repr(_args(users=[DesktopUser("ada", password="hunter2")]))
