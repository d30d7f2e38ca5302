"""What root runs later is installed root-owned, and refused when anyone else could change it."""
from __future__ import annotations

import os
import stat

import pytest

from components.paths import shipped
from components import rootexec

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="makes files owned by another uid")


@pytest.fixture
def libexec(tmp_path, monkeypatch):
    folder = tmp_path / "libexec" / "vdesk"
    monkeypatch.setenv("VDESK_LIBEXEC", str(folder))
    return folder


def test_installs_a_root_owned_0755_copy_of_the_wrapper(libexec):
    path = rootexec.install("virtiofsd-rw")
    st = os.lstat(path)
    assert path == rootexec.installed_path("virtiofsd-rw") == str(libexec / "virtiofsd-rw")
    assert (st.st_uid, stat.S_IMODE(st.st_mode), stat.S_ISREG(st.st_mode)) == (os.geteuid(), 0o755, True)
    assert (libexec / "virtiofsd-rw").read_bytes() == shipped("tools/virtiofsd-share").read_bytes()
    assert rootexec.owner_problem(path) is None
    assert sorted(p.name for p in libexec.iterdir()) == ["virtiofsd-rw"]      # no temporary left


def test_a_changed_or_loosened_copy_is_replaced(libexec):
    path = rootexec.install("virtiofsd-ro")
    os.chmod(path, 0o777)
    assert "writable by group or others (mode 0777)" in rootexec.owner_problem(path)
    assert rootexec.install("virtiofsd-ro") == path and stat.S_IMODE(os.lstat(path).st_mode) == 0o755
    with open(path, "ab") as fh:
        fh.write(b"\nimport os; os.system('id')\n")
    rootexec.install("virtiofsd-ro")
    assert open(path, "rb").read() == shipped("tools/virtiofsd-share").read_bytes()


def test_a_directory_others_can_write_is_refused(libexec):
    libexec.mkdir(parents=True)
    os.chmod(libexec.parent, 0o777)
    with pytest.raises(rootexec.InstallError, match=r"libexec is writable by group or others \(mode 0777\)"):
        rootexec.install("virtiofsd-rw")
    assert not (libexec / "virtiofsd-rw").exists()


def test_a_symlink_on_the_way_is_refused(tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    monkeypatch.setenv("VDESK_LIBEXEC", str(tmp_path / "link"))
    with pytest.raises(rootexec.InstallError, match="link is a symlink"):
        rootexec.install("virtiofsd-rw")


@needs_root
def test_a_file_or_directory_owned_by_another_user_is_refused(libexec):
    path = rootexec.install("virtiofsd-rw")
    os.chown(path, 12345, 0)
    assert rootexec.owner_problem(path) == f"{path} is owned by uid 12345, not root"
    assert rootexec.install("virtiofsd-rw") == path and os.lstat(path).st_uid == 0   # replaced by root's copy
    os.chown(libexec, 12345, 0)
    with pytest.raises(rootexec.InstallError, match="is owned by uid 12345, not root"):
        rootexec.install("virtiofsd-rw")


def test_a_sticky_directory_such_as_tmp_may_be_on_the_way(tmp_path):
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    (sticky / "mine").write_text("x")
    os.chmod(sticky / "mine", 0o755)
    assert rootexec.owner_problem(sticky / "mine") is None
    assert "writable by group or others" in rootexec.owner_problem(sticky)   # but not as the file itself
