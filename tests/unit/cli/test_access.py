"""After `up`, the access step prints from the checkpoint: the program wrote the files, no second engine run."""
from __future__ import annotations

import pytest

from components.cli import access

SECRET = {access.SECRET_SIG: access.SECRET_VALUE_SIG, "ciphertext": "v1:abc:def"}


def _deployment(outputs):
    return {"resources": [{"type": "pulumi:providers:pulumi-nodejs", "urn": "x"},
                          {"type": "pulumi:pulumi:Stack", "urn": "s", "outputs": outputs}]}


def test_the_checkpoints_outputs_are_read_with_every_secret_left_out():
    outputs = {"host_uri": "qemu:///system", "desktops": {"d00": {"name": "s-d00", "ip": None,
                                                                  "login_private_key": SECRET,
                                                                  "users": [{"name": "u", "password": SECRET}]}}}
    plain = access.plain_outputs(_deployment(outputs))
    assert plain["host_uri"] == "qemu:///system"
    assert plain["desktops"]["d00"] == {"name": "s-d00", "ip": None, "login_private_key": None,
                                        "users": [{"name": "u", "password": None}]}
    assert "ciphertext" not in repr(plain)


@pytest.mark.parametrize("deployment", [{}, {"resources": []}, _deployment(None)])
def test_a_checkpoint_without_stack_outputs_gives_none(deployment):
    assert access.plain_outputs(deployment) is None


def test_printing_from_given_outputs_neither_asks_the_engine_nor_writes(monkeypatch, capsys):
    def no_engine(_stack):
        raise AssertionError("asked the engine")

    monkeypatch.setattr(access, "stack_outputs", no_engine)
    monkeypatch.setattr(access, "write_access_files", lambda *_: (_ for _ in ()).throw(AssertionError("wrote")))
    outputs = {"host_uri": "qemu:///system", "desktops": {"d00": {"name": "s-d00", "state": "stopped", "ip": None,
                                                                  "ssh_command": None, "display_uri": None}}}
    assert access.main(["s"], outputs) == 0
    assert "desktop d00 (s-d00): stopped, ip None" in capsys.readouterr().out


def test_without_outputs_the_engine_is_asked_and_the_files_written(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(access, "stack_outputs", lambda stack: calls.append(stack) or {"desktops": {}})
    monkeypatch.setattr(access, "write_access_files", lambda stack, desktops: calls.append((stack, desktops)))
    assert access.main(["s"]) == 0
    assert calls == ["s", ("s", {})]


def test_the_files_are_written_owner_only_and_rewritten_only_when_they_change(tmp_path, monkeypatch):
    import os
    import stat
    monkeypatch.setenv("VDESK_STATE", str(tmp_path))
    desktops = {"d00": {"name": "s-d00", "login_private_key": "KEY\n", "ip": "10.0.0.2", "host_key": "ssh-ed25519 A",
                        "display_uri": "vnc+unix:///x.vnc", "display_password": "pw"}}
    access.write_access_files("s", desktops)
    key = tmp_path / "ssh" / "s" / "d00.key"
    assert key.read_text() == "KEY\n" and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "ssh" / "s" / "d00.known_hosts").read_text() == "10.0.0.2 ssh-ed25519 A\n"
    before = key.stat().st_mtime_ns
    os.utime(key, ns=(before - 10**9, before - 10**9))
    access.write_access_files("s", desktops)
    assert key.stat().st_mtime_ns == before - 10**9, "an unchanged file was written again"
    os.chmod(key, 0o644)
    access.write_access_files("s", {"d00": {**desktops["d00"], "login_private_key": "NEW\n"}})
    assert key.read_text() == "NEW\n" and stat.S_IMODE(key.stat().st_mode) == 0o600
    os.chmod(key, 0o644)
    access.write_access_files("s", {"d00": {**desktops["d00"], "login_private_key": "NEW\n"}})
    assert stat.S_IMODE(key.stat().st_mode) == 0o600, "a file that others may read is written again"
