"""A desktop's idle policy: after how long without input it is suspended or shut down, and the warning first."""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from lxml import etree
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from ..names import parse_duration

MIN_AFTER_S = 60               # shorter than a minute is a desktop that sleeps while its user reads
MAX_AFTER_S = 30 * 86400
MIN_WARN_S = 10                # a notification needs time to be seen and answered with a key press
DEFAULT_AFTER_S = 30 * 60
DEFAULT_WARN_S = 5 * 60
ACTIONS = ("suspend", "shutdown")

METADATA_NS = "urn:vdesk:lifecycle:1"   # the domain's own metadata element: the policy travels with it
METADATA_KEY = "lifecycle"


def _seconds(value) -> int:
    if isinstance(value, float) and value.is_integer():   # (Pulumi's wire carries every number as a float)
        value = int(value)
    try:
        return parse_duration(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None


# Seconds, written as the stack file writes durations (30m, 2h, or an integer of seconds).
Seconds = Annotated[int, BeforeValidator(_seconds, json_schema_input_type=int | str)]


class IdlePolicy(BaseModel):
    """`idle: {after: 30m, action: suspend, warn: 5m}`: a desktop with no input for `after` is acted on.

    A desktop setting (components.desktop.settings declares `idle` with this type), so it carries what the
    stack file's wording of problems asks of its models (noun, key_noun, record)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True,
                              field_title_generator=lambda name, _info: name)
    noun: ClassVar[str] = "idle policy"
    key_noun: ClassVar[str] = "idle setting"
    record: ClassVar[bool] = False

    after: Seconds = Field(DEFAULT_AFTER_S, description="No input for this long (30m, 2h): the desktop is acted "
                                                        "on; 1 minute to 30 days.")
    action: Literal["suspend", "shutdown"] = Field(
        "suspend", description="suspend: memory to disk (libvirt's managed save), back exactly as it was when "
                               "opened; shutdown: a clean power-off.")
    warn: Seconds = Field(DEFAULT_WARN_S, description="The person is told in their session this long before the "
                                                      "action (at least 10s, shorter than after).")

    @field_validator("after")
    @classmethod
    def _after_bounds(cls, value: int) -> int:
        if not MIN_AFTER_S <= value <= MAX_AFTER_S:
            raise ValueError(f"must be {MIN_AFTER_S // 60} minute to {MAX_AFTER_S // 86400} days")
        return value

    @field_validator("warn")
    @classmethod
    def _warn_bounds(cls, value: int) -> int:
        if value < MIN_WARN_S:
            raise ValueError(f"must be at least {MIN_WARN_S} s, so the warning can be seen")
        return value

    @model_validator(mode="after")
    def _warn_before_after(self) -> "IdlePolicy":
        if self.warn >= self.after:
            raise ValueError(f"warn ({self.warn} s) must be shorter than after ({self.after} s)")
        return self

    def to_metadata(self) -> str:
        """The policy as the domain's metadata element (virDomainSetMetadata), where the host's service reads it."""
        element = etree.Element("idle", after=str(self.after), action=self.action, warn=str(self.warn))
        return etree.tostring(element).decode()

    @classmethod
    def from_metadata(cls, xml: str) -> "IdlePolicy":
        element = etree.fromstring(xml.encode())
        return cls(**{key: element.get(key) for key in ("after", "action", "warn") if element.get(key) is not None})


def policy_of(dom) -> IdlePolicy | None:
    """The domain's declared policy, None when it declares none (libvirt: no such metadata)."""
    xml = metadata_of(dom, METADATA_NS)
    return None if xml is None else IdlePolicy.from_metadata(xml)


def set_policy(dom, policy: IdlePolicy | None) -> None:
    """Declare (or, with None, remove) the domain's policy in its metadata: its config, and its live XML if running."""
    set_metadata(dom, METADATA_NS, METADATA_KEY, policy.to_metadata() if policy else None)


def metadata_of(dom, namespace: str) -> str | None:
    """The domain's metadata element in `namespace` (its current definition), None when it has none."""
    import libvirt
    try:
        return dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, namespace, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            return None
        raise


def set_metadata(dom, namespace: str, key: str, xml: str | None) -> None:
    """Set (None: remove) the domain's element in `namespace`: in its config, and its live XML if running."""
    import libvirt
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, xml, key if xml else None, namespace, flags)
