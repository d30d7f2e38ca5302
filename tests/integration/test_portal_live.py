"""The portal as a service over the project's own libvirtd: a desktop defined (never started) by a stack
is listed for its person, another stack's is not, and the portal stops with nothing left."""
from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

import libvirt
import pytest

from components.cloudinit.passwords import MIN_ROUNDS, hash_password
from components.portal import accounts, service
from components.portal.settings import PortalSettings
from tests.support.portal_world import define

pytestmark = pytest.mark.integration


@pytest.fixture
def live(own_host, tmp_path):
    conn = libvirt.open(own_host.uri)
    defined = [define(conn, name, stack, running=False, domain_type="qemu")
               for name, stack in (("pl-ada", "plteam"), ("pl-other", "plother"))]
    portal_dir = tmp_path / "portal"
    accounts.publish(portal_dir, "plteam", "pl-ada", ["ada"], {"ada": hash_password("ada-pw", rounds=MIN_ROUNDS)})
    # a stack that claims the other stack's desktop for ada: not believed
    accounts.publish(portal_dir, "plteam", "pl-other", ["ada"], {"ada": hash_password("ada-pw", rounds=MIN_ROUNDS)})
    url = service.ensure_running(portal_dir, PortalSettings(), libvirt_uri=own_host.uri, host="itest",
                                 console_dir=None)
    yield url, portal_dir, lambda settings: service.ensure_running(portal_dir, settings, libvirt_uri=own_host.uri,
                                                                   host="itest", console_dir=None)
    service.stop(portal_dir)
    for dom in defined:
        dom.undefine()
    conn.close()


def signed_in_opener(url: str):
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(url + "/signin", timeout=10).read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"user": "ada", "password": "ada-pw", "csrf": csrf}).encode()
    return opener, opener.open(url + "/signin", data=form, timeout=30).read().decode()


def test_ada_sees_her_defined_desktop_and_not_another_stacks(live):
    live, _portal_dir, _restart = live
    opener, home = signed_in_opener(live)
    assert 'id="desktop-pl-ada"' in home and 'data-state="stopped"' in home and "pl-other" not in home
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(live + "/desktops/pl-other", timeout=10)
    assert refused.value.code == 403



def test_a_session_outlives_a_restart_of_the_portal_and_signing_out_ends_it(live):
    url, portal_dir, restart = live
    opener, home = signed_in_opener(url)
    assert 'id="desktop-pl-ada"' in home
    before = service.runtime(portal_dir)["pid"]
    url = restart(PortalSettings(link_validity_s=240))           # what an up with other settings does
    assert service.runtime(portal_dir)["pid"] != before
    home = opener.open(url + "/", timeout=30).read().decode()
    assert 'id="desktop-pl-ada"' in home and 'id="who">ada<' in home
    csrf = re.search(r'name="csrf" value="([^"]+)"', home).group(1)
    opener.open(url + "/signout", data=urllib.parse.urlencode({"csrf": csrf}).encode(), timeout=10)
    url = restart(PortalSettings(link_validity_s=180))
    assert 'id="signin"' in opener.open(url + "/", timeout=30).read().decode()
