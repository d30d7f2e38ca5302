"""Display passwords: generated once, rotated by a trigger, set on every display of the domain."""
import libvirt
import pytest

from components.desktop.args import DesktopArgs
from components.errors import InputError
from components.resources.display import PASSWORD_LENGTH, DisplayPasswordProvider, graphics_devices
from components.resources.domain import DomainProvider, desired_model


def test_a_password_is_generated_once_and_a_validity_counts_from_then():
    dp = DisplayPasswordProvider()
    created = dp.create(dp.check({}, {"rotation": "2026-12", "valid_for_s": 3600}).inputs).outs
    assert len(created["password"]) == PASSWORD_LENGTH and created["password"].isalnum()
    assert created["valid_to"] > created["generated_at"]
    longer = dp.update("id", created, {"rotation": "2026-12", "valid_for_s": 7200}).outs
    assert longer["password"] == created["password"] and longer["valid_to"] > created["valid_to"]
    assert dp.update("id", created, {"rotation": "2026-12", "valid_for_s": None}).outs["valid_to"] == ""


def test_a_new_rotation_value_replaces_the_password():
    dp = DisplayPasswordProvider()
    assert dp.diff("id", {"rotation": "2026-11"}, {"rotation": "2026-12"}).replaces == ["rotation"]
    assert dp.diff("id", {"rotation": "", "valid_for_s": 1}, {"rotation": "", "valid_for_s": 2}).replaces == []
    passwords = {dp.create({"rotation": "", "valid_for_s": None}).outs["password"] for _ in range(20)}
    assert len(passwords) == 20


def test_every_display_gets_the_password_and_listens_where_declared():
    socket = graphics_devices({"graphics_socket": "/d/vm.vnc", "spice": True, "display_password": "pw",
                               "display_password_valid_to": "2030-01-01T00:00:00"})
    assert [(g.type, g.listen_socket, g.passwd, g.passwd_valid_to) for g in socket] == [
        ("vnc", "/d/vm.vnc", "pw", "2030-01-01T00:00:00"), ("spice", "/d/vm.spice", "pw", "2030-01-01T00:00:00")]
    address = graphics_devices({"graphics_listen": "0.0.0.0", "display_password": "pw"})
    assert [(g.type, g.listen_address, g.autoport) for g in address] == [("vnc", "0.0.0.0", True)]
    assert graphics_devices({})[0].listen_address == "127.0.0.1"


def test_the_password_is_in_secure_xml_only(conn):
    props = DomainProvider().check({}, {"host_uri": "test:///default", "name": "pw-vm", "domain_type": "test",
                                        "memory_mib": 256, "vcpus": 1, "kernel": "/k", "spice": True,
                                        "display_password": "s3cretpw"}).inputs
    dom = conn.defineXML(desired_model(props).to_xml())
    try:
        assert "s3cretpw" not in dom.XMLDesc(0) + dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        assert dom.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE).count("passwd='s3cretpw'") == 2
    finally:
        dom.undefine()


def test_check_refuses_what_a_display_cannot_take():
    dp = DomainProvider()
    base = {"host_uri": "test:///default", "name": "pw-vm", "memory_mib": 256, "vcpus": 1, "kernel": "/k"}
    failures = dp.check({}, dict(base, display_password="123456789", graphics_listen="localhost",
                                 display_password_valid_to="tomorrow")).failures
    assert sorted(f.property for f in failures) == ["display_password", "display_password_valid_to",
                                                    "graphics_listen"]
    alone = dp.check({}, dict(base, display_password_valid_to="2030-01-01T00:00:00")).failures
    assert [f.reason for f in alone] == ["display_password_valid_to needs a display_password"]


def test_desktop_args_name_a_bad_validity(tmp_path):
    class _Net:
        class args:
            cidr = "10.0.0.0/24"
            gateway = "10.0.0.1"
            dhcp = True
        host = type("H", (), {"uri": "u", "name": "h"})()

    pool = type("P", (), {"host": _Net.host})()
    args = DesktopArgs(image=None, pool=pool, network=_Net(), display_password_valid_for="3 weeks")
    with pytest.raises(InputError) as err:
        args.check("alice")
    assert [f for f, _ in err.value.problems] == ["alice.display_password_valid_for"]
    assert DesktopArgs(image=None, pool=pool, network=_Net(), display_password_valid_for="30d"
                       ).display_password_valid_for_s == 30 * 86400
