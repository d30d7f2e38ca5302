"""The host's lifecycle settings: a file in the host's state dir, the administrator's (or `up`'s), not a stack's.

A stack declares the idle policy of its own desktops (each domain carries it);
whether the service runs, how often it looks and the policy of desktops that
declare none are the host's, so no stack can switch idling off for another.
"""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..names import parse_duration
from .policy import IdlePolicy

SETTINGS_FILE = "settings.json"
MIN_POLL_S, MAX_POLL_S = 2, 600
MIN_APPLY_AFTER_S = 10


class LifecycleSettings(BaseModel):
    """What the host's lifecycle service is told; the defaults act only on desktops that declare a policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    libvirt_uri: str = Field(description="the host the service watches")
    poll: int = Field(15, description="how often every desktop is looked at (s, or 30s, 1m)")
    shutdown_timeout: int = Field(120, description="a clean shutdown is forced after this long")
    apply_after: int = Field(300, description="a change held for an idle moment (apply_when: idle) is applied "
                                              "once the desktop has had no input this long")
    default: IdlePolicy | None = Field(None, description="the policy of a desktop that declares none; "
                                                         "none: such a desktop is left alone")

    @field_validator("poll", "shutdown_timeout", "apply_after", mode="before")
    @classmethod
    def _duration(cls, value):
        try:
            return parse_duration(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(str(exc)) from None

    @field_validator("poll")
    @classmethod
    def _poll_bounds(cls, value: int) -> int:
        if not MIN_POLL_S <= value <= MAX_POLL_S:
            raise ValueError(f"must be {MIN_POLL_S} s to {MAX_POLL_S // 60} min")
        return value

    @field_validator("apply_after")
    @classmethod
    def _apply_after_bounds(cls, value: int) -> int:
        if value < MIN_APPLY_AFTER_S:
            raise ValueError(f"must be at least {MIN_APPLY_AFTER_S} s")
        return value

    @classmethod
    def read(cls, lifecycle_dir: Path) -> "LifecycleSettings":
        return cls.model_validate(json.loads((Path(lifecycle_dir) / SETTINGS_FILE).read_text()))

    def write(self, lifecycle_dir: Path) -> None:
        """Atomically, so the running service never reads half a file."""
        lifecycle_dir = Path(lifecycle_dir)
        lifecycle_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = lifecycle_dir / (SETTINGS_FILE + ".tmp")
        tmp.write_text(self.model_dump_json(indent=2) + "\n")
        tmp.replace(lifecycle_dir / SETTINGS_FILE)
