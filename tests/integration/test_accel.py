"""The accelerator setting: explicit choices pass through, "auto" boots real probe guests and caches the verdict."""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

import libvirt
import pytest

from components.host import accel, embedded
from components.host.accel import AcceleratorChoice, AcceleratorError
from components.paths import cache_dir

pytestmark = [pytest.mark.integration, pytest.mark.guests]

PROBE_TIMEOUT_S = 15.0


def _apt_download(spec: str, cwd: str) -> None:
    cmd = ["apt-get", "download", spec]
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:  # package lists may be missing or stale
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, timeout=600)
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        pytest.fail(f"`apt-get download {spec}` failed: {out.stderr.strip()}")


@pytest.fixture(scope="session")
def probe_kernel() -> Path:
    """A Debian cloud kernel (vmlinuz only), cached under $VDESK_CACHE/test-kernel/."""
    dest = cache_dir() / "test-kernel"
    found = sorted(dest.glob("vmlinuz-*"))
    if found:
        return found[-1]
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vdesk-kernel-") as tmp:
        _apt_download("linux-image-cloud-amd64", tmp)
        meta = glob.glob(os.path.join(tmp, "linux-image-cloud-amd64_*.deb"))[0]
        depends = subprocess.run(["dpkg-deb", "-f", meta, "Depends"], capture_output=True, text=True,
                                 check=True).stdout
        m = re.match(r"\s*(linux-image-[^\s(,|]+)\s*\(=\s*([^)\s]+)\s*\)", depends)
        assert m, f"unexpected Depends of linux-image-cloud-amd64: {depends!r}"
        package, version = m.groups()
        _apt_download(f"{package}={version}", tmp)
        deb = glob.glob(os.path.join(tmp, f"{package}_*.deb"))[0]
        with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE) as proc:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    base = os.path.basename(member.name)
                    if member.isfile() and base.startswith("vmlinuz-") and "/boot/" in member.name:
                        partial = dest / f".{base}.partial"
                        with tar.extractfile(member) as src, open(partial, "wb") as out:
                            shutil.copyfileobj(src, out)
                        os.replace(partial, dest / base)
                        break
            proc.stdout.read()
    found = sorted(dest.glob("vmlinuz-*"))
    assert found, f"no vmlinuz in {package}"
    return found[-1]


@pytest.fixture(scope="module")
def host():
    if os.geteuid() != 0:
        pytest.skip("the embedded libvirt host needs root")
    root = Path(tempfile.mkdtemp(prefix="vda-", dir="/tmp"))
    h = embedded.embedded_host(f"a{uuid.uuid4().hex[:8]}", root)
    try:
        embedded.ensure_running(h, timeout_s=120)
        yield h
    finally:
        embedded.stop(h, purge=True)
        shutil.rmtree(root, ignore_errors=True)
        assert not os.path.exists(h.netns)


def _probe_logs(h) -> set[str]:
    """libvirt writes one qemu log per domain it started: a trace of every probe boot."""
    return {p.name for p in (h.state_dir / "log" / "qemu").glob(f"{accel.PROBE_PREFIX}*.log")}


def _probe_tmpdirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "vdesk-accel-*")))


def _probe_domains(uri: str) -> list[str]:
    conn = libvirt.open(uri)
    try:
        return [d.name() for d in conn.listAllDomains() if d.name().startswith(accel.PROBE_PREFIX)]
    finally:
        conn.close()


def test_tcg_passes_through(host):
    choice = accel.resolve_accelerator(host.uri, "tcg", kernel=None)
    assert (choice.accelerator, choice.domain_type) == ("tcg", "qemu")
    assert "explicit" in choice.reason
    assert _probe_logs(host) == set()


def test_kvm_passes_through_or_is_refused_by_name(host):
    conn = libvirt.open(host.uri)
    try:
        _arch, types = accel.host_domain_types(conn)
    finally:
        conn.close()
    if "kvm" in types:
        choice = accel.resolve_accelerator(host.uri, "kvm", kernel=None)
        assert (choice.accelerator, choice.domain_type) == ("kvm", "kvm")
    else:
        with pytest.raises(AcceleratorError, match=r"^accelerator: 'kvm' is not available"):
            accel.resolve_accelerator(host.uri, "kvm", kernel=None)
    assert _probe_logs(host) == set()


def test_missing_domain_type_names_the_field(host):
    # The LXC driver of the same daemon offers no hvm guests at all.
    for requested in ("kvm", "tcg"):
        with pytest.raises(AcceleratorError, match=rf"^accelerator: '{requested}' is not available"):
            accel.resolve_accelerator(host.lxc_uri, requested, kernel=None)


@pytest.mark.parametrize("bad", ["", "KVM", "hvf", "auto ", "qemu"])
def test_bad_value_names_field_and_choices(bad):
    with pytest.raises(AcceleratorError) as err:
        accel.resolve_accelerator("qemu:///nowhere", bad, kernel=None)
    assert str(err.value).startswith("accelerator: must be one of 'auto', 'kvm', 'tcg'")
    assert repr(bad) in str(err.value)


def test_auto_needs_a_kernel(host):
    with pytest.raises(AcceleratorError, match=r"^accelerator: 'auto' needs a kernel"):
        accel.resolve_accelerator(host.uri, "auto", kernel=None)
    with pytest.raises(AcceleratorError, match=r"^accelerator: 'auto' probe kernel .* does not exist"):
        accel.resolve_accelerator(host.uri, "auto", kernel="/nonexistent/vmlinuz")


def test_auto_boots_probes_picks_a_working_accelerator_and_caches(host, probe_kernel):
    cache = host.state_dir.parent.parent / "accel-cache.json"
    logs_before, tmp_before = _probe_logs(host), _probe_tmpdirs()
    started = time.monotonic()
    choice = accel.resolve_accelerator(host.uri, "auto", kernel=str(probe_kernel),
                                       timeout_s=PROBE_TIMEOUT_S, cache_path=cache)
    first_s = time.monotonic() - started
    print(f"auto -> {choice} in {first_s:.1f}s")
    assert choice.accelerator in ("kvm", "tcg")
    assert choice.domain_type == accel.DOMAIN_TYPES[choice.accelerator]
    probes = _probe_logs(host) - logs_before
    assert probes, "auto must boot at least one probe guest"
    assert _probe_domains(host.uri) == []
    assert _probe_tmpdirs() == tmp_before

    # The verdict is true: the chosen accelerator really boots the kernel ...
    confirm = accel.probe_boot(host.uri, choice.domain_type, str(probe_kernel), timeout_s=60)
    assert confirm.booted, confirm.detail
    if choice.accelerator == "tcg":
        # ... and falling back was justified: kvm was probed (or absent) and does not boot here.
        assert re.search(r"kvm probe (timed out|stopped|could not start)|host offers no kvm", choice.reason), \
            choice.reason
        if "kvm probe" in choice.reason:
            assert len(probes) == 2
            kvm = accel.probe_boot(host.uri, "kvm", str(probe_kernel), timeout_s=PROBE_TIMEOUT_S)
            assert not kvm.booted, kvm.detail
    else:
        assert choice.reason.startswith("kvm probe booted the kernel")
        assert len(probes) == 1
    assert _probe_domains(host.uri) == []

    # Cached: the second call boots nothing and does not rewrite the cache.
    entry = json.loads(cache.read_text())
    assert len(entry["verdicts"]) == 1
    stamp = cache.stat().st_mtime_ns
    logs_before = _probe_logs(host)
    started = time.monotonic()
    again = accel.resolve_accelerator(host.uri, "auto", kernel=str(probe_kernel),
                                      timeout_s=PROBE_TIMEOUT_S, cache_path=cache)
    assert time.monotonic() - started < 2
    assert (again.accelerator, again.domain_type) == (choice.accelerator, choice.domain_type)
    assert again.reason == f"{choice.reason} (cached verdict)"
    assert _probe_logs(host) == logs_before
    assert cache.stat().st_mtime_ns == stamp


def test_accelerator_choice_is_frozen():
    choice = AcceleratorChoice("tcg", "qemu", "x")
    with pytest.raises(AttributeError):
        choice.accelerator = "kvm"  # type: ignore[misc]
