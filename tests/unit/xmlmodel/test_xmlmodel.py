"""The typed XML model: libvirt accepts what it builds, and re-reading never shows a diff."""
import libvirt
import pytest

from components import xmlmodel
from components.xmlmodel import declared_properties


def full_domain(name="model-full"):
    """A domain that sets every declared property, so round trips exercise all of them."""
    return xmlmodel.Domain(
        type="test", name=name, uuid="0f4bdc3c-7cd6-4d3f-8b6e-3e7a9a7f2f10", description="every property",
        memory_kib=1048576, current_memory_kib=786432, vcpus=2, vcpu_placement="static", vcpu_current=1,
        cpu_mode="custom", cpu_model="qemu64", cpu_model_fallback="forbid",
        vcpupins=[xmlmodel.VcpuPin(vcpu=0, cpuset="0-1"), xmlmodel.VcpuPin(vcpu=1, cpuset="3")],
        hostdevs=[xmlmodel.Hostdev.pci("0000:01:00.0"), xmlmodel.Hostdev.mdev("6f3b1a1e-3a52-5d0e-9f5b-1c8d0f6e2a11")],
        cpu_sockets=1, cpu_cores=2, cpu_threads=1, os_type="hvm", arch="i686", machine="pc",
        firmware="bios", kernel="/boot/vmlinuz", initrd="/boot/initrd.img", cmdline="root=/dev/vda console=ttyS0",
        boot_dev="hd", acpi=True, apic=True, on_poweroff="destroy", on_reboot="restart", on_crash="destroy",
        owner=xmlmodel.Owner(stack="unit", resource=name, project="vdesk"),
        disks=[xmlmodel.Disk(type="file", device="disk", driver_name="qemu", driver_type="qcow2",
                             driver_discard="unmap", source_file="/var/lib/x.qcow2", target_dev="vda",
                             target_bus="virtio", serial="disk0"),
               xmlmodel.Disk(type="volume", device="cdrom", driver_type="raw", source_pool="default-pool",
                             source_volume="seed.iso", target_dev="hdc", target_bus="ide", readonly=True)],
        interfaces=[xmlmodel.Interface(type="network", mac="52:54:00:11:22:33", source_network="default",
                                       model="virtio"),
                    xmlmodel.Interface(type="bridge", mac="52:54:00:11:22:34", source_bridge="br0", model="e1000")],
        channels=[xmlmodel.Channel(type="unix", target_type="virtio", target_name="org.qemu.guest_agent.0"),
                  xmlmodel.Channel(type="qemu-vdagent", target_type="virtio", target_name="com.redhat.spice.0",
                                   clipboard="yes", mouse_mode="client")],
        graphics=[xmlmodel.Graphics(type="vnc", autoport=False, port=5905, listen_type="address",
                                    listen_address="127.0.0.1", passwd="vncpass1",
                                    passwd_valid_to="2030-01-01T00:00:00"),
                  xmlmodel.Graphics(type="spice", listen_type="socket", listen_socket="/run/x.sock",
                                    passwd="vncpass1")],
        videos=[xmlmodel.Video(model_type="virtio", heads=1, primary="yes", resolution_x=1280, resolution_y=800)],
        inputs=[xmlmodel.Input(type="tablet", bus="virtio")],
        serials=[xmlmodel.Serial(type="file", source_path="/tmp/console.log", target_port=0)],
        consoles=[xmlmodel.Console(type="file", target_type="serial")], memballoon_model="none",
        rngs=[xmlmodel.Rng(model="virtio", backend_model="random", backend="/dev/urandom")],
        memory_source="memfd", memory_access="shared",
        shared_dirs=[xmlmodel.SharedDirectory(type="mount", accessmode="passthrough", driver_type="virtiofs",
                                              binary="/usr/lib/qemu/virtiofsd", source_dir="/srv/share",
                                              tag="docs")],
    )


def secure_boot_domain(name="model-sb"):
    """A UEFI domain with Secure Boot and a TPM 2.0, and one with its firmware spelled out (what libvirt fills in)."""
    return xmlmodel.Domain(
        type="test", name=name, memory_kib=1048576, vcpus=1, os_type="hvm", arch="x86_64", machine="q35",
        firmware="efi", loader_secure=True, smm=True,
        firmware_features=[xmlmodel.FirmwareFeature(enabled=True, name="enrolled-keys"),
                           xmlmodel.FirmwareFeature(enabled=True, name="secure-boot")],
        tpms=[xmlmodel.Tpm(model="tpm-crb", backend_type="emulator", backend_version="2.0")])


def explicit_firmware_domain(name="model-fw"):
    return xmlmodel.Domain(
        type="test", name=name, memory_kib=1048576, vcpus=1, os_type="hvm", arch="x86_64", machine="q35",
        loader="/usr/share/OVMF/OVMF_CODE_4M.ms.fd", loader_secure=True,
        nvram="/var/lib/libvirt/qemu/nvram/model-fw_VARS.fd", smm=True)


@pytest.mark.parametrize("make", [secure_boot_domain, explicit_firmware_domain])
def test_secure_boot_and_tpm_are_accepted_by_libvirt_and_reread_without_diff(conn, make):
    desired = make()
    assert xmlmodel.Domain.from_xml(desired.to_xml()) == desired
    dom = conn.defineXML(desired.to_xml())
    try:
        live = xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert desired.differences(live) == []
    finally:
        dom.undefine()


def test_domain_round_trip_through_parse_is_identical():
    dom = full_domain()
    assert xmlmodel.Domain.from_xml(dom.to_xml()) == dom


def test_domain_is_accepted_by_libvirt_and_rereads_without_diff(conn):
    desired = full_domain("model-accepted")
    dom = conn.defineXML(desired.to_xml())
    try:
        # SECURE: display passwords are shown only to callers that ask for them.
        live = xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE))
        assert desired.differences(live) == []
        assert "vncpass1" not in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        dom.create()
        assert dom.isActive()
        dom.destroy()
    finally:
        dom.undefine()


def test_differences_name_changed_properties_only():
    desired = full_domain()
    actual = desired.copy()
    actual.memory_kib = 2097152
    actual.interfaces[1].mac = "52:54:00:00:00:99"
    assert desired.differences(actual) == ["memory_kib", "interfaces[1].mac"]


def test_unset_properties_are_libvirts_to_choose():
    desired = xmlmodel.Domain(type="test", name="x", memory_kib=1024, vcpus=1)
    actual = desired.copy()
    actual.uuid, actual.machine = "c7a5fdbd-cdaf-9455-926a-d65c16db1809", "pc-i440fx-7.2"
    assert desired.differences(actual) == []


def test_memory_units_are_normalised_when_reading():
    xml = "<domain type='test'><name>u</name><memory unit='GiB'>2</memory><vcpu>1</vcpu></domain>"
    assert xmlmodel.Domain.from_xml(xml).memory_kib == 2 * 1024 * 1024


def test_network_round_trip_on_libvirt(conn):
    desired = xmlmodel.Network(
        name="model-net", forward_mode="nat", bridge_name="vd-model", bridge_stp=True, mtu=1400,
        mac="52:54:00:aa:bb:cc", domain_name="desk.lan",
        owner=xmlmodel.NetworkOwner(stack="unit", resource="model-net", project="vdesk"),
        dns_hosts=[xmlmodel.DnsHost(ip="10.9.0.7", hostnames=["files", "files.desk.lan"])],
        ips=[xmlmodel.IP(address="10.9.0.1", prefix=24,
                         dhcp_ranges=[xmlmodel.DhcpRange(start="10.9.0.10", end="10.9.0.99")],
                         dhcp_hosts=[xmlmodel.DhcpHost(mac="52:54:00:00:00:10", ip="10.9.0.5", name="alice")]),
             xmlmodel.IP(family="ipv6", address="fd00:9::1", prefix=64)])
    assert xmlmodel.Network.from_xml(desired.to_xml()) == desired
    net = conn.networkDefineXML(desired.to_xml())
    try:
        assert desired.differences(xmlmodel.Network.from_xml(net.XMLDesc(0))) == []
    finally:
        net.undefine()


def test_pool_and_volume_round_trip_on_libvirt(conn, tmp_path):
    pool_model = xmlmodel.Pool(type="dir", name="model-pool", target_path=str(tmp_path))
    pool = conn.storagePoolDefineXML(pool_model.to_xml(), 0)
    try:
        pool.create(0)
        assert pool_model.differences(xmlmodel.Pool.from_xml(pool.XMLDesc(0))) == []
        vol_model = xmlmodel.Volume(name="v.qcow2", capacity=3 * 1024**3, format="qcow2")
        vol = pool.createXML(vol_model.to_xml(), 0)
        live = xmlmodel.Volume.from_xml(vol.XMLDesc(0))
        assert live.capacity == 3 * 1024**3 and live.path.endswith("v.qcow2")
        vol.delete(0)
    finally:
        pool.destroy()
        pool.undefine()


def test_owner_metadata_uses_vdesk_namespace():
    xml = full_domain().to_xml()
    assert 'xmlns:vdesk="urn:vdesk:1"' in xml
    assert xmlmodel.Domain.from_xml(xml).owner == xmlmodel.Owner(stack="unit", resource="model-full", project="vdesk")


@pytest.mark.parametrize("cls,sample", [
    (xmlmodel.Domain, full_domain()),
    (xmlmodel.Disk, full_domain().disks[0]),
    (xmlmodel.Interface, full_domain().interfaces[0]),
    (xmlmodel.Graphics, full_domain().graphics[0]),
    (xmlmodel.SharedDirectory, full_domain().shared_dirs[0]),
    (xmlmodel.Channel, full_domain().channels[0]),
    (xmlmodel.Video, full_domain().videos[0]),
    (xmlmodel.Input, full_domain().inputs[0]),
    (xmlmodel.FirmwareFeature, secure_boot_domain().firmware_features[0]),
    (xmlmodel.Tpm, secure_boot_domain().tpms[0]),
])
def test_every_declared_property_is_exercised(cls, sample):
    """Guard: a property no test sets is a property nobody knows works."""
    unset = [name for name, _ in declared_properties(cls)
             if all(getattr(s, name) in (None, []) for s in _samples_of(cls))]
    assert unset == [], f"{cls.__name__} properties never exercised: {unset}"


def _samples_of(cls):
    dom = full_domain()
    return {xmlmodel.Domain: [dom, secure_boot_domain(), explicit_firmware_domain()], xmlmodel.Disk: dom.disks, xmlmodel.Interface: dom.interfaces,
            xmlmodel.Graphics: dom.graphics, xmlmodel.SharedDirectory: dom.shared_dirs, xmlmodel.Channel: dom.channels,
            xmlmodel.Video: dom.videos, xmlmodel.Input: dom.inputs,
            xmlmodel.FirmwareFeature: secure_boot_domain().firmware_features, xmlmodel.Tpm: secure_boot_domain().tpms}[cls]
