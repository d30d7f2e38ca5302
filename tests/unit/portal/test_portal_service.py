"""The portal as a detached service: started once, found again, restarted for new settings, stopped."""
from __future__ import annotations

import urllib.request

from components.cli import access
from components.portal import service
from components.portal.settings import PortalSettings


def test_the_portal_starts_serves_its_sign_in_page_and_stops(tmp_path):
    portal_dir = tmp_path / "portal"
    url = service.ensure_running(portal_dir, PortalSettings(), libvirt_uri="test:///default", host="local",
                                 console_dir=None)
    try:
        with urllib.request.urlopen(url + "/signin", timeout=10) as reply:
            assert reply.status == 200 and b'id="signin"' in reply.read()
        pid = service.runtime(portal_dir)["pid"]
        assert access._portal_url(str(tmp_path / "console")) == url     # what `up` prints beside the console

        assert service.ensure_running(portal_dir, PortalSettings(), libvirt_uri="test:///default", host="local",
                                      console_dir=None) == url and service.runtime(portal_dir)["pid"] == pid
        again = service.ensure_running(portal_dir, PortalSettings(session_s=60), libvirt_uri="test:///default",
                                       host="local", console_dir=None)
        assert service.runtime(portal_dir)["pid"] != pid and again.startswith("http://127.0.0.1:")
    finally:
        service.stop(portal_dir)
    assert service.runtime(portal_dir) is None and service.base_url(portal_dir) is None
