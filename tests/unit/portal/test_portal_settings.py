"""The portal's settings are the administrator's: checked with their field paths, read back from its dir."""
from __future__ import annotations

import json

from components.portal.serve import config_from, listen, url_of
from components.portal.settings import PortalSettings


def test_bad_settings_name_their_fields():
    bad = PortalSettings(bind="localhost", port=70000, session_s=0, tls_key="/nonexistent")
    assert sorted(field for field, _ in bad.problems("hosts.local.portal")) == [
        "hosts.local.portal.bind", "hosts.local.portal.port", "hosts.local.portal.session_s",
        "hosts.local.portal.tls_key", "hosts.local.portal.tls_key"]
    assert PortalSettings().problems("p") == [] and not PortalSettings().tls


def test_the_portal_reads_its_dir_and_says_where_it_listens(tmp_path):
    (tmp_path / "settings.json").write_text(json.dumps({"libvirt_uri": "test:///default", "host": "local",
                                                        "console_dir": str(tmp_path / "c"),
                                                        "settings": {"session_s": 600}}))
    config = config_from(tmp_path)
    assert (config.host, config.settings.session_s, config.console_dir) == ("local", 600, tmp_path / "c")
    sock = listen(config.settings)
    try:
        assert url_of(config.settings, sock) == f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
