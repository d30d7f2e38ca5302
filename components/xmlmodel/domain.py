"""The domain (virtual machine) XML model: only what vdesk declares or reads back."""
from __future__ import annotations

from .base import VDESK_NS, Child, Children, Field, XMLObject
from .hostdev import Hostdev, VcpuPin

_META = "{%s}desktop" % VDESK_NS


class Disk(XMLObject):
    TAG = "disk"
    type = Field("@type")                 # file | volume
    device = Field("@device")             # disk | cdrom
    driver_name = Field("driver/@name")
    driver_type = Field("driver/@type")   # qcow2 | raw
    driver_discard = Field("driver/@discard")
    source_file = Field("source/@file")
    source_pool = Field("source/@pool")
    source_volume = Field("source/@volume")
    target_dev = Field("target/@dev")
    target_bus = Field("target/@bus")
    readonly = Field("readonly", "presence")
    serial = Field("serial")


class Interface(XMLObject):
    TAG = "interface"
    type = Field("@type")                 # network | bridge
    mac = Field("mac/@address")
    source_network = Field("source/@network")
    source_bridge = Field("source/@bridge")
    model = Field("model/@type")


class Channel(XMLObject):
    TAG = "channel"
    type = Field("@type")                 # unix | qemu-vdagent
    target_type = Field("target/@type")   # virtio
    target_name = Field("target/@name")   # org.qemu.guest_agent.0 | com.redhat.spice.0
    clipboard = Field("source/clipboard/@copypaste")   # qemu-vdagent: yes (clipboard through VNC)
    mouse_mode = Field("source/mouse/@mode")           # qemu-vdagent: client | server


class Graphics(XMLObject):
    TAG = "graphics"
    type = Field("@type")                 # vnc | spice
    autoport = Field("@autoport", bool)
    port = Field("@port", int)
    listen_type = Field("listen/@type")   # address | socket
    listen_address = Field("listen/@address")
    listen_socket = Field("listen/@socket")
    passwd = Field("@passwd")             # only in XMLDesc with VIR_DOMAIN_XML_SECURE
    passwd_valid_to = Field("@passwdValidTo")   # UTC, YYYY-MM-DDTHH:MM:SS


class Serial(XMLObject):
    TAG = "serial"
    type = Field("@type")                 # pty | file
    source_path = Field("source/@path")
    target_port = Field("target/@port", int)
    log_file = Field("log/@file")         # what the guest printed, kept by virtlogd (rotated)
    log_append = Field("log/@append")     # on | off: off starts each boot's log afresh


class Console(XMLObject):
    TAG = "console"
    type = Field("@type")
    target_type = Field("target/@type")


class Rng(XMLObject):
    """virtio-rng: without it a guest under TCG can wait minutes for entropy."""
    TAG = "rng"
    model = Field("@model")
    backend_model = Field("backend/@model")
    backend = Field("backend")


class Video(XMLObject):
    TAG = "video"
    model_type = Field("model/@type")     # virtio | vga | cirrus | qxl
    heads = Field("model/@heads", int)
    primary = Field("model/@primary")     # yes
    resolution_x = Field("model/resolution/@x", int)   # the display's preferred mode (EDID)
    resolution_y = Field("model/resolution/@y", int)


class Input(XMLObject):
    TAG = "input"
    type = Field("@type")                 # tablet | mouse | keyboard
    bus = Field("@bus")                   # virtio | usb | ps2


class FirmwareFeature(XMLObject):
    """<os><firmware><feature enabled='yes' name='secure-boot'/>: what libvirt's firmware autoselection must pick."""
    TAG = "feature"
    enabled = Field("@enabled", bool)
    name = Field("@name")                 # secure-boot | enrolled-keys


class Tpm(XMLObject):
    """A TPM: <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm> (swtpm, run by libvirt)."""
    TAG = "tpm"
    model = Field("@model")               # tpm-crb | tpm-tis
    backend_type = Field("backend/@type")         # emulator | passthrough
    backend_version = Field("backend/@version")   # 2.0 | 1.2


class Owner(XMLObject):
    """vdesk's own metadata: which stack (of which Pulumi project) and resource an object belongs to."""
    TAG = _META
    stack = Field("{%s}stack" % VDESK_NS)
    resource = Field("{%s}resource" % VDESK_NS)
    project = Field("{%s}project" % VDESK_NS)


class SharedDirectory(XMLObject):
    """A host directory shared into a VM through virtiofs (its mount tag is target/@dir)."""
    TAG = "filesystem"
    type = Field("@type")                 # mount
    accessmode = Field("@accessmode")     # passthrough
    driver_type = Field("driver/@type")   # virtiofs
    binary = Field("binary/@path")        # the virtiofsd to run (vdesk's read-only wrapper for read-only shares)
    source_dir = Field("source/@dir")
    tag = Field("target/@dir")


class Domain(XMLObject):
    TAG = "domain"
    type = Field("@type")                 # kvm | qemu
    name = Field("name")
    uuid = Field("uuid")
    description = Field("description")
    memory_kib = Field("memory", "size:KiB", default_unit="KiB")
    current_memory_kib = Field("currentMemory", "size:KiB", default_unit="KiB")
    vcpus = Field("vcpu", int)            # the maximum: what can be hot-plugged without a restart
    vcpu_placement = Field("vcpu/@placement")    # static | auto
    vcpu_current = Field("vcpu/@current", int)   # online at boot; libvirt omits it when all are
    cpu_mode = Field("cpu/@mode")
    cpu_model = Field("cpu/model")        # a named CPU model (mode custom)
    cpu_model_fallback = Field("cpu/model/@fallback")   # forbid: never silently another model
    cpu_sockets = Field("cpu/topology/@sockets", int)
    cpu_cores = Field("cpu/topology/@cores", int)
    cpu_threads = Field("cpu/topology/@threads", int)
    os_type = Field("os/type")
    arch = Field("os/type/@arch")
    machine = Field("os/type/@machine")
    firmware = Field("os/@firmware")      # efi | bios (libvirt autoselects loader + nvram)
    firmware_features = Children(FirmwareFeature, "os/firmware/feature")
    loader = Field("os/loader")           # the firmware's code (libvirt fills it in)
    loader_secure = Field("os/loader/@secure", bool)   # yes: SMM protects the variable store (Secure Boot)
    nvram = Field("os/nvram")             # the VM's own copy of the variable store (libvirt fills it in)
    kernel = Field("os/kernel")
    initrd = Field("os/initrd")
    cmdline = Field("os/cmdline")
    boot_dev = Field("os/boot/@dev")
    acpi = Field("features/acpi", "presence")
    apic = Field("features/apic", "presence")
    smm = Field("features/smm/@state", "onoff")        # Secure Boot's firmware needs SMM (q35 only)
    on_poweroff = Field("on_poweroff")
    on_reboot = Field("on_reboot")
    on_crash = Field("on_crash")
    owner = Child(Owner, "metadata/" + _META)
    disks = Children(Disk, "devices/disk")
    interfaces = Children(Interface, "devices/interface")
    channels = Children(Channel, "devices/channel")
    graphics = Children(Graphics, "devices/graphics")
    videos = Children(Video, "devices/video")
    inputs = Children(Input, "devices/input")
    serials = Children(Serial, "devices/serial")
    consoles = Children(Console, "devices/console")
    rngs = Children(Rng, "devices/rng")
    memballoon_model = Field("devices/memballoon/@model")   # none: the accelerator probe wants no balloon
    hostdevs = Children(Hostdev, "devices/hostdev")     # PCI devices and mediated devices (vGPUs) of the host
    vcpupins = Children(VcpuPin, "cputune/vcpupin")     # the host CPUs each vCPU may run on
    tpms = Children(Tpm, "devices/tpm")
    memory_source = Field("memoryBacking/source/@type")    # memfd: shared with virtiofsd
    memory_access = Field("memoryBacking/access/@mode")    # shared
    shared_dirs = Children(SharedDirectory, "devices/filesystem")
