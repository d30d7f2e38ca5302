"""Containers without a daemon: the LXC XML model, check()/diff() of the provider, id ranges,
and the root-tree tools on a small ext4 image made here (libvirt's test driver has no LXC)."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pulumi
import pytest
from lxml import etree

from components.images import rootfs
from components.resources.container import LxcContainer as ContainerResource
from components.resources.container import (
    ID_COUNT, UID_FIRST, UID_SLOTS, USERNS_OFF_WARNING, ContainerExec, ContainerProvider, _CONTROLLER_SCRIPT,
    cgroup_name, desired_model, observed_inputs, pick_uid_base,
)
from components.resources.provider import UNKNOWN
from components.xmlmodel import declared_properties
from components.xmlmodel.container import Container, ContainerOwner, Filesystem, IdMap, InitEnv
from components.xmlmodel.domain import Console, Interface

URI = "lxc:///system?socket=/tmp/x/libvirt-sock"
BASE = {"host_uri": URI, "name": "box", "image": "/images/debian12", "containers_dir": "/srv/containers",
        "memory": 512 * 1024**2}


def checked(props, olds=None):
    result = ContainerProvider().check(olds or {}, props)
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    return result.inputs


def failures(props) -> dict[str, str]:
    return {f.property: f.reason for f in ContainerProvider().check({}, props).failures}


# --- the XML model ----------------------------------------------------------------

def full_container() -> Container:
    """A container that sets every declared property, so round trips exercise all of them."""
    return Container(
        type="lxc", name="full", uuid="4f3a3a56-2f0e-4c4c-9f57-0a4b1e2a9c11",
        memory_kib=524288, current_memory_kib=262144, vcpus=2, cpu_shares=512, cpu_period=100000,
        cpu_quota=200000, os_type="exe", arch="x86_64", init="/bin/sh", init_args=["-c", "echo 'a b' > /x"],
        init_env=[InitEnv(name="GREETING", value="hello world")], init_dir="/srv",
        uid_maps=[IdMap(start=0, target=165536, count=65536)], gid_maps=[IdMap(start=0, target=165536, count=65536)],
        privnet=True, on_poweroff="destroy", on_reboot="restart", on_crash="destroy",
        owner=ContainerOwner(stack="dev", resource="full", project="vdesk"),
        emulator="/srv/containers/full/lxc-controller",
        filesystems=[Filesystem(type="mount", accessmode="passthrough", source_dir="/srv/full/rootfs", target_dir="/"),
                     Filesystem(type="mount", accessmode="passthrough", source_dir="/data", target_dir="/mnt/data",
                                readonly=True)],
        interfaces=[Interface(type="network", source_network="lan", mac="52:54:00:00:00:01")],
        consoles=[Console(type="pty", target_type="lxc")],
    )


def test_round_trip_keeps_every_property():
    model = full_container()
    again = Container.from_xml(model.to_xml())
    assert again == model
    assert model.differences(again) == []


@pytest.mark.parametrize("cls", [Container, IdMap, InitEnv, Filesystem, ContainerOwner])
def test_every_property_is_exercised(cls):
    model = full_container()
    samples = {Container: [model], IdMap: model.uid_maps, InitEnv: model.init_env,
               Filesystem: model.filesystems, ContainerOwner: [model.owner]}[cls]
    unset = [name for name, _ in declared_properties(cls) if all(getattr(s, name) in (None, []) for s in samples)]
    assert unset == [], f"{cls.__name__} properties never exercised: {unset}"


def test_xml_is_what_libvirt_lxc_expects():
    root = etree.fromstring(full_container().to_xml())
    assert root.get("type") == "lxc"
    assert root.findtext("os/type") == "exe" and root.findtext("os/init") == "/bin/sh"
    assert [a.text for a in root.findall("os/initarg")] == ["-c", "echo 'a b' > /x"]
    assert [(e.get("name"), e.text) for e in root.findall("os/initenv")] == [("GREETING", "hello world")]
    for kind in ("uid", "gid"):
        assert dict(root.find(f"idmap/{kind}").attrib) == {"start": "0", "target": "165536", "count": "65536"}
    assert root.find("features/privnet") is not None
    fs = root.findall("devices/filesystem")
    assert [(f.find("source").get("dir"), f.find("target").get("dir"), f.find("readonly") is not None)
            for f in fs] == [("/srv/full/rootfs", "/", False), ("/data", "/mnt/data", True)]
    assert root.find("devices/emulator").text == "/srv/containers/full/lxc-controller"
    assert root.find("metadata/{urn:vdesk:1}container/{urn:vdesk:1}resource").text == "full"


LIBVIRT_XMLDESC = """<domain type='lxc' id='4242'>
  <name>box</name>
  <uuid>e306935c-0950-4b76-b118-ebe6704df0dd</uuid>
  <memory unit='KiB'>524288</memory>
  <currentMemory unit='KiB'>524288</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <cputune><shares>300</shares><period>100000</period><quota>100000</quota></cputune>
  <metadata><vdesk:container xmlns:vdesk="urn:vdesk:1"><vdesk:stack>dev</vdesk:stack><vdesk:resource>box</vdesk:resource></vdesk:container></metadata>
  <resource><partition>/machine</partition></resource>
  <os><type arch='x86_64'>exe</type><init>/sbin/init</init></os>
  <idmap><uid start='0' target='165536' count='65536'/><gid start='0' target='165536' count='65536'/></idmap>
  <features><privnet/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/srv/containers/box/lxc-controller</emulator>
    <filesystem type='mount' accessmode='passthrough'><source dir='/srv/containers/box/rootfs'/><target dir='/'/></filesystem>
    <filesystem type='mount' accessmode='passthrough'><source dir='/data'/><target dir='/mnt/data'/><readonly/></filesystem>
    <interface type='network'>
      <mac address='52:54:00:aa:00:01'/>
      <source network='lan' portid='940801c1-1950-4651-9dc5-9c2309384e51' bridge='vd-lan'/>
      <target dev='vnet0'/><guest dev='eth0'/>
    </interface>
    <console type='pty' tty='/dev/pts/4'><source path='/dev/pts/4'/><target type='lxc' port='0'/></console>
  </devices>
</domain>"""


def test_what_libvirt_returns_matches_what_vdesk_declares():
    props = checked(dict(BASE, owner="dev", cpu_shares=300, mounts=[{"source": "/data", "target": "/mnt/data"}],
                         networks=[{"network": "lan", "mac": "52:54:00:aa:00:01"}]))
    desired = desired_model(props, uid_base=165536, root="/srv/containers/box/rootfs",
                            emulator="/srv/containers/box/lxc-controller")
    live = Container.from_xml(LIBVIRT_XMLDESC)
    assert desired.differences(live) == []
    assert (live.uid_base, live.root.source_dir, [m.target_dir for m in live.mounts]) == (
        165536, "/srv/containers/box/rootfs", ["/mnt/data"])
    observed = observed_inputs(live, props)
    assert {k: props[k] for k in observed} == observed   # no drift reported for what was declared


def test_system_and_application_containers():
    system = desired_model(checked(BASE), uid_base=None, root="/r")
    assert (system.init, system.init_args, system.uid_maps, system.privnet) == ("/sbin/init", [], [], True)
    app = desired_model(checked(dict(BASE, command=["/bin/sh", "-c", "exec sleep 1"], env=["A=b=c"])),
                        uid_base=200000, root="/r")
    assert (app.init, app.init_args) == ("/bin/sh", ["-c", "exec sleep 1"])
    assert [(e.name, e.value) for e in app.init_env] == [("A", "b=c")]
    assert app.uid_base == 200000 and app.gid_maps[0].count == ID_COUNT
    assert observed_inputs(Container.from_xml(system.to_xml()), checked(BASE))["command"] == []


def test_vcpus_become_a_cfs_quota():
    model = desired_model(checked(dict(BASE, vcpus=3)), uid_base=None, root="/r")
    assert (model.vcpus, model.cpu_period, model.cpu_quota) == (3, 100000, 300000)
    assert observed_inputs(model, checked(BASE))["vcpus"] == 3


# --- check() and diff() ----------------------------------------------------------------

def test_defaults_a_stable_mac_and_read_only_mounts():
    one = checked(dict(BASE, networks=[{"network": "lan"}, {"network": "dmz"}],
                       mounts=[{"source": "/data", "target": "/data"}]))
    again = checked(dict(BASE, networks=[{"network": "lan"}, {"network": "dmz"}]))
    assert one["networks"] == again["networks"]
    macs = [n["mac"] for n in one["networks"]]
    assert len(set(macs)) == 2 and all(m.startswith("52:54:00:") for m in macs)
    assert one["mounts"] == [{"source": "/data", "target": "/data", "readonly": True}]
    assert one["userns"] is True and one["running"] is True and one["command"] == []
    explicit = checked(dict(BASE, networks=[{"network": "lan", "mac": "52:54:00:AB:CD:EF"}],
                            mounts=[{"source": "/data", "target": "/data", "readonly": False}]))
    assert explicit["networks"][0]["mac"] == "52:54:00:ab:cd:ef"
    assert explicit["mounts"][0]["readonly"] is False


def test_unknown_values_at_preview_pass_check():
    inputs = checked(dict(BASE, networks=[{"network": UNKNOWN}], memory=UNKNOWN))
    assert inputs["networks"] == [{"network": UNKNOWN, "mac": UNKNOWN}]


@pytest.mark.parametrize("change,prop,words", [
    ({"host_uri": "qemu:///system"}, "host_uri", "not an lxc:// URI"),
    ({"host_uri": "lxc+ssh://far/system"}, "host_uri", "remote host"),
    ({"name": "Box_1"}, "name", "not a valid name"),
    ({"memory": "512MiB"}, "memory", "must be int"),
    ({"memory": 0}, "memory", "positive"),
    ({"memory": 512 * 1024**2 + 1}, "memory", "whole number of MiB"),
    ({"image": "images/debian12"}, "image", "absolute path"),
    ({"containers_dir": None}, "containers_dir", "required"),
    ({"command": ["sh", "-c", "true"]}, "command", "'sh' is not an absolute path inside the container"),
    ({"command": "/bin/true"}, "command", "must be list"),
    ({"env": ["1X=y"]}, "env", "[0]: '1X' is not an environment variable name"),
    ({"cpu_shares": 1}, "cpu_shares", "between 2 and 262144"),
    ({"networks": [{"mac": "52:54:00:00:00:01"}]}, "networks", "networks[0] needs a network"),
    ({"networks": [{"network": "lan", "mac": "nope"}]}, "networks", "networks[0].mac"),
    ({"networks": [{"network": "lan", "model": "virtio"}]}, "networks", "unknown key(s) model"),
    ({"networks": [{"network": "lan"}, {"network": "lan"}]}, "networks", "same MAC"),
    ({"mounts": [{"source": "/d", "target": "/"}]}, "mounts",
     "[0].target: '/' must be an absolute directory inside the container"),
    ({"mounts": [{"source": "d", "target": "/d"}]}, "mounts", "[0].source: 'd' must be an absolute path on the host"),
    ({"mounts": [{"source": "/d", "target": "/d", "readonly": "no"}]}, "mounts",
     "[0].readonly: Input should be a valid boolean"),
    ({"mounts": [{"source": "/d", "target": "/d"}, {"source": "/e", "target": "/d/"}]}, "mounts", "'/d' is mounted twice"),
    ({"mounts": [{"source": "/d", "target": "/d", "rw": True}]}, "mounts", "[0].rw: Extra inputs are not permitted"),
    ({"userns": "false"}, "userns", "must be bool"),
    ({"restart_policy": "always"}, "restart_policy", "must be one of"),
    ({"privileged": True}, "privileged", "not a property of ContainerProvider"),
])
def test_bad_input_is_rejected_naming_the_property(change, prop, words):
    found = failures(dict(BASE, **change))
    assert prop in found, found
    assert words in found[prop]


@pytest.mark.parametrize("prop,value,replaces", [
    ("memory", 1024 * 1024**2, False), ("vcpus", 2, False), ("cpu_shares", 100, False), ("running", False, False),
    ("autostart", True, False), ("command", ["/bin/true"], False), ("env", ["A=1"], False),
    ("networks", [{"network": "lan"}], False), ("mounts", [{"source": "/d", "target": "/d"}], False),
    ("image", "/images/other", True), ("userns", False, True), ("containers_dir", "/elsewhere", True),
    ("name", "other", True), ("host_uri", "lxc:///system", True),
])
def test_diff_says_in_place_or_replace(prop, value, replaces):
    olds = checked(BASE)
    news = checked(dict(BASE, **{prop: value}))
    diff = ContainerProvider().diff("id", olds, news)
    assert diff.changes is True
    assert diff.replaces == ([prop] if replaces else [])
    if replaces:
        assert diff.delete_before_replace is True   # same name: the old one must go first
    assert ContainerProvider().diff("id", olds, checked(BASE)).changes is False


def test_userns_off_is_reported():
    assert "root on the host" in USERNS_OFF_WARNING.format(name="box")


# --- id ranges ---------------------------------------------------------------------------

def test_uid_base_is_stable_and_avoids_ranges_in_use():
    first = pick_uid_base("alpha", [])
    assert first == pick_uid_base("alpha", [])
    assert UID_FIRST <= first < UID_FIRST + UID_SLOTS * ID_COUNT and (first - UID_FIRST) % ID_COUNT == 0
    moved = pick_uid_base("alpha", [first])
    assert moved != first and abs(moved - first) >= ID_COUNT
    # a range used by someone else that only overlaps part of ours also counts
    assert pick_uid_base("alpha", [first + 1000]) not in (first,)
    assert pick_uid_base("beta", []) != first or pick_uid_base("beta", [first]) != first


# --- the exec backend's command line ----------------------------------------------------

def test_exec_enters_every_namespace_of_the_init():
    backend = ContainerExec(URI, "box", user="dev")
    argv = backend.argv(os.getpid(), "id -u")   # our own pid: same user namespace, so no --user
    assert argv[:2] == ["nsenter", f"--target={os.getpid()}"]
    for ns in ("--mount", "--uts", "--ipc", "--net", "--pid"):
        assert ns in argv
    assert "--user" not in argv
    assert argv[-7:] == ["runuser", "-u", "dev", "--", "/bin/sh", "-c", "id -u"]
    assert "runuser" not in backend.argv(os.getpid(), "id -u", sudo=True)


def test_controller_wrapper_names_its_own_cgroup(tmp_path):
    props = dict(BASE, containers_dir=str(tmp_path))
    name = cgroup_name(props)
    assert name.startswith("vdesk-lxc/box-") and cgroup_name(dict(props, containers_dir="/other")) != name
    script = _CONTROLLER_SCRIPT.format(name="box", hierarchy="/sys/fs/cgroup/systemd", cgroup=name,
                                       controller="/usr/lib/libvirt/libvirt_lxc")
    assert 'exec /usr/lib/libvirt/libvirt_lxc "$@"' in script and f"own=$hierarchy/{name}" in script
    assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0


# --- root trees -----------------------------------------------------------------------------

needs_root_tools = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("mkfs.ext4", "debugfs", "qemu-img")),
    reason="needs root and e2fsprogs + qemu-utils (chown, mkfs.ext4 -d, debugfs)")


def _sample_tree(top: Path) -> None:
    (top / "usr/bin").mkdir(parents=True)
    (top / "usr/bin/tool").write_text("#!/bin/sh\n")
    os.chmod(top / "usr/bin/tool", 0o4755)                  # set-uid
    (top / "usr/bin/grouptool").write_text("x")
    os.chown(top / "usr/bin/grouptool", 0, 42)
    os.chmod(top / "usr/bin/grouptool", 0o2711)             # set-gid
    os.setxattr(top / "usr/bin/grouptool", "user.vdesk", b"1")   # not carried: reported
    (top / "tmp").mkdir()
    os.chmod(top / "tmp", 0o1777)                           # sticky
    (top / "home/dev").mkdir(parents=True)
    (top / "home/dev/notes").write_text("mine")
    os.chown(top / "home/dev", 1000, 1000)
    os.chown(top / "home/dev/notes", 1000, 1000)
    os.chmod(top / "home/dev", 0o700)
    os.link(top / "usr/bin/tool", top / "usr/bin/tool-again")   # a hard link
    os.symlink("usr/bin", top / "bin")
    os.mkfifo(top / "tmp/fifo")
    (top / "boot").mkdir()
    (top / "boot/vmlinuz-1").write_bytes(b"k" * 8192)
    os.symlink("boot/vmlinuz-1", top / "vmlinuz")


@needs_root_tools
def test_extract_ext4_keeps_modes_owners_and_links(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _sample_tree(src)
    raw = tmp_path / "fs.raw"
    subprocess.run(["truncate", "-s", "16M", str(raw)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(src), str(raw)], check=True)
    qcow = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow)], check=True)
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "out"
    facts = rootfs.extract_ext4(qcow, out, work)
    assert facts["hard_links"] == 1 and facts["fifos"] == 1
    assert facts["xattr_files_not_copied"] == ["/usr/bin/grouptool"]
    for rel in ("usr/bin/tool", "usr/bin/grouptool", "tmp", "home/dev", "home/dev/notes", "usr/bin"):
        a, b = os.lstat(src / rel), os.lstat(out / rel)
        assert (stat.filemode(b.st_mode), b.st_uid, b.st_gid) == (stat.filemode(a.st_mode), a.st_uid, a.st_gid), rel
    assert os.stat(out / "usr/bin/tool").st_ino == os.stat(out / "usr/bin/tool-again").st_ino
    assert os.readlink(out / "bin") == "usr/bin"
    assert stat.S_ISFIFO(os.lstat(out / "tmp/fifo").st_mode)
    assert (out / "home/dev/notes").read_text() == "mine"
    assert not (work / "fs.raw").exists()      # the raw copy is not kept


@needs_root_tools
def test_base_tree_is_cached_without_a_kernel_and_copies_are_shifted(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _sample_tree(src)
    image = tmp_path / "image"
    image.mkdir()
    raw = tmp_path / "fs.raw"
    subprocess.run(["truncate", "-s", "16M", str(raw)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(src), str(raw)], check=True)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image / "disk.qcow2")],
                   check=True)
    cache = tmp_path / "cache"
    base = rootfs.base_tree(image, cache)
    assert base == cache / rootfs.image_key(image) / "tree"
    assert rootfs.base_tree(image, cache) == base          # second call: the cached tree
    assert not list((base / "boot").iterdir()) and not os.path.lexists(base / "vmlinuz")

    made = rootfs.provision(image, tmp_path / "c1" / "rootfs", hostname="c1", uid_base=300000, system=True,
                            cache=cache)
    tree = made.rootfs
    assert os.lstat(tree).st_uid == 300000
    notes = os.lstat(tree / "home/dev/notes")
    assert (notes.st_uid, notes.st_gid) == (301000, 301000)
    tool = os.lstat(tree / "usr/bin/tool")
    assert tool.st_uid == 300000 and tool.st_mode & stat.S_ISUID      # set-uid survives the chown
    assert os.lstat(tree / "usr/bin/grouptool").st_gid == 300042 and os.lstat(tree / "usr/bin/grouptool").st_mode & stat.S_ISGID
    assert os.lstat(tree / "bin").st_uid == 300000                      # symlinks themselves
    assert (tree / "etc/hostname").read_text() == "c1\n" and (tree / "etc/cloud/cloud-init.disabled").exists()
    assert "DHCP=ipv4" in (tree / "etc/systemd/network/80-vdesk-container.network").read_text()
    assert os.lstat(tree / "etc/hostname").st_uid == 300000             # customised before the shift
    assert os.lstat(base / "home/dev/notes").st_uid == 1000             # the shared base is untouched
    with pytest.raises(rootfs.RootfsError, match="already shifted"):
        rootfs.shift_ownership(tree, 300000)
    rootfs.remove_tree(tree.parent)
    assert not tree.parent.exists()


# --- the Pulumi resource ----------------------------------------------------------------------

class _EchoMocks(pulumi.runtime.Mocks):
    def new_resource(self, args):
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args):
        return {}


def test_declaring_a_container_without_userns_warns(monkeypatch):
    warned = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *a, **k: warned.append(message))
    pulumi.runtime.set_mocks(_EchoMocks(), project="vdesk", stack="unit", preview=False)
    ContainerResource("quiet", dict(BASE, name="quiet"))
    assert warned == []
    ContainerResource("loud", dict(BASE, name="loud", userns=False))
    assert len(warned) == 1 and "'loud'" in warned[0] and "root on the host" in warned[0]
    with pytest.raises(TypeError, match="privileged"):
        ContainerResource("typo", dict(BASE, privileged=True))
