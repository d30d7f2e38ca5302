"""DesktopArgs: what a Pulumi program declares about one desktop, checked before anything exists."""
from __future__ import annotations

import ipaddress
import typing
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, create_model, \
    model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..errors import InputError
from ..host.hardware import Gpu
from ..kinds import Settings, Timeouts, Wording, rule   # Timeouts: the readiness gate's waits, as the stack file's
from ..names import name_problem
from .settings import (DESKTOP_RESOLUTION, RESOLUTION, DesktopSettings, FirmwareFacts, apply_when_problems,
                       firmware_problems, overridable, session_problems, vcpu_problems)
from .users import DesktopUser
from .wording import from_error, loc_of, path

HOME_SERIAL = "vdesk-home"           # the home volume's disk serial: /dev/disk/by-id/virtio-vdesk-home in the guest
_DEPENDS = "depends"                 # the error type of a problem between settings, or with what they refer to

# Another resource (an Image, a StoragePool, a Network): held as it is, and asked about its host and its image.
Resource = Annotated[Any, Field(description="a Pulumi resource of vdesk's")]
VmName = Annotated[str, rule(name_problem)]


class Share(Settings):
    """A host directory mounted in the desktop at /mnt/shares/<name> (virtiofs), read-only unless writable."""
    noun: ClassVar[str] = "share"
    name: Annotated[str, rule(name_problem)]
    source: str
    writable: bool = False

    @property
    def mountpoint(self) -> str:
        return f"/mnt/shares/{self.name}"


# Settings given as keywords of their own: each a DesktopSettings field, unset unless written.
_Keywords = create_model("_Keywords", __base__=Settings, __module__=__name__,
                         **overridable(tuple(DesktopSettings.model_fields), "the settings'"))


class DesktopArgs(Settings):
    """One virtual desktop: what it is made from and where it lives, and its settings (declared once, in
    components.desktop.settings.DesktopSettings).

    A setting may also be given as a keyword of its own (`memory="2GiB"`), or a nested one joined by `_`
    (`display_password_valid_for="30d"` for display.password_valid_for, `cpu_mode=...` for cpu.mode).
    Validating the model (`DesktopArgs.model_validate`, as the stack loader does) raises every problem at once,
    each at its place; built as `DesktopArgs(...)`, a wrong setting is left out (its default stays) and its
    problem, as written, waits for `check`, which the Desktop makes with its name."""
    model_config = ConfigDict(**Settings.model_config, arbitrary_types_allowed=True)
    noun: ClassVar[str] = "desktop"

    image: Resource
    pool: Resource
    network: Resource
    settings: DesktopSettings = DesktopSettings()
    keywords: _Keywords | None = Field(None, exclude=True)   # settings written as keywords, laid over `settings`
    users: Annotated[list[DesktopUser], Field(min_length=1), Wording(missing="declare at least one user")] = [
        DesktopUser("desk")]
    template: str = "desktop"                # a template under templates/user-data/
    shares: list[Share] = []                 # host directories mounted at /mnt/shares/<name>
    extra_networks: list[Resource] = []      # eth1, eth2, ...: DHCP on each
    address: str | None = None               # a static IPv4 address, on a network without DHCP
    timeouts: Timeouts = Timeouts()
    adopt: bool = False                      # take over its domain, disk and seed if they exist
    vm_name: VmName | None = None            # its libvirt name (default <stack>-<resource name>)
    _problems: list = PrivateAttr(default_factory=list)

    def __init__(self, image: Any, pool: Any, network: Any, **written):
        data, written_as = _route(written)
        found: list[tuple[str, str]] = []
        context = {"written_as": written_as, "found": found}
        validate = self.__pydantic_validator__.validate_python
        problems = []
        try:
            validate({"image": image, "pool": pool, "network": network, **data}, self_instance=self,
                     context=context)
        except ValidationError as exc:
            problems = [(_where_written(loc, written_as), message) for loc, message in from_error(exc, DesktopArgs)]
            validate({"image": image, "pool": pool, "network": network, **_without(data, exc)}, self_instance=self,
                     context=context)
        self._problems = problems + [p for p in found if p not in problems]

    # Validating (model_validate, or a DesktopArgs inside another model) is pydantic's own: this way in is for
    # a program's keywords only (pydantic calls an __init__ of a model's own unless it is marked as its base's).
    __init__.__pydantic_base_init__ = True

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        """As in every model of settings (kinds.Settings), but what it refers to is taken as it is given."""
        if isinstance(data, dict):
            return {key: value for key, value in data.items()
                    if value is not None or key in ("image", "pool", "network") or key not in cls.model_fields}
        return data

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem_at_once(cls, data: Any, handler, info: ValidationInfo) -> "DesktopArgs":
        """Validated (model_validate), settings that fail their own check leave the others to be checked
        together: every problem is raised at once."""
        if "found" in (info.context or {}) or not isinstance(data, dict):
            return handler(data)
        try:
            return handler(data)
        except ValidationError as exc:
            if all(e["type"] == _DEPENDS for e in exc.errors()):
                raise
            found: list[tuple[str, str]] = []
            try:
                cls.model_validate(_without(data, exc), context={"found": found})
            except ValidationError:
                found = []          # (what is left is wrong on its own too: its problems are raised)
            raise ValidationError.from_exception_data(cls.__name__, [
                *(InitErrorDetails(type=e["type"], loc=tuple(e["loc"]), input=e["input"], ctx=e.get("ctx", {}))
                  for e in exc.errors()), *_depends_errors(found)]) from None

    def __getattr__(self, name: str):
        """A setting, read as an attribute of the arguments (`args.memory`: bytes)."""
        if name in DesktopSettings.model_fields and "settings" in self.__dict__:
            return getattr(self.__dict__["settings"], name)
        return super().__getattr__(name)

    @model_validator(mode="after")
    def _settings_together(self, info: ValidationInfo) -> "DesktopArgs":
        """The keywords laid over the settings; then what depends on several settings or on what they refer to,
        every problem at its place (a keyword's as written)."""
        if self.keywords is not None:
            update = {key: getattr(self.keywords, key) for key in self.keywords.model_fields_set}
            self.settings, self.keywords = self.settings.model_copy(update=update), None
        context = info.context or {}
        problems = [(_where_written(loc, context.get("written_as", {})), message) for loc, message in self._depends()]
        if "found" in context:
            context["found"].extend(problems)
        elif problems:
            raise ValidationError.from_exception_data(type(self).__name__, _depends_errors(problems))
        return self

    @property
    def memory_mib(self) -> int:
        """Memory in a KubeVirt manifest's unit (Mi): the one edge outside libvirt's XML that is not bytes."""
        return self.settings.memory // 1024**2

    @property
    def display_password_rotation(self) -> str:
        return self.settings.display.password_rotation if self.settings.display else ""

    @property
    def display_password_valid_for_s(self) -> int | None:
        return self.settings.display.password_valid_for if self.settings.display else None

    @property
    def disk_bytes(self) -> int:
        return self.settings.disk

    @property
    def home_bytes(self) -> int | None:
        return self.settings.home

    @property
    def display_size(self) -> tuple[int, int] | None:
        """(width, height) of the display: the declared resolution, a desktop image's default, else None
        (a console image keeps libvirt's own adapter)."""
        text = self.resolution or (DESKTOP_RESOLUTION if self.image.graphical else None)
        match = RESOLUTION.match(text) if text else None
        return (int(match.group(1)), int(match.group(2))) if match else None

    @property
    def static_address(self) -> tuple[str, str] | None:
        """(address/prefix, gateway) of a static address on its network, or None."""
        if not self.address:
            return None
        cidr = ipaddress.ip_network(self.network.args.cidr)
        return f"{ipaddress.ip_address(self.address)}/{cidr.prefixlen}", self.network.args.gateway

    def _depends(self) -> list[tuple[tuple, str]]:
        """What is wrong between its settings, and with what they refer to, as (place, message) pairs."""
        own, host = self.settings, self.pool.host
        found = [(loc_of(field.lstrip(".")), message) for field, message in vcpu_problems("", own)]
        for loc, net in [(("network",), self.network), *((("extra_networks", i), n)
                                                         for i, n in enumerate(self.extra_networks))]:
            if net.host.uri != host.uri:
                found.append((loc, f"is on host {net.host.name!r}, but the pool is on {host.name!r}"))
        if self.address is not None:
            found += [(("address",), message) for message in self._address_problems()]
        found += [(loc_of(field.lstrip(".")), message) for field, message in firmware_problems("", own, FirmwareFacts(
            image_boot=getattr(getattr(self.image, "files", None), "boot", None),
            host_swtpm=getattr(host, "swtpm", None), host_name=getattr(host, "name", None)))]
        recipe = getattr(self.image, "recipe", None)
        found += [(loc_of(field.lstrip(".")), message)
                  for field, message in session_problems("", own, desktop=recipe.desktop if recipe else None)]
        found += [(loc_of(field.lstrip(".")), message) for field, message in apply_when_problems("", own)]
        return found

    @property
    def cpu_mode(self) -> str | None:
        cpu = self.settings.cpu
        return None if cpu is None else cpu.mode or ("custom" if cpu.model else None)

    @property
    def cpu_model(self) -> str | None:
        return self.settings.cpu.model if self.settings.cpu else None

    @property
    def cpu_pinning(self) -> list:
        return list(self.settings.cpu.pinning or ()) if self.settings.cpu else []

    @property
    def hostdev_gpus(self) -> list[Gpu]:
        return [Gpu(pci=g.pci, mdev=g.mdev, parent=g.parent) for g in self.settings.gpus]

    def _address_problems(self) -> list[str]:
        net = self.network.args
        try:
            ip, cidr = ipaddress.ip_address(self.address), ipaddress.ip_network(net.cidr)
        except (TypeError, ValueError):
            return [f"{self.address!r} is not an IPv4 address inside the network's cidr"]
        if ip.version != 4 or ip not in cidr or str(ip) == net.gateway or ip in (cidr.network_address,
                                                                                 cidr.broadcast_address):
            return [f"{ip} is not a usable host address of {cidr} ({net.gateway} is its gateway)"]
        if net.dhcp is not False:
            return ["the network hands out addresses by DHCP: give it dhcp=False, "
                    "or reserve the address with its dhcp_hosts"]
        return []

    def check(self, name: str) -> None:
        """Raise InputError listing every problem found when it was built, as `<name>.<field>` (arguments made by
        validating, as the stack loader makes them, have none: it raised them then)."""
        if self._problems:
            raise InputError([(f"{name}.{where}", message) for where, message in self._problems])


def _depends_errors(problems: list[tuple[str, str]]) -> list[InitErrorDetails]:
    """Problems between settings as pydantic's errors, each at its place."""
    return [InitErrorDetails(type=PydanticCustomError(_DEPENDS, "{message}", {"message": message}),
                             loc=loc_of(where), input=None) for where, message in problems]


def _route(keywords: dict) -> tuple[dict, dict]:
    """The arguments, with the settings given as keywords in the declaration's nested shape under `keywords`:
    `cpu_mode` is cpu.mode where cpu is a model with a field mode. Returns them and where each nested one was
    written ({("cpu", "mode"): "cpu_mode"})."""
    fields, written, written_as, data = DesktopSettings.model_fields, {}, {}, {}
    for key, value in keywords.items():
        if key in DesktopArgs.model_fields and key != "keywords":
            data[key] = list(value) if isinstance(value, tuple) else value
            continue
        if key in fields:
            written[key] = list(value) if isinstance(value, tuple) else value
            continue
        outer, _, inner = key.partition("_")
        while inner and outer not in fields:
            more, _, inner = inner.partition("_")
            outer = f"{outer}_{more}"
        nested = _model_of(fields[outer].annotation) if outer in fields else None
        if nested is None or inner not in nested.model_fields:
            raise TypeError(f"DesktopArgs got an unexpected keyword argument {key!r}")
        written.setdefault(outer, {})[inner] = list(value) if isinstance(value, tuple) else value
        written_as[(outer, inner)] = key
    return {**data, **({"keywords": written} if written else {})}, written_as


def _model_of(annotation) -> type[BaseModel] | None:
    """The settings model a field holds (its type, or the one of `X | None`)."""
    for kind in (annotation, *typing.get_args(annotation)):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
    return None


def _where_written(loc: tuple, written_as: dict) -> str:
    """A setting's path as its keyword was written (display_password_valid_for), else the declaration's (a
    setting's without `settings.` or `keywords.`: they are the desktop's)."""
    if loc[:1] in (("keywords",), ("settings",)):
        loc = loc[1:]
    for (outer, inner), key in written_as.items():
        if tuple(loc[:2]) == (outer, inner):
            return path((key, *loc[2:]))
    return path(loc)


def _without(data: dict, exc: ValidationError) -> dict:
    """The arguments without those that failed their check (a setting's keyword alone): their defaults stay."""
    bad = {tuple(e["loc"][:2]) if e["loc"][:1] == ("keywords",) else tuple(e["loc"][:1])
           for e in exc.errors() if e["type"] != _DEPENDS}
    kept = {key: value for key, value in data.items() if (key,) not in bad}
    if "keywords" in kept:
        kept["keywords"] = {key: value for key, value in kept["keywords"].items() if ("keywords", key) not in bad}
    return kept
