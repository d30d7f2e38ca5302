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
