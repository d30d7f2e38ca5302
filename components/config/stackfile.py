"""The stack file as written: one pydantic model per kind of `vdesk:` entry, with types, defaults and descriptions.

A model checks what a value can say on its own (a size, a name, a CIDR). What
depends on other entries (references, placement, overlaps, inheritance) is
resolve.py's. problems.py words the errors; schema.py publishes these models
as docs/stack.schema.json, whose descriptions editors show.
"""
from __future__ import annotations

import os
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, PlainValidator, create_model, model_validator

# A desktop's and a container's own settings and the kinds of values are declared there; the stack file adds
# names and references.
from ..container.settings import ContainerSettings
from ..desktop.settings import Checks, Cpu, Duration, Settings, Wording, _rule
from ..desktop.settings import DesktopSettings as OwnSettings
from ..desktop.settings import BY_USER, overridable
from ..desktop.users import Group, Groups, Login
from ..desktop.users import DesktopUser as Account
# (kinds shared with the providers)
from ..kinds import (NETWORK_MODES, Address, Cidr6, Count, DhcpHost, DhcpRange, DnsHost, DnsName, FileServer,
                     HostPath, Interface, MemorySize, NetfsFormat, NetworkMode, NonEmpty, PoolType, Timeouts,
                     VolumeGroup)
from ..kinds import ip_problem as _ip
from ..names import NAME_PATTERN, name_problem, network_problem
from .kubevirt_host import HostKind

EMBEDDED = "embedded"
ACCELERATORS = ("kvm", "tcg", "auto")
ADDRESS_SOURCES = ("lease", "agent", "arp")
BOOT_MODES = ("bios", "uefi")
GOLDEN_IMAGES = ("debian12",)
DEFAULT_TEMPLATE = "desktop"
CONFIG_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
ALL_HOSTS = "all"
HOW_TO_SET_A_SECRET = ("store the password with `pulumi config set --secret vdesk:<key>` and write that <key> "
                       "here")
_NOT_A_SECRET = f"must name a secret vdesk config key, e.g. alice-password (value not shown): {HOW_TO_SET_A_SECRET}"




def _ref(kind: str) -> Any:
    """A string naming an entry of another section (resolve.py checks that it exists)."""
    article = "an" if kind[0] in "aeiou" else "a"
    return Annotated[str, Wording(expected=f"the name of {article} {kind}, got {{got}}",
                                  missing=f"is required (the name of one of the {kind}s)")]




def _adopt(value) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and not (message := name_problem(value)):
        return value
    raise ValueError(message if isinstance(value, str)
                     else f"must be true, false or the name of the existing object, got {value!r}")


def _address_sources(value) -> list[str]:
    if not isinstance(value, list) or not value or any(x not in ADDRESS_SOURCES for x in value):
        raise ValueError(f"must be a non-empty list of {', '.join(ADDRESS_SOURCES)}, got {value!r}")
    return value


def _hosts(value):
    """`all`, or a non-empty list of host names (resolve.py checks that they are declared)."""
    if value == ALL_HOSTS or (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        return value
    got = "an empty list" if value == [] else f"{value!r}" if isinstance(value, str) else type(value).__name__
    raise ValueError(f"must be a non-empty list of host names, or all, got {got}")




def _not_a_section(key: str) -> str | None:
    return _NOT_A_SECRET if key in StackFile.model_fields else None


# The kinds of values: what each accepts, how editors see it, and how its problems are worded.
Name = Annotated[str, _rule(name_problem), Wording(expected="a name (lowercase letters, digits and '-'), got {got}")]
NameValue = Annotated[Name, Field(json_schema_extra={"pattern": NAME_PATTERN})]
Adopt = Annotated[bool | str, PlainValidator(_adopt, json_schema_input_type=bool | NameValue)]
Uri = Annotated[str, _rule(lambda v: None if v == EMBEDDED or "://" in v
                           else f"{v!r} must be 'embedded' or a libvirt URI such as qemu:///system"),
                Wording(expected="'embedded' or a libvirt URI such as qemu:///system, got {got}")]
UserName = Annotated[Login, _rule(lambda v: f"{v!r} is not a usable user name: it also names the user's desktop, "
                                            "so use lowercase letters, digits and '-', starting with a letter and "
                                            "not ending with '-'" if name_problem(v) else None)]
SecretKey = Annotated[str, Field(pattern=CONFIG_KEY_PATTERN), _rule(_not_a_section), Wording(invalid=_NOT_A_SECRET)]
Cidr = Annotated[str, _rule(network_problem), Wording(expected="a network in CIDR form, e.g. 10.77.0.0/24")]
SharePath = Annotated[str, Field(pattern="^/[^,\n]*$"),
                      Wording(invalid="{input} must be an absolute directory path on the host, without commas")]
DisplayListen = Annotated[str, _rule(lambda v: None if v in ("socket", "loopback") or not _ip(None)(v)
                                     else f"{v!r} is not socket, loopback or an IP address"),
                          Wording(expected="socket, loopback or an IP address, got {got}")]
Device = Annotated[str, _rule(lambda v: None if os.path.isabs(v) and os.path.normpath(v) == v
                              else f"{v!r} must be an absolute block device path, e.g. /dev/sdb"),
                   Wording(expected="an absolute block device path, e.g. /dev/sdb, got {got}")]
Devices = Annotated[list[Device], Field(min_length=1),
                    Wording(expected="a non-empty list of block device paths, e.g. [/dev/sdb]")]
Export = Annotated[str, Wording(expected="a path (or, for cifs, a share name), got {got}")]
AddressSources = Annotated[list[str], PlainValidator(
    _address_sources, json_schema_input_type=Annotated[list[Literal[ADDRESS_SOURCES]], Field(min_length=1)])]
Golden = Annotated[Literal[GOLDEN_IMAGES], Wording(invalid="{input} is not an image vdesk builds (known: {options})")]
ImageFile = Annotated[str, _rule(lambda v: None if os.path.isfile(v) else f"{v!r} does not exist or is not a file")]
Template = Annotated[str, Wording(expected="the name of a template under templates/user-data/, e.g. desktop, "
                                           "got {got}")]
HostRef, PoolRef, NetworkRef = _ref("host"), _ref("pool"), _ref("network")
ImageRef, ProfileRef, ShareRef = _ref("image"), _ref("profile"), _ref("share")
Hosts = Annotated[list[str] | str, PlainValidator(
    lambda v: _hosts(v), json_schema_input_type=Annotated[list[str], Field(min_length=1)] | Literal[ALL_HOSTS])]




class Overcommit(Settings):
    """Ratios of what running desktops may ask for to what the host has."""
    record: ClassVar[bool] = True
    memory: Annotated[float, Field(gt=0, le=4)] | None = Field(None, description="Memory (default 1.0: never more "
                                                                                  "than the host has).")
    cpu: Annotated[float, Field(gt=0, le=64)] | None = Field(None, description="vCPUs per host CPU (default 4.0).")

    @model_validator(mode="before")
    @classmethod
    def _integers_are_ratios(cls, data: Any) -> Any:
        """`memory: 1` is a ratio like `1.0` (YAML gives an integer)."""
        if isinstance(data, dict):
            return {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in data.items()}
        return data


class HostDisplay(Settings):
    """Where a host's desktop displays listen."""
    noun: ClassVar[str] = "display setting"
    listen: DisplayListen | None = Field(None, description="socket (a unix socket: the default on the embedded "
                                                           "host), loopback (the default elsewhere), or an IP "
                                                           "address, explicitly.")
    spice: bool | None = Field(None, description="A SPICE display beside VNC (default: where the host's qemu has "
                                                 "it).")


class HostConsole(Settings):
    """The embedded host's browser console (a websockify gateway serving noVNC). The gateway is shared by every
    stack on the host: its bind, port and certificate are the host policy's `console`, which a stack may restate
    but not change."""
    noun: ClassVar[str] = "console setting"
    bind: str = Field("127.0.0.1", description="The address the gateway listens on (the host's: restated only).")
    port: Annotated[int, Field(ge=0, le=65535)] = Field(0, description="Its port (0: a free one, kept; the "
                                                                       "host's: restated only).")
    tls_cert: HostPath | None = Field(None, description="A PEM certificate: https and wss only (the host's: "
                                                        "restated only).")
    tls_key: HostPath | None = Field(None, description="Its key, unless the certificate file holds it (the host's: "
                                                       "restated only).")
    link_validity: Duration = Field("1h", validate_default=True,
                                    description="How long this stack's console links work, e.g. 15m, 1h, 12h.")




class Host(HostKind):
    """A KVM host: vdesk's own libvirtd on this machine, or any libvirt URI; or a KubeVirt cluster's namespace."""
    noun: ClassVar[str] = "host"
    uri: Uri = Field(EMBEDDED, description="`embedded` (a project-private libvirtd on this machine) or a libvirt URI, "
                                           "e.g. qemu:///system or qemu+ssh://host/system.")
    accelerator: Literal[ACCELERATORS] = Field(
        "auto", description="kvm, tcg (emulation), or auto: boot a probe kernel under kvm, fall back to tcg.")
    overcommit: Overcommit | None = Field(None, description="How far its running desktops may ask for more than "
                                                            "it has: {memory: 1.0, cpu: 4.0} by default.")
    display: HostDisplay | None = Field(None, description="Where its desktops' displays listen.")
    console: HostConsole | None = Field(None, description="The embedded host's browser console gateway.")


class Pool(Settings):
    """A libvirt storage pool that holds the desktops' disks and seeds."""
    noun: ClassVar[str] = "pool"
    host: HostRef | None = Field(None, description="The host it is on (or `hosts`).")
    hosts: Hosts | None = Field(None, description="Several hosts, or all: one pool of this name on each, for "
                                                  "desktops placed across them.")
    type: PoolType = Field("dir", description="dir (a directory), logical (an LVM volume group) or "
                                                         "netfs (a mounted network share).")
    path: HostPath | None = Field(None, description="dir and netfs: its directory on the host (default: under the "
                                                    "host's pool root). Required to adopt a pool by name.")
    source_devices: Devices | None = Field(
        None, description="logical: block devices vdesk builds the volume group on; they must hold no data.")
    source_name: VolumeGroup | None = Field(
        None, description="logical: the volume group (without source_devices it must exist, and is kept on "
                          "destroy).")
    source_format: NetfsFormat | None = Field(None, description="netfs: the share's protocol "
                                                                           "(default auto).")
    source_host: FileServer | None = Field(None, description="netfs: the file server's host name or address.")
    source_dir: Export | None = Field(None, description="netfs: the exported directory (cifs: the share's name).")
    adopt: Adopt = Field(False, description="true: take over the existing pool <prefix>-<name>; a name: take over "
                                            "that pool (e.g. default).")
    keep_on_destroy: bool = Field(False, description="Leave the pool on the host at destroy.")


class Network(Settings):
    """A libvirt virtual network, or an existing host bridge (mode: bridge)."""
    noun: ClassVar[str] = "network"
    host: HostRef | None = Field(None, description="The host it is on (or `hosts`).")
    hosts: Hosts | None = Field(None, description="Several hosts, or all: one network of this name on each "
                                                  "(each host's guests are on their own).")
    cidr: Cidr | None = Field(None, description="Its IPv4 or IPv6 network, e.g. 10.77.0.0/24 (IPv4: /29 or "
                                                "larger). Required, except with mode: bridge, where it describes "
                                                "the LAN.")
    cidr6: Cidr6 | None = Field(None, description="An IPv6 prefix beside an IPv4 cidr (dual stack, with DHCPv6).")
    mode: NetworkMode = Field("nat", description="nat, isolated, route, open, or bridge (guests join "
                                                            "the existing host bridge named by `bridge`).")
    bridge: Interface | None = Field(None, description="mode: bridge: the existing host bridge, e.g. br0.")
    dhcp: bool | None = Field(None, description="Hand out addresses by DHCP (default: true, except on a bridge).")
    dhcp_range: Annotated[DhcpRange, Wording(expected="{start, end}, two IPv4 addresses")] | None = Field(
        None, description="A narrower IPv4 DHCP pool (default: every address after the gateway).")
    domain: DnsName | None = Field(None, description="The DNS domain of its guests.")
    dhcp_hosts: list[DhcpHost] = Field([], description="DHCP reservations; changed in place.")
    dns_hosts: list[DnsHost] = Field([], description="DNS records; changed in place.")
    address_sources: AddressSources | None = Field(
        None, description="Where the readiness gate learns a guest's address, in order: lease, agent (qemu guest "
                          "agent), arp. Default: [lease, agent] with DHCP, else [agent].")
    adopt: Adopt = Field(False, description="true: take over the existing network <prefix>-<name>; a name: take "
                                            "over that network (e.g. default).")
    keep_on_destroy: bool = Field(False, description="Leave the network on the host at destroy.")


class ImageRecipe(Settings):
    """What vdesk builds into an image, offline, from Debian's packages; cached by a hash of the recipe."""
    noun: ClassVar[str] = "recipe"
    base: Literal["debian12"] = Field("debian12", description="The distribution: debian12.")
    desktop: str = Field("none", description="The desktop environment: none, xfce or lxqt (a display manager "
                                             "and an X session).")
    packages: list[NonEmpty] = Field([], description="More Debian packages (checked against Debian's index at "
                                                     "preview).")
    locale: str = Field("en_US.UTF-8", description="The system locale, e.g. de_DE.UTF-8.")
    keyboard: str = Field("us", description="The keyboard layout, e.g. de.")
    timezone: str = Field("Etc/UTC", description="The time zone, e.g. Europe/Berlin.")
    firmware: Literal["bios", "uefi"] = Field(
        "bios", description="bios: an ext4 root booted by direct kernel boot; uefi: a GPT disk with Debian's "
                            "Microsoft-signed shim, signed GRUB and signed kernel, which boots with Secure Boot "
                            "enforced.")


class Image(Settings):
    """A disk image desktops are made from: one vdesk builds from a recipe, its golden console image, or your own."""
    noun: ClassVar[str] = "image"
    recipe: ImageRecipe | None = Field(None, description="Build it from this recipe (a graphical desktop needs "
                                                         "`desktop: xfce` or `lxqt`).")
    golden: Golden | None = Field(None, description="An image vdesk builds (direct kernel boot): debian12.")
    path: ImageFile | None = Field(None, description="Your own image file with its own bootloader (instead of "
                                                     "golden).")
    boot: Literal[BOOT_MODES] | None = Field(None, description="With path: bios (default) or uefi.")


class Share(Settings):
    """A host directory shared into desktops (virtiofs); read-only unless declared writable."""
    noun: ClassVar[str] = "share"
    host: HostRef | None = Field(None, description="The host whose directory it is (default: the first host).")
    path: SharePath = Field(description="The directory, under the roots this host's administrator allows for "
                                        "shares.")
    writable: bool = Field(False, description="Let desktops write (false: read-only, enforced on the host).")




class DesktopPlacement(Settings):
    """Where a desktop runs and what it is made from: the names of other entries that desktops and profiles share."""
    host: HostRef | None = Field(None, description="The host (default: the first host).")
    hosts: Hosts | None = Field(None, description="Hosts to place it on, or all: vdesk picks one by capacity, "
                                                  "and keeps it there (instead of `host`).")
    pool: PoolRef | None = Field(None, description="The pool its disk and seed go in (on the same host); required "
                                                   "on a libvirt host.")
    network: NetworkRef | None = Field(None, description="The network of its first NIC (on the same host); required "
                                                         "on a libvirt host.")
    extra_networks: Annotated[list[NetworkRef], Wording(expected="a list of network names")] = Field(
        [], description="More NICs (eth1, eth2, ...), one per network, each with DHCP and its own stable MAC.")
    image: ImageRef = Field(description="The image its disk is made from.")
    shares: Annotated[list[ShareRef], Wording(expected="a list of share names")] = Field(
        [], description="Shares mounted in it at /mnt/shares/<name>.")


class DesktopSettings(OwnSettings, DesktopPlacement):
    """What a desktop is and where it runs: the settings desktops and profiles share (references first)."""


class Profile(DesktopSettings):
    """What a kind of desktop gets: its users' desktops are made from it."""
    noun: ClassVar[str] = "profile"
    template: Template = Field(DEFAULT_TEMPLATE, description="A template under templates/user-data/, e.g. "
                                                             "desktop, developer or office.")
    groups: Groups = Field([], description="Supplementary groups of its users.")
    checks: Checks = Field([], description="Checks run over SSH once cloud-init is done; {user} stands for each "
                                           "user's name.")


class DesktopUser(Account):
    """An account on a desktop (components.desktop.users), whose password the stack file names instead; the
    first is the one vdesk logs in as."""
    password: SecretKey | None = Field(None, description="The name of a secret config key that holds the password "
                                                         "(`pulumi config set --secret vdesk:<key>`), never the "
                                                         "password itself.")


class Desktop(DesktopSettings):
    """A desktop spelled out in full."""
    noun: ClassVar[str] = "desktop"
    profile: Template = Field(DEFAULT_TEMPLATE, description="Its template under templates/user-data/, e.g. desktop.")
    users: Annotated[list[DesktopUser], Field(min_length=1), Wording(expected="a non-empty list of users")] = Field(
        [DesktopUser(name="desk")], description="Its accounts; the first is the one vdesk logs in as "
                                                "(default: one user, desk).")
    address: Address | None = Field(None, description="A static IPv4 address on a network without DHCP.")
    adopt: bool = Field(False, description="Take over its domain, disk and seed if they exist.")


class _Person(DesktopUser):
    """A person: gets one desktop named after them, made from their profile, with their overrides."""
    name: UserName = Field(description="The login, and the desktop's name and hostname.")
    profile: ProfileRef = Field(description="The profile their desktop is made from.")
    hosts: Hosts | None = Field(None, description="Hosts their desktop may be placed on (default: the "
                                                  "profile's host or hosts).")
    groups: Groups | None = Field(None, description="Supplementary groups (default: the profile's).")
    shares: Annotated[list[ShareRef], Wording(expected="a list of share names")] | None = Field(
        None, description="Shares mounted in their desktop (default: the profile's).")


# What a user may set of their own; the rest of a desktop's settings are their profile's alone.
USER_OVERRIDES = tuple(name for name, field in OwnSettings.model_fields.items() if BY_USER in field.metadata)
User = create_model(
    "User", __base__=_Person, __module__=__name__, __doc__=_Person.__doc__,
    **overridable(USER_OVERRIDES, "the profile's"),
    address=(Address | None, Field(None, description="A static IPv4 address on a network without DHCP.")),
    adopt=(bool, Field(False, description="Take over their desktop's domain, disk and seed if they exist.")))


class ContainerPlacement(Settings):
    """Where a container runs and what it is made from."""
    host: HostRef | None = Field(None, description="The host (default: the first host).")
    network: NetworkRef | None = Field(None, description="Its network (on the same host); none: no NIC.")
    image: ImageRef = Field(description="A golden image; its tree becomes the container's root.")


class Container(ContainerSettings, ContainerPlacement):
    """A libvirt LXC container: a system container (/sbin/init) unless `command` is given."""
    noun: ClassVar[str] = "container"


class Quota(Settings):
    """What the desktops of one person (or of a group's people) may take at once, checked at preview."""
    noun: ClassVar[str] = "quota"
    key_noun: ClassVar[str] = "quota setting"
    desktops: Count | None = Field(None, description="Desktops declared running at once that they are a user of.")
    memory: MemorySize | None = Field(None, description="The memory of those desktops together, e.g. 8GiB.")


class Quotas(Settings):
    """Quotas per user and per group, over the desktops this stack declares running."""
    key_noun: ClassVar[str] = "quota section"
    users: dict[Login, Quota] = Field({}, description="By user name: a person's desktops (any desktop that lists "
                                                      "them among its users).")
    groups: dict[Group, Quota] = Field({}, description="By group: the desktops of every user in the group, "
                                                       "together.")


def _no_settings_is_defaults(entries: Any) -> Any:
    """`local:` with nothing under it is an entry with every setting at its default."""
    return {name: {} if value is None else value for name, value in entries.items()} \
        if isinstance(entries, dict) else entries


def _named(entry: type[Settings], *, at_least: int = 0) -> Any:
    """A section: a mapping of entry names to their settings."""
    # (the count is checked before null entries become empty ones, and shown to editors as minProperties)
    at_least_marks = (Field(min_length=at_least),) if at_least else ()
    return Annotated[(dict[Name, entry], *at_least_marks,
                      BeforeValidator(_no_settings_is_defaults, json_schema_input_type=dict[str, entry | None]),
                      Field(json_schema_extra={"propertyNames": {"pattern": NAME_PATTERN},
                                               **({"minProperties": at_least} if at_least else {})}))]


class StackFile(Settings):
    """The `vdesk:` keys of a stack file (stacks/Pulumi.<stack>.yaml), as written."""
    key_noun: ClassVar[str] = "section"
    # The order of the sections is the order problems are listed in.
    prefix: NameValue | None = Field(None, description="Prefix of every libvirt object's name (default: the "
                                                       "stack's name).")
    hosts: Annotated[_named(Host, at_least=1), Wording(missing="declare at least one host")] = Field(
        description="KVM hosts by name.")
    pools: _named(Pool) = Field({}, description="Storage pools by name.")
    networks: _named(Network) = Field({}, description="Networks by name.")
    images: _named(Image) = Field({}, description="Images by name.")
    desktops: _named(Desktop) = Field({}, description="Desktops spelled out in full, by name.")
    profiles: _named(Profile) = Field({}, description="Profiles by name: what each kind of desktop gets.")
    users: list[User] = Field([], description="People: each gets one desktop named after them, from their "
                                              "profile.")
    containers: _named(Container) = Field({}, description="LXC containers by name.")
    shares: _named(Share) = Field({}, description="Host directories shared into desktops, by name.")
    timeouts: Timeouts = Field(Timeouts(), description="Readiness timeouts in seconds.")
    quotas: Quotas | None = Field(None, description="Desktops running at once and their memory, per user and "
                                                    "per group; a declaration beyond them is refused at preview.")
