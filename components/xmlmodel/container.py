"""The LXC domain (container) XML model: what vdesk declares for a container or reads back.

A container is a libvirt domain of type 'lxc' with os type 'exe': an init
program (`/sbin/init` for a system container, any command for an application
container), a root filesystem that is a host directory, optional user
namespace id maps, and the same <interface> elements as a VM.
"""
from __future__ import annotations

from .base import VDESK_NS, Child, Children, Field, TextList, XMLObject
from .domain import Console, Interface

_META = "{%s}container" % VDESK_NS


class IdMap(XMLObject):
    """One <uid>/<gid> line of <idmap>: ids start..start+count-1 inside are target.. on the host."""
    TAG = "uid"
    start = Field("@start", int)
    target = Field("@target", int)
    count = Field("@count", int)


class InitEnv(XMLObject):
    """An environment variable of the container's init: <initenv name='K'>value</initenv>."""
    TAG = "initenv"
    name = Field("@name")
    value = Field(".")


class Filesystem(XMLObject):
    """A host directory mounted into the container (target '/' is its root filesystem)."""
    TAG = "filesystem"
    type = Field("@type")                 # mount
    accessmode = Field("@accessmode")     # passthrough
    source_dir = Field("source/@dir")
    target_dir = Field("target/@dir")
    readonly = Field("readonly", "presence")


class ContainerOwner(XMLObject):
    """vdesk's own metadata on a container: which stack (of which Pulumi project) and resource it belongs to."""
    TAG = _META
    stack = Field("{%s}stack" % VDESK_NS)
    resource = Field("{%s}resource" % VDESK_NS)
    project = Field("{%s}project" % VDESK_NS)


class Container(XMLObject):
    TAG = "domain"
    type = Field("@type")                 # lxc
    name = Field("name")
    uuid = Field("uuid")
    memory_kib = Field("memory", "size:KiB", default_unit="KiB")
    current_memory_kib = Field("currentMemory", "size:KiB", default_unit="KiB")
    vcpus = Field("vcpu", int)
    cpu_shares = Field("cputune/shares", int)
    cpu_period = Field("cputune/period", int)     # microseconds
    cpu_quota = Field("cputune/quota", int)       # microseconds of CPU time per period
    os_type = Field("os/type")            # exe
    arch = Field("os/type/@arch")
    init = Field("os/init")
    init_args = TextList("os/initarg")
    init_env = Children(InitEnv, "os/initenv")
    init_dir = Field("os/initdir")
    uid_maps = Children(IdMap, "idmap/uid")
    gid_maps = Children(IdMap, "idmap/gid")
    privnet = Field("features/privnet", "presence")   # its own network namespace even without NICs
    on_poweroff = Field("on_poweroff")
    on_reboot = Field("on_reboot")
    on_crash = Field("on_crash")
    owner = Child(ContainerOwner, "metadata/" + _META)
    emulator = Field("devices/emulator")
    filesystems = Children(Filesystem, "devices/filesystem")
    interfaces = Children(Interface, "devices/interface")
    consoles = Children(Console, "devices/console")

    # -- conveniences -------------------------------------------------------------
    @property
    def root(self) -> Filesystem | None:
        """The filesystem mounted at '/', if any."""
        return next((f for f in self.filesystems if f.target_dir == "/"), None)

    @property
    def mounts(self) -> list[Filesystem]:
        """Every filesystem but the root one."""
        return [f for f in self.filesystems if f.target_dir != "/"]

    @property
    def uid_base(self) -> int | None:
        """Host uid that root (uid 0) inside maps to, or None without a user namespace."""
        return next((m.target for m in self.uid_maps if m.start == 0), None)
