"""Secure Boot and a TPM 2.0: the domain XML (golden), the provider's checks, libvirt's test driver, the config paths."""
import libvirt
import pytest
from lxml import etree

from components import xmlmodel
from components.config.resolve import parse
from components.desktop.settings import DesktopSettings, FirmwareFacts, firmware_problems
from components.errors import InputError
from components.image.component import recipe_files
from components.images.recipe import Recipe
from components.resources import lifecycle
from components.resources.domain import DomainProvider, desired_model

URI = "test:///default"


def _props(**over):
    return {"host_uri": URI, "name": "sb-unit", "owner": "unit", "domain_type": "test", "memory": 512 * 1024**2,
            "vcpus": 1, "boot": "uefi", "machine": "q35", "secure_boot": True, "tpm": True, "disks": [], "nics": [], **over}


GOLDEN_OS = """\
<os firmware="efi">
  <type arch="x86_64" machine="q35">hvm</type>
  <firmware>
    <feature enabled="yes" name="enrolled-keys"/>
    <feature enabled="yes" name="secure-boot"/>
  </firmware>
  <loader secure="yes"/>
  <boot dev="hd"/>
</os>
"""
GOLDEN_FEATURES = """\
<features>
  <acpi/>
  <apic/>
  <smm state="on"/>
</features>
"""
GOLDEN_TPM = """\
<tpm model="tpm-crb">
  <backend type="emulator" version="2.0"/>
</tpm>
"""


def _element(xml: str, path: str) -> str:
    el = etree.fromstring(xml.encode()).find(path)
    el.tail = None
    etree.indent(el)
    return etree.tostring(el, encoding="unicode") + "\n"


def test_secure_boot_and_tpm_domain_xml_is_golden():
    xml = desired_model(_props()).to_xml()
    assert _element(xml, "os") == GOLDEN_OS
    assert _element(xml, "features") == GOLDEN_FEATURES
    assert _element(xml, "devices/tpm") == GOLDEN_TPM


def test_without_them_the_xml_is_as_before():
    xml = desired_model(_props(secure_boot=False, tpm=False)).to_xml()
    assert "<firmware>" not in xml and "loader" not in xml and "smm" not in xml and "<tpm" not in xml
    assert '<os firmware="efi">' in xml        # plain UEFI: libvirt's own choice of firmware


def test_secure_boot_and_tpm_on_the_test_driver_reread_without_diff_and_undefine_cleanly(conn):
    dp = DomainProvider()
    checked = dp.check({}, _props())
    assert checked.failures == []
    created = dp.create(checked.inputs)
    try:
        dom = conn.lookupByName("sb-unit")
        live = xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        assert desired_model(checked.inputs).differences(live) == []
        assert live.loader_secure is True and live.smm is True
        assert [(t.model, t.backend_type, t.backend_version) for t in live.tpms] == [("tpm-crb", "emulator", "2.0")]
        read = dp.read(created.id, created.outs)
        assert read.outs["tpm"] is True
        assert dp.diff(created.id, read.outs, checked.inputs).changes is False
    finally:
        dp.delete(created.id, created.outs)    # the test driver refuses the TPM and NVRAM flags: the fallback
    assert "sb-unit" not in [d.name() for d in conn.listAllDomains(0)]


def test_undefine_asks_for_the_tpm_state_and_nvram_to_go():
    assert lifecycle._UNDEFINE_FLAGS & libvirt.VIR_DOMAIN_UNDEFINE_TPM
    assert lifecycle._UNDEFINE_FLAGS & libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    assert not lifecycle._UNDEFINE_FLAGS & libvirt.VIR_DOMAIN_UNDEFINE_KEEP_TPM
    calls = []

    class Dom:
        def undefineFlags(self, flags):
            calls.append(flags)

    lifecycle.undefine(Dom())
    assert calls == [lifecycle._UNDEFINE_FLAGS]


def test_a_tpm_removed_behind_vdesks_back_is_drift(conn):
    dp = DomainProvider()
    checked = dp.check({}, _props(name="sb-drift"))
    created = dp.create(checked.inputs)
    try:
        dom = conn.lookupByName("sb-drift")
        model = xmlmodel.Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        model.tpms = []
        conn.defineXML(model.to_xml())
        read = dp.read(created.id, created.outs)
        assert read.outs["tpm"] is False
        diff = dp.diff(created.id, read.outs, checked.inputs)
        assert "tpm" in (diff.replaces or [])
    finally:
        dp.delete(created.id, created.outs)


@pytest.mark.parametrize("over,message", [
    ({"boot": "kernel", "kernel": "/boot/vmlinuz"},
     "secure_boot needs boot 'uefi' (an image with its own UEFI bootloader), got boot 'kernel'"),
    ({"machine": "pc"}, "secure_boot needs the q35 machine type (its firmware needs SMM), got machine 'pc'"),
    ({"machine": None}, "secure_boot needs the q35 machine type (its firmware needs SMM), got machine 'unset (pc)'"),
])
def test_the_provider_refuses_secure_boot_without_uefi_or_q35(over, message):
    failures = DomainProvider().check({}, _props(**over)).failures
    assert [(f.property, f.reason) for f in failures] == [("secure_boot", message)]


def test_versioned_q35_is_q35():
    assert DomainProvider().check({}, _props(machine="pc-q35-7.2")).failures == []


# --- recipes and images ----------------------------------------------------------------------------

def test_a_uefi_recipe_is_its_own_image_that_boots_uefi():
    bios, uefi = Recipe.parse({}, check_packages=False), Recipe.parse({"firmware": "uefi"}, check_packages=False)
    assert bios.as_dict() == Recipe.parse({"firmware": "bios"}, check_packages=False).as_dict()
    assert "firmware" not in bios.as_dict()           # recipes written before the choice keep their form
    assert uefi.as_dict()["firmware"] == "uefi" and uefi.hash != bios.hash
    assert uefi.name == "debian12-uefi" and uefi.boot == "uefi" and bios.boot == "kernel"
    assert {"shim-signed", "grub-efi-amd64-signed", "linux-image-amd64"} <= set(uefi.installs())
    assert "shim-signed" not in bios.installs() and "linux-image-cloud-amd64" in bios.installs()
    files = recipe_files("sb", uefi)
    assert files.boot == "uefi" and files.kernel is None and files.initrd is None and files.cmdline is None


def test_a_recipe_with_an_unknown_firmware_is_named():
    with pytest.raises(InputError) as err:
        Recipe.parse({"firmware": "coreboot"}, "images.sb.recipe", check_packages=False)
    assert err.value.problems == [("images.sb.recipe.firmware",
                                   "'coreboot' is not a firmware vdesk builds images for (known: bios, uefi)")]


# --- the stack file ----------------------------------------------------------------------------------

def _config(profile=None, desktop=None, image=None, hosts=None):
    raw = {"hosts": hosts or {"local": {}}, "pools": {"main": {"host": "local"}},
           "networks": {"lan": {"host": "local", "cidr": "10.64.0.0/24"}},
           "images": {"sb": image or {"recipe": {"firmware": "uefi"}}, "debian12": {"golden": "debian12"}},
           "profiles": {"x": {"pool": "main", "network": "lan", "image": "sb", "machine": "q35", "secure_boot": True,
                              "tpm": True, **(profile or {})}},
           "users": [{"name": "ann", "profile": "x"}]}
    if desktop is not None:
        raw["desktops"] = {"d": {"pool": "main", "network": "lan", "image": "sb", **desktop}}
    return parse(raw, stack="dev")


def test_secure_boot_and_tpm_reach_the_users_desktops(monkeypatch):
    monkeypatch.setattr("components.config.resolve_desktops.swtpm_installed", lambda: True)
    cfg = _config(desktop={"machine": "pc-q35-7.2", "secure_boot": True})
    assert (cfg.desktops["ann"].settings.secure_boot, cfg.desktops["ann"].settings.tpm) == (True, True)
    assert (cfg.desktops["d"].settings.secure_boot, cfg.desktops["d"].settings.tpm) == (True, False)
    assert cfg.images["sb"].boot == "uefi" and cfg.images["debian12"].boot == "kernel"


@pytest.mark.parametrize("kwargs,path,message", [
    ({"profile": {"image": "debian12"}}, "profiles.x.secure_boot",
     "image 'debian12' boots its kernel directly (firmware bios), so nothing is verified: use an image built for "
     "UEFI (a recipe with firmware: uefi, or a path image with boot: uefi)"),
    ({"profile": {"machine": "pc"}}, "profiles.x.secure_boot",
     "needs the q35 machine type (Secure Boot's firmware needs SMM), got machine 'pc': set machine: q35"),
    ({"profile": {"machine": None}}, "profiles.x.secure_boot",
     "needs the q35 machine type (Secure Boot's firmware needs SMM), got machine 'unset (pc)': set machine: q35"),
    ({"desktop": {"secure_boot": True}}, "desktops.d.secure_boot",
     "needs the q35 machine type (Secure Boot's firmware needs SMM), got machine 'unset (pc)': set machine: q35"),
    ({"profile": {"secure_boot": "yes"}}, "profiles.x.secure_boot", "must be true or false"),
    ({"profile": {"tpm": 2}}, "profiles.x.tpm", "must be true or false"),
    ({"image": {"recipe": {"firmware": "coreboot"}}}, "images.sb.recipe.firmware",
     "'coreboot' is not one of bios, uefi"),
])
def test_bad_secure_boot_and_tpm_settings_are_named(monkeypatch, kwargs, path, message):
    monkeypatch.setattr("components.config.resolve_desktops.swtpm_installed", lambda: True)
    with pytest.raises(InputError) as err:
        _config(**kwargs)
    assert (path, message) in err.value.problems, err.value.problems


def test_a_tpm_needs_swtpm_on_the_embedded_host(monkeypatch):
    monkeypatch.setattr("components.config.resolve_desktops.swtpm_installed", lambda: False)
    with pytest.raises(InputError) as err:
        _config()
    assert err.value.problems == [("profiles.x.tpm", "host 'local' cannot emulate a TPM: swtpm and swtpm_setup are "
                                                     "not installed (Debian: apt-get install swtpm swtpm-tools)")]


def test_a_remote_hosts_swtpm_is_its_libvirts_to_report(monkeypatch):
    monkeypatch.setattr("components.config.resolve_desktops.swtpm_installed", lambda: False)
    cfg = _config(hosts={"local": {"uri": "qemu+ssh://admin@kvm2/system"}})
    assert cfg.desktops["ann"].settings.tpm is True


def test_the_component_api_checks_the_same():
    own = DesktopSettings(secure_boot=True, tpm=True, machine="q35")
    assert firmware_problems("alice", own, FirmwareFacts(image_boot="uefi", host_swtpm=True, host_name="local")) == []
    assert firmware_problems("alice", own, FirmwareFacts(image_boot="bios", host_swtpm=False,
                                                         host_name="local")) == [
        ("alice.secure_boot", "its image boots with BIOS: use an image built for UEFI (a recipe with firmware: "
                              "uefi, or a path image with boot: uefi)"),
        ("alice.tpm", "host 'local' cannot emulate a TPM: swtpm and swtpm_setup are not installed (Debian: "
                      "apt-get install swtpm swtpm-tools)")]


def test_a_domain_from_before_these_settings_is_not_replaced(conn):
    """State written before secure_boot and tpm existed has neither key: no diff, so no new domain."""
    dp = DomainProvider()
    checked = dp.check({}, _props(name="sb-old", boot="kernel", kernel="/boot/vmlinuz", machine=None,
                                  secure_boot=None, tpm=None))
    assert checked.failures == [] and checked.inputs.get("secure_boot") is None
    created = dp.create(checked.inputs)
    try:
        old_state = {k: v for k, v in dp.read(created.id, created.outs).outs.items() if k not in ("secure_boot", "tpm")}
        diff = dp.diff(created.id, old_state, checked.inputs)
        assert diff.changes is False and not diff.replaces
    finally:
        dp.delete(created.id, created.outs)


def test_an_imported_domain_keeps_its_secure_boot_and_tpm(conn):
    from components.resources.importing import read_for_import
    conn.defineXML(desired_model(_props(name="sb-import")).to_xml())
    try:
        found = read_for_import(f"vdesk:domain:sb-import@{URI}", stack="unit")   # its own stack
        assert (found.inputs["boot"], found.inputs["secure_boot"], found.inputs["tpm"]) == ("uefi", True, True)
    finally:
        conn.lookupByName("sb-import").undefine()
