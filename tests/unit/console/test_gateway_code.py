"""The gateway runs on as root: it imports a root-owned copy of vdesk's code, never the checkout."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from components.console import service
from components.console.gateway import NOVNC_DIR
from components.console.settings import ConsoleSettings
from components import rootexec

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.skipif(not os.path.isdir(NOVNC_DIR), reason="needs the novnc package (tools/setup.sh installs it)")
def test_the_gateway_imports_a_root_owned_copy_not_the_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("VDESK_LIBEXEC", str(tmp_path / "libexec"))
    console_dir = tmp_path / "console"
    service.ensure_running(console_dir, ConsoleSettings(bind="127.0.0.1"), libvirt_uri="test:///default", netns=None)
    try:
        for pid in (service.supervisor_pid(console_dir.resolve()), service.runtime(console_dir.resolve())["pid"]):
            environ = dict(e.split("=", 1) for e in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in e)
            path = environ["PYTHONPATH"]
            assert path.startswith(str(tmp_path / "libexec" / "python") + "/") and str(REPO) not in path
            assert rootexec.owner_problem(Path(path) / "components" / "console" / "gateway.py") is None
            assert (Path(path) / "components" / "console" / "gateway.py").read_bytes() == \
                (REPO / "components" / "console" / "gateway.py").read_bytes()
    finally:
        service.stop(console_dir)


def test_an_installed_package_someone_else_can_write_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("VDESK_LIBEXEC", str(tmp_path / "libexec"))
    installed = Path(rootexec.install_package())
    assert rootexec.install_package() == str(installed)                 # the same code: the same copy
    os.chmod(installed / "components" / "console", 0o777)
    with pytest.raises(rootexec.InstallError, match="console is writable by group or others"):
        rootexec.install_package()
