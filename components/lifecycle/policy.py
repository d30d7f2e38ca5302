"""A desktop's idle policy: after how long without input it is suspended or shut down, and the warning first."""
from __future__ import annotations

from typing import Literal

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    try:
        return parse_duration(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None


class IdlePolicy(BaseModel):
    """`idle: {after: 30m, action: suspend, warn: 5m}`: a desktop with no input for `after` is acted on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after: int = Field(DEFAULT_AFTER_S, description="no input for this long (30m, 2h): the desktop is acted on")
    action: Literal["suspend", "shutdown"] = Field(
        "suspend", description="suspend: memory to disk, back exactly as it was; shutdown: a clean power-off")
    warn: int = Field(DEFAULT_WARN_S, description="the person is told in their session this long before the action")

    @field_validator("after", "warn", mode="before")
    @classmethod
    def _duration(cls, value):
        return _seconds(value)

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
    import libvirt
    try:
        xml = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            return None
        raise
    return IdlePolicy.from_metadata(xml)


def set_policy(dom, policy: IdlePolicy | None) -> None:
    """Declare (or, with None, remove) the domain's policy in its metadata: its config, and its live XML if running."""
    import libvirt
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, policy.to_metadata() if policy else None,
                    METADATA_KEY if policy else None, METADATA_NS, flags)
