"""The kinds of values settings take, declared once for the stack file, the component arguments and the
providers' inputs: a type with its constraints and the words of its problems.

It sits below every package that declares or checks a setting (config, desktop, host, resources), so the
providers derive their input checks from the same declarations (components.resources.provider.declared)
without importing the layers above them.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

from .guest.checkspec import KINDS
from .names import SIZE_PATTERN, network_problem, parse_duration, parse_size
from .xmlmodel import parse_cpuset

MiB = 1024**2
MIN_MEMORY = 256 * MiB   # a desktop's or a container's least memory
RESTART_POLICIES = ("on-change", "never")   # a change that needs a restart restarts a running guest, or waits
APPLY_WHEN = ("now", "idle", "window")      # when such a restart happens (idle: when no one is using it;
                                            # window: in the desktop's maintenance window)
HELD_WHEN = ("idle", "window")              # the ones that hold it for the host's lifecycle service
CPU_MODES = ("host-passthrough", "host-model", "custom")
NETWORK_MODES = ("nat", "isolated", "route", "open", "bridge")
POOL_TYPES = ("dir", "logical", "netfs")
NETFS_FORMATS = ("nfs", "cifs", "glusterfs", "auto")
_VG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+_.-")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]")
_INTERFACE = r"^[^\s/:]{1,15}$"
_MACHINE = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_CPU_MODEL = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")     # libvirt's <initenv name=...>
_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclasses.dataclass(frozen=True)
class Wording:
    """How problems.py words a wrong value at this place, where pydantic's own words would not help."""
    expected: str = ""   # after "must be ", for a value of the wrong kind; {got} stands for its type
    missing: str = ""    # the whole message when it is absent or empty
    invalid: str = ""    # the whole message for a value that is not allowed; {input} and {options} stand for
    #                      the value as written and the choices (leave {input} out where it might be a secret)


def rule(problem) -> AfterValidator:
    """A validator from a rule that returns what is wrong with a value (or None), like names.py's."""
    def check(value):
        if message := problem(value):
            raise ValueError(message)
        return value
    return AfterValidator(check)


def size(default_unit: str, minimum: int = 0) -> PlainValidator:
    """Bytes from '2GiB' or an integer in default_unit (components.names.parse_size)."""
    def check(value) -> int:
        size = parse_size(value, default_unit=default_unit)
        if size < 0:
            raise ValueError(f"{value!r} is not a size: sizes are not negative")
        if size < minimum:
            raise ValueError(f"must be at least {minimum // 1024**2}MiB")
        return size
    written = Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=SIZE_PATTERN)]
    return PlainValidator(check, json_schema_input_type=written)


def vg_name_problem(value: str) -> str | None:
    """LVM's rules for a volume group name (it also becomes /dev/<name>)."""
    if not value or len(value) > 127 or value.startswith("-") or value in (".", "..") \
            or not set(value) <= _VG_CHARS:
        return (f"{value!r} is not a volume group name: use letters, digits, '+', '_', '.' and '-', "
                "not starting with '-'")
    return None


def host_problem(value: str) -> str | None:
    return None if value and set(value) <= _HOST_CHARS else f"{value!r} is not a host name or IP address"


def cidr6_problem(value: str) -> str | None:
    """An IPv6 prefix with room for DHCPv6 (the IPv6 half of a dual-stack network)."""
    if message := network_problem(value):
        return message
    net = ipaddress.ip_network(value)
    if net.version != 6:
        return f"{value!r} is not an IPv6 prefix (cidr6 is the IPv6 half of a dual-stack network)"
    if net.prefixlen > 125:
        return f"{value!r} is too small for a DHCP network (use /125 or larger)"
    return None


def ip_problem(version: int | None):
    """What is wrong with an address, or one of the wrong family (version 4 or 6; None: either)."""
    def problem(value: str) -> str | None:
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            ip = None
        if ip is None or (version and ip.version != version):
            return f"{value!r} is not an {'IPv4 ' if version == 4 else 'IP '}address"
        return None
    return problem


def mac_problem(value: str) -> str | None:
    """libvirt takes six hex pairs joined by ':' and refuses a multicast MAC for a DHCP reservation."""
    if not isinstance(value, str) or not _MAC.match(value):
        return f"{value!r} is not a MAC address (six hex pairs joined by ':', e.g. 52:54:00:12:34:56)"
    if int(value[:2], 16) & 1:
        return f"{value!r} is a multicast MAC address: a NIC's MAC is unicast (its first byte is even)"
    return None


def dns_name_problem(value: str) -> str | None:
    """A DNS name: dot-separated labels of letters, digits and '-' (what dnsmasq serves)."""
    if not isinstance(value, str) or not 0 < len(value.rstrip(".")) <= 253 \
            or not all(_LABEL.match(label) for label in value.rstrip(".").split(".")):
        return (f"{value!r} is not a DNS name (labels of letters, digits and '-', joined by '.', e.g. "
                "lab.example.org)")
    return None


def _refused_by(parse):
    """A rule from a parser that raises ValueError for what it refuses: its message is the problem."""
    def problem(value) -> str | None:
        try:
            parse(value)
        except ValueError as exc:
            return str(exc)
        return None
    return problem


duration_problem = _refused_by(parse_duration)
_cpuset_problem = _refused_by(parse_cpuset)


def env_name_problem(name: str) -> str | None:
    return None if _ENV_NAME.match(name) else (f"{name!r} is not an environment variable name (letters, digits and "
                                               "'_', not starting with a digit)")


def _program_problem(argv: list[str]) -> str | None:
    if argv and not argv[0].startswith("/"):
        return f"{argv[0]!r} is not an absolute path inside the container (the program the command runs)"
    return None


def _inside_problem(target: str) -> str | None:
    if not target.startswith("/") or target.rstrip("/") == "":
        return f"{target!r} must be an absolute directory inside the container, not '/'"
    return None


def _twice_problem(mounts: list[Mount]) -> str | None:
    targets = [m.target.rstrip("/") for m in mounts]
    twice = sorted({t for t in targets if targets.count(t) > 1})
    return f"{', '.join(map(repr, twice))} is mounted twice" if twice else None


class Settings(BaseModel):
    """Settings of one entry: a typo is an error that lists what is allowed."""
    # validate_default: a default is converted like a written value ("1h" -> 3600), so no later check ever
    # sees it as written
    model_config = ConfigDict(strict=True, extra="forbid", hide_input_in_errors=True, validate_default=True,
                              field_title_generator=lambda name, _info: name)
    noun: ClassVar[str] = "entry"       # what one of these is, in messages ("a list of users")
    key_noun: ClassVar[str] = "setting"  # what its keys are ("unknown setting")
    record: ClassVar[bool] = False       # a small value of several parts: missing parts are reported at it

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        """`memory:` with nothing after it (null) means the same as no `memory:` at all."""
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None or key not in cls.model_fields}
        return data


Count = Annotated[int, Field(ge=1)]
NonEmpty = Annotated[str, Field(min_length=1)]
MemorySize = Annotated[int, size("MiB", MIN_MEMORY)]
Checks = Annotated[list[Annotated[Any, WithJsonSchema({
    "type": "object", "description": f"One check: a mapping with one kind ({', '.join(KINDS)}), whose value is "
                                     "what to check, and that kind's options."})]],
    Wording(expected="a list of checks, e.g. [{service: ssh}, {port: 22}], got {got}")]
MachineType = Annotated[str, Field(pattern=_MACHINE),
                        Wording(invalid="{input} is not a machine type (e.g. q35, pc or pc-q35-7.2)")]
CpuMode = Literal[CPU_MODES]
CpuModelName = Annotated[str, Field(pattern=_CPU_MODEL),
                         Wording(invalid="{input} is not a CPU model name (e.g. Haswell-noTSX or EPYC)")]
CpuSet = Annotated[Annotated[int, Field(ge=0)] | str, rule(lambda v: _cpuset_problem(v)),
                   Wording(expected="host CPUs as a number or a set like '2-3' or '0,4', got {got}")]


class CpuTopology(Settings):
    """How the vCPUs look to the guest; their product is the vCPU maximum."""
    record: ClassVar[bool] = True
    sockets: Count = Field(description="CPU sockets.")
    cores: Count = Field(description="Cores per socket.")
    threads: Count = Field(description="Threads per core.")


BackupDays = Annotated[int, Field(ge=0, le=3650)]
RestartPolicy = Literal[RESTART_POLICIES]
ApplyWhen = Literal[APPLY_WHEN]
WholeMiB = Annotated[int, Field(gt=0, multiple_of=MiB)]   # memory as a provider takes it: bytes, in whole MiB
NetworkMode = Literal[NETWORK_MODES]
Interface = Annotated[str, Field(pattern=_INTERFACE),
                      Wording(invalid="{input} is not a Linux interface name (1-15 characters, no spaces, '/' or "
                                      "':')")]
Cidr6 = Annotated[str, rule(cidr6_problem), Wording(expected="an IPv6 prefix, e.g. fd00:77::/64")]
PoolType = Literal[POOL_TYPES]
NetfsFormat = Literal[NETFS_FORMATS]
VolumeGroup = Annotated[str, rule(vg_name_problem), Wording(expected="a volume group name, got {got}")]
FileServer = Annotated[str, rule(host_problem), Wording(expected="a host name or address, got {got}")]
HostPath = Annotated[str, rule(lambda v: None if v.startswith("/") else f"{v!r} must be an absolute path on the host"),
                     Field(json_schema_extra={"pattern": "^/"})]
IPv4 = Annotated[str, rule(ip_problem(4)), Wording(expected="an IPv4 address, got {got}")]
Address = Annotated[str, rule(ip_problem(None)), Wording(expected="an IP address, got {got}")]
Mac = Annotated[str, rule(mac_problem), AfterValidator(str.lower), Field(json_schema_extra={"pattern": _MAC.pattern})]
DnsName = Annotated[str, rule(dns_name_problem)]
Seconds = Annotated[int, rule(duration_problem)]   # a duration as vdesk holds it (names.parse_duration's)


class DhcpRange(Settings):
    """The part of an IPv4 network that DHCP hands out."""
    record: ClassVar[bool] = True
    start: IPv4 = Field(description="First address handed out.")
    end: IPv4 = Field(description="Last address handed out.")


class DhcpHost(Settings):
    """A DHCP reservation: this MAC always gets this address."""
    noun: ClassVar[str] = "DHCP reservation"
    record: ClassVar[bool] = True
    mac: Mac = Field(description="The guest NIC's MAC address.")
    ip: IPv4 = Field(description="The IPv4 address it gets.")
    name: DnsName | None = Field(None, description="Its host name in the network's DNS.")


class DnsHost(Settings):
    """A DNS record in the network's own DNS."""
    noun: ClassVar[str] = "DNS record"
    record: ClassVar[bool] = True
    ip: Address = Field(description="The address.")
    hostnames: Annotated[list[DnsName], Field(min_length=1)] = Field(description="Names that resolve to it.")


class Timeouts(Settings):
    """How long vdesk waits for each step of a desktop's readiness, in seconds."""
    model_config = ConfigDict(**Settings.model_config, frozen=True)   # (a default of DesktopArgs)
    key_noun: ClassVar[str] = "timeout"
    address: Count = Field(600, description="Until the guest has an address.")
    ssh: Count = Field(300, description="Until SSH answers with the pinned host key.")
    cloud_init: Count = Field(900, description="Until cloud-init reports done.")
    shutdown: Count = Field(60, description="For a clean shutdown before the power is cut.")
    graphical: Count = Field(600, description="Until a desktop image's screen shows its desktop.")


# A container's command line, environment and mounts (components.container.settings; the provider's inputs)
Argument = Annotated[str, Field(min_length=1), rule(lambda v: "has a NUL character" if "\0" in v else None)]
Argv = Annotated[list[Argument], rule(_program_problem)]
EnvName = Annotated[str, rule(env_name_problem), Field(json_schema_extra={"pattern": _ENV_NAME.pattern})]
# The provider's environment: NAME=value lines (libvirt's <initenv>), each NAME an EnvName.
EnvLines = list[Annotated[str, rule(lambda v: env_name_problem(v.split("=", 1)[0]) if "=" in v
                                    else f"{v!r} is not NAME=value")]]
Inside = Annotated[str, Field(min_length=1), rule(_inside_problem)]


class Mount(Settings):
    """A host directory mounted into a container."""
    noun: ClassVar[str] = "mount"
    record: ClassVar[bool] = True
    source: HostPath = Field(description="The directory on the host.")
    target: Inside = Field(description="Where it appears in the container.")
    readonly: bool = Field(True, description="Read-only (the default); false must be explicit.")


Mounts = Annotated[list[Mount], rule(_twice_problem)]
