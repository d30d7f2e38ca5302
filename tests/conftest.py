"""Shared by every tier: the host policy the tests run under.

Tests make image files, pools and mounts in pytest's temporary directories, so
the policy allows those (as an administrator would allow /srv/vdesk), beside
vdesk's own cache and state. Of the exposure keys it grants only what existing
tests declare: their remote hosts, bridges, GPUs, file servers and volume groups. Tests of the policy itself
load their own files.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest


# The remote hosts the tests' stacks name (none is reached but the SSH test host, 10.251.0.2), and the
# GPUs of the hosts they describe.
TEST_LIBVIRT_HOSTS = ("localhost", "far", "remote", "b", "kvm2", "kvm2.example.org", "10.251.0.2")
TEST_PCI_DEVICES = ("0000:01:00.0", "0000:02:00.0", "0000:02:00.1", "0000:03:00.0", "0000:05:00.0")


@pytest.fixture(scope="session", autouse=True)
def host_policy(tmp_path_factory):
    scratch = Path(tempfile.gettempdir()).resolve()
    home = Path(os.environ.get("VDESK_STATE") or Path.home() / ".local" / "state" / "vdesk").resolve()
    cache = Path(os.environ.get("VDESK_CACHE") or Path.home() / ".cache" / "vdesk").resolve()
    file = tmp_path_factory.mktemp("policy") / "policy.yaml"
    file.write_text(f"images: [{cache}/images, {scratch}]\n"
                    f"pools: [{home}/hosts, /var/lib/libvirt/images, {scratch}]\n"
                    # /var/tmp: containers' mounts where their unprivileged root can pass (test_container_live)
                    f"shares: [{scratch}]\ncontainer_mounts: [{scratch}, /var/tmp]\ndevices: ['/dev/*']\n"
                    f"libvirt_hosts: {list(TEST_LIBVIRT_HOSTS)}\nbridges: [br0, br1]\n"
                    f"pci_devices: {list(TEST_PCI_DEVICES)}\nmdev_parents: ['*']\n"
                    "netfs_servers: [nas, nas.example]\nvolume_groups: [team-vg]\nkubevirt_namespaces: ['*']\n")
    os.environ["VDESK_POLICY"] = str(file)
    # the machine's owner records (resources/journal.py): this session's, not the machine's
    os.environ["VDESK_HOST_RECORDS"] = str(tmp_path_factory.mktemp("owners"))
    yield file
    os.environ.pop("VDESK_POLICY", None)
    os.environ.pop("VDESK_HOST_RECORDS", None)


@pytest.fixture(scope="session")
def remote_host(tmp_path_factory):
    """A second KVM host reached only over SSH (tests/support/remote_host.py), shared by the tests that need it."""
    from tests.support import remote_host as remote
    host = remote.start(tmp_path_factory.mktemp("remote"))
    yield host
    remote.stop(host)


# --- two streams under xdist: the guests one at a time, everything else beside them --------------------
#
# `make test` runs pytest with `-n 2 --dist loadgroup`. A TCG guest keeps one of this machine's two
# cores busy while it boots, and two booting guests starve each other, so every test that runs a QEMU
# guest is marked `guests` (LXC containers run natively: not counted), and all of them run in one
# group, one after another, in one worker, first. The other worker takes the rest (unit tests,
# previews, libvirt objects that never run, containers), each module whole so that its module
# fixtures are set up once. An unmarked test that runs a guest fails (tests/support/guestwatch.py).
# Run without -n, the order is pytest's own.

GUESTS = "guests"
_PREBUILD = None
_PREBUILD_MODULES: list | None = None
_WORKER_SUMMARIES: list[str] = []


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.addinivalue_line("markers", "guests: runs QEMU guests; under xdist all of them "
                                       "run one after another in one worker")
    # A test's libvirtd socket lives under its temporary directory, and a unix socket path has at most
    # 107 bytes: /tmp/pytest-of-root/pytest-N/ plus xdist's popen-gwN/ left too little for a test's own
    # name. One short directory per clone instead, emptied by pytest at the start of each run.
    if config.option.basetemp is None and not _distributed():
        clone = hashlib.sha256(f"{os.getuid()} {config.rootpath}".encode()).hexdigest()[:8]
        config.option.basetemp = str(Path(tempfile.gettempdir()) / f"vdt-{clone}")


def _distributed() -> bool:
    return bool(os.environ.get("PYTEST_XDIST_WORKER"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Modules needing no recipe image first, so the background builds finish before they are asked for;
    in an xdist worker also: the guests' group first, every other module its own group."""
    from tests.support.prebuild import needing_no_build_first
    items[:] = needing_no_build_first(items)
    if not _distributed():
        return
    guests, others = [], []
    for item in items:
        if item.get_closest_marker(GUESTS):
            item.add_marker(pytest.mark.xdist_group(GUESTS))
            guests.append(item)
        else:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
            others.append(item)
    # Guests first: the worker given that group holds more than two pending tests until its last ones,
    # so xdist gives it nothing more, and the other worker works through the rest meanwhile.
    items[:] = guests + others


def pytest_collection_finish(session):
    """Start building the recipe images the collected tests declare (tests/support/prebuild.py): at once,
    or under xdist when this worker starts the guests' group (a worker that finishes early would stop it)."""
    global _PREBUILD, _PREBUILD_MODULES
    if session.config.option.collectonly:
        return
    _PREBUILD_MODULES = list(dict.fromkeys(item.module for item in session.items if getattr(item, "module", None)))
    if not _distributed():
        _start_prebuild()


def _start_prebuild():
    global _PREBUILD, _PREBUILD_MODULES
    if _PREBUILD_MODULES is None:
        return
    from tests.support import prebuild
    _PREBUILD = prebuild.start(_PREBUILD_MODULES)
    _PREBUILD_MODULES = None


_WATCH = None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    global _WATCH
    if item.get_closest_marker(GUESTS):
        if _distributed():
            _start_prebuild()
        return
    if _WATCH is None:
        from tests.support.guestwatch import GuestWatch
        _WATCH = GuestWatch(f"{item.config._tmp_path_factory.getbasetemp()}/")
    _WATCH.watch(item.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """An unmarked test that started a guest fails here (tests/support/guestwatch.py)."""
    result = yield
    if _WATCH is not None and not item.get_closest_marker(GUESTS):
        _WATCH.watch(None)
        seen = _WATCH.take(item.nodeid)
        if seen:
            pytest.fail(f"{item.nodeid} started guests ({', '.join(seen)}) but is not marked `guests`: mark its "
                        "module with pytest.mark.guests, so that it never boots beside another guest", pytrace=False)
    return result


def pytest_sessionfinish(session):
    if _PREBUILD is not None:
        _PREBUILD.stop()
    # A test killed halfway (a timeout, a failed fixture) can leave a host's console gateway, portal or
    # lifecycle service running as root: stop every one whose state dir is this session's.
    from components import hostservice
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        hostservice.reap_under(factory.getbasetemp())
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:                 # an xdist worker: the controller prints the summaries
        from tests.reliability import ledger
        workeroutput["vdesk_ledger"] = ledger.export()
        workeroutput["vdesk_prebuild"] = _PREBUILD.summary() if _PREBUILD is not None else None


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist's controller: a worker finished; keep what it counted."""
    from tests.reliability import ledger
    output = getattr(node, "workeroutput", None) or {}
    ledger.merge(output.get("vdesk_ledger"))
    if output.get("vdesk_prebuild"):
        _WORKER_SUMMARIES.append(output["vdesk_prebuild"])


def pytest_terminal_summary(terminalreporter):
    from tests.reliability import ledger
    for line in ([_PREBUILD.summary()] if _PREBUILD is not None else []) + _WORKER_SUMMARIES:
        terminalreporter.write_line(line)
    lines = ledger.summary_lines()
    if lines:
        terminalreporter.section("vdesk reliability summary")
        for line in lines:
            terminalreporter.write_line(line)
