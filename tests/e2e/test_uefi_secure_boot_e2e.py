"""End to end: a UEFI desktop with Secure Boot enforced and a TPM 2.0 boots on the embedded host and passes its checks.

The image is vdesk's own UEFI recipe (`firmware: uefi`): a GPT disk whose EFI
system partition holds Debian's Microsoft-signed shim and Debian's signed GRUB,
and whose root holds Debian's signed kernel. The desktop declares `machine:
q35`, `secure_boot: true` and `tpm: true`; libvirt picks OVMF with Microsoft's
keys enrolled (OVMF_CODE_4M.ms.fd, a copy of OVMF_VARS_4M.ms.fd) and SMM, and
runs swtpm for the TPM. Under TCG on the embedded host:

- up succeeds: the readiness gate (address, SSH with the pinned host key,
  cloud-init done) and the checks pass, among them `mokutil --sb-state` and
  the TPM's major version;
- over SSH, the firmware's SecureBoot variable is 1 (so every stage was
  verified: shim by the firmware's db, GRUB and the kernel by shim), the
  kernel is locked down, /sys/class/tpm/tpm0 is a TPM 2.0, and the root
  partition was grown to the virtual disk;
- a refresh and a preview then change nothing (the TPM and firmware read back
  as declared);
- destroy leaves no domain, network, pool or volume, and no file: no disk,
  no NVRAM, no swtpm state (/var/lib/libvirt/swtpm/<uuid> in the host's root),
  no qemu or swtpm log.
"""
from __future__ import annotations

import time
from pathlib import Path

import libvirt
import pytest
from pulumi import automation as auto

from components import xmlmodel
from components.guest.ssh import SshTarget, connect
from components.host import embedded
from tests.support.host import counts
from tests.support.project import isolated_env, make_project, open_stack

pytestmark = [pytest.mark.e2e, pytest.mark.guests]
STACK = "sb"
NAME = f"{STACK}-{STACK}"
SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

CONFIG = {
    "vdesk:hosts": {"local": {"uri": "embedded", "accelerator": "tcg"}},
    "vdesk:pools": {"main": {"host": "local"}},
    "vdesk:networks": {"lan": {"host": "local", "cidr": "10.79.0.0/24"}},
    "vdesk:images": {"uefi": {"recipe": {"firmware": "uefi"}}},
    "vdesk:desktops": {STACK: {
        "pool": "main", "network": "lan", "image": "uefi", "memory": "1GiB", "vcpus": 2, "disk": "6GiB",
        "machine": "q35", "secure_boot": True, "tpm": True,
        "users": [{"name": "sb"}],
        "checks": [
            {"service": "ssh"},
            {"command": "mokutil --sb-state", "output_matches": "SecureBoot enabled"},
            {"command": "cat /sys/class/tpm/tpm0/tpm_version_major", "output_matches": "^2$"},
            {"command": "cloud-init status --format json", "output_matches": '"status": "done"'},
        ]}},
    "vdesk:timeouts": {"address": 420, "ssh": 300, "cloud_init": 600, "shutdown": 20},
}
IMAGE_RECIPES = [CONFIG["vdesk:images"]["uefi"]["recipe"]]   # built in the background (tests/support/prebuild.py)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    state = tmp_path_factory.mktemp("vdesk-state")
    env = isolated_env(state)
    project = make_project(tmp_path_factory.mktemp("project"), STACK, CONFIG)
    stack = open_stack(project, STACK, env)
    yield {"stack": stack, "state": state}
    try:
        stack.destroy(on_output=print)
    finally:
        embedded.stop(embedded.embedded_host("local", state_root=state), purge=True)


def files_under(path: Path) -> list[str]:
    return sorted(str(p) for p in path.rglob("*") if p.is_file() or p.is_socket()) if path.exists() else []


def _live(uri: str) -> xmlmodel.Domain:
    conn = libvirt.open(uri)
    try:
        return xmlmodel.Domain.from_xml(conn.lookupByName(NAME).XMLDesc(0))
    finally:
        conn.close()


def test_a_secure_boot_desktop_with_a_tpm_boots_passes_its_checks_and_leaves_nothing(world):
    stack: auto.Stack = world["stack"]
    host_dir = world["state"] / "hosts" / "local"
    started = time.monotonic()
    result = stack.up(on_output=print)
    up_seconds = time.monotonic() - started
    assert result.summary.result == "succeeded"
    outputs = {k: v.value for k, v in result.outputs.items()}
    desk = outputs["desktops"][STACK]
    assert desk["state"] == "running" and desk["ip"].startswith("10.79.0.")

    # What libvirt made of the declaration: OVMF with Secure Boot and Microsoft's keys, SMM, a vTPM by swtpm.
    live = _live(outputs["host_uri"])
    print(f"loader {live.loader} (secure={live.loader_secure}), nvram {live.nvram}, machine {live.machine}")
    # (libvirt replaces firmware='efi' with the firmware it chose in the running domain's XML)
    assert live.loader_secure is True and live.smm is True
    assert Path(live.loader).resolve() == Path("/usr/share/OVMF/OVMF_CODE_4M.ms.fd").resolve()
    assert live.machine.startswith("pc-q35-")
    assert [(t.model, t.backend_type, t.backend_version) for t in live.tpms] == [("tpm-crb", "emulator", "2.0")]
    uuid = live.uuid
    nvram = host_dir / "lib" / "qemu" / "nvram" / f"{NAME}_VARS.fd"
    tpm_state = host_dir / "lib" / "swtpm" / uuid
    assert nvram.is_file() and files_under(tpm_state), (nvram, files_under(host_dir / "lib"))

    target = SshTarget(host=desk["ip"], user="sb", private_key=desk["login_private_key"],
                       host_public_key=desk["host_key"], netns=outputs["hosts"]["local"]["netns"])
    with connect(target, timeout_s=60) as session:
        # The firmware's own word: SecureBoot (4 attribute bytes, then the value) is 1.
        var = session.run(f"od -An -tu1 {SECURE_BOOT_VAR}").stdout.split()
        print(f"SecureBoot efivar bytes: {var}")
        assert var and var[-1] == "1", var
        sb_state = session.run("mokutil --sb-state").stdout.strip()
        assert sb_state == "SecureBoot enabled", sb_state
        # The kernel saw it too: Secure Boot puts a Debian kernel in lockdown.
        lockdown = session.run("cat /sys/kernel/security/lockdown").stdout.strip()
        assert "[integrity]" in lockdown or "[confidentiality]" in lockdown, lockdown
        assert session.run("test -d /sys/firmware/efi").rc == 0
        # A TPM 2.0 answers.
        assert session.run("cat /sys/class/tpm/tpm0/tpm_version_major").stdout.strip() == "2"
        assert session.run("test -c /dev/tpm0 && test -c /dev/tpmrm0").rc == 0
        # The boot chain as the guest saw it, and the root partition grown to the 6 GiB disk.
        kernel = session.run("uname -r").stdout.strip()
        root = session.run("findmnt -n -o SOURCE /").stdout.strip()
        size = int(session.run("lsblk -bno SIZE /dev/vda2").stdout.strip())
        uptime = session.run("cut -d' ' -f1 /proc/uptime").stdout.strip()
        print(f"kernel {kernel}, root {root} ({size / 2**30:.1f} GiB), {sb_state}, lockdown {lockdown}, "
              f"guest up {uptime} s; stack up {up_seconds:.0f} s")
        assert root == "/dev/vda2" and size > 5 * 2**30

    # What libvirt reads back is what was declared: a refresh and a preview change nothing.
    stack.refresh(on_output=print)
    stack.preview(expect_no_changes=True)

    # destroy leaves nothing: no libvirt object, no disk, NVRAM, TPM state or log.
    stack.destroy(on_output=print)
    assert counts(outputs["host_uri"]) == {"domains": 0, "networks": 0, "pools": 0, "volumes": 0}
    assert not nvram.exists() and not tpm_state.exists()
    leftovers = {where: files_under(host_dir / where)
                 for where in ("pools", "displays", "lib/qemu/nvram", "lib/swtpm", "swtpm-log", "log/qemu")}
    assert leftovers == {where: [] for where in leftovers}, leftovers
    # and nothing of it in the system's own directories (the host binds its own over them)
    assert not Path("/var/lib/libvirt/swtpm", uuid).exists()
    assert not list(Path("/var/log/swtpm").rglob(f"{NAME}*")) if Path("/var/log/swtpm").exists() else True
