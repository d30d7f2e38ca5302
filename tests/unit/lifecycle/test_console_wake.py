"""Opening a sleeping desktop's console wakes it, on libvirt's test driver: its managed save is restored, and
only for its own stack's token; a desktop stopped on purpose is refused and stays off."""
import libvirt
import pytest

from components import xmlmodel
from components.console import tokens
from components.console.gateway import ConsoleTokens
from components.console.tokens import Refused
from components.lifecycle import actions, quotas
from components.portal import accounts

URI = "test:///default"
NAME = "team-a-sleepy"


@pytest.fixture
def desktop(conn):
    dom = conn.defineXML(xmlmodel.Domain(
        type="test", name=NAME, memory_kib=65536, vcpus=1, os_type="hvm", arch="x86_64",
        owner=xmlmodel.Owner(stack="team-a", resource=NAME),
        graphics=[xmlmodel.Graphics(type="vnc", listen_type="socket", listen_socket="/run/sleepy.sock")]).to_xml())
    dom.create()
    yield dom
    if dom.isActive():
        dom.destroy()
    dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)


def _open(tmp_path, stack):
    key = tokens.signing_key(tmp_path, create=True)
    plugin = ConsoleTokens(str(tmp_path), URI, None)
    return plugin.display_of(plugin.grant(tokens.mint(key, NAME, 60, stack=stack)[0], NAME))


def test_opening_an_asleep_desktops_console_restores_it(tmp_path, desktop):
    actions.suspend(desktop)
    assert actions.runtime_state(desktop) == "asleep"
    assert _open(tmp_path, "team-a") == ("unix_socket", "/run/sleepy.sock", None)
    assert desktop.isActive() and not desktop.hasManagedSaveImage(0)


def test_one_shut_down_for_idleness_is_started_and_its_note_cleared(tmp_path, desktop):
    actions.shutdown(desktop, timeout_s=5)
    assert actions.runtime_state(desktop) == "idle-off"
    _open(tmp_path, "team-a")
    assert desktop.isActive() and not actions.idle_off_marked(desktop)


def test_another_stacks_token_wakes_nothing(tmp_path, desktop):
    actions.suspend(desktop)
    with pytest.raises(Refused, match="a token of another stack"):
        _open(tmp_path, "team-b")
    assert actions.asleep(desktop)


def test_a_desktop_stopped_on_purpose_is_refused_and_stays_off(tmp_path, desktop):
    desktop.destroy()
    with pytest.raises(Refused, match="not running"):
        _open(tmp_path, "team-a")
    assert not desktop.isActive()


def test_a_wake_beyond_a_quota_is_refused_saying_which(tmp_path, desktop):
    actions.suspend(desktop)
    console_dir = tmp_path / "console"
    quotas.record(quotas.lifecycle_dir_of(console_dir), "team-a", {"users": {"ann": {"memory": 32 * 1024**2}}})
    accounts.publish(accounts.portal_dir_of(console_dir), "team-a", NAME, ["ann"], {})
    with pytest.raises(Refused, match=r"ann's quota is 32 MiB of memory .* and team-a-sleepy needs 64 MiB"):
        _open(console_dir, "team-a")
    assert actions.asleep(desktop)
