"""A desktop's schedule: the days and hours it runs, in a time zone; the host's lifecycle service keeps to it.

Inside the schedule a desktop it stopped is started again; outside it a running desktop is shut down (noted in
its metadata, so that it counts as declared running: not drift, and `up` does not start it). A desktop that is
asleep or that someone stopped is left as it is.
"""
from __future__ import annotations

import datetime
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
METADATA_NS = "urn:vdesk:lifecycle-schedule:1"
_CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class Schedule(BaseModel):
    """`schedule: {days: [mon, tue, wed, thu, fri], start: "07:00", stop: "20:00", timezone: Europe/Berlin}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True,
                              field_title_generator=lambda name, _info: name)
    noun: ClassVar[str] = "schedule"
    key_noun: ClassVar[str] = "schedule setting"
    record: ClassVar[bool] = False

    days: list[Literal[DAYS]] = Field(["mon", "tue", "wed", "thu", "fri"], min_length=1,
                                      description="The days it runs (mon ... sun); default: weekdays.")
    start: str = Field(pattern=_CLOCK, description="When it is started, HH:MM in its time zone, e.g. 07:00.")
    stop: str = Field(pattern=_CLOCK, description="When it is shut down, HH:MM (before start: the next day).")
    timezone: str = Field("UTC", description="An IANA time zone, e.g. Europe/Berlin.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone this host knows (e.g. UTC, Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _a_window(self) -> "Schedule":
        if self.start == self.stop:
            raise ValueError(f"start and stop are both {self.start}: give the hours it runs")
        return self

    def running_at(self, at: float) -> bool:
        """Whether the schedule has the desktop running at the epoch time `at`."""
        local = datetime.datetime.fromtimestamp(at, ZoneInfo(self.timezone))
        clock, today = local.strftime("%H:%M"), DAYS[local.weekday()]
        if self.start < self.stop:
            return today in self.days and self.start <= clock < self.stop
        yesterday = DAYS[(local.weekday() - 1) % 7]                  # overnight: stop is the next day
        return (today in self.days and clock >= self.start) or (yesterday in self.days and clock < self.stop)

    def said(self) -> str:
        return f"{','.join(self.days)} {self.start}-{self.stop} {self.timezone}"

    def to_metadata(self) -> str:
        return etree.tostring(etree.Element("schedule", days=" ".join(self.days), start=self.start, stop=self.stop,
                                            timezone=self.timezone)).decode()

    @classmethod
    def from_metadata(cls, xml: str) -> "Schedule":
        element = etree.fromstring(xml.encode())
        return cls(days=(element.get("days") or "").split(), start=element.get("start"), stop=element.get("stop"),
                   timezone=element.get("timezone") or "UTC")


class MaintenanceWindow(Schedule):
    """`maintenance_window: {days: [sat], start: "02:00", stop: "05:00", timezone: Europe/Berlin}`: when a change
    held for it (apply_when: window) may restart the desktop, used or not."""

    noun: ClassVar[str] = "maintenance window"
    key_noun: ClassVar[str] = "maintenance window setting"

    days: list[Literal[DAYS]] = Field(list(DAYS), min_length=1,
                                      description="The days it opens (mon ... sun); default: every day.")
    start: str = Field(pattern=_CLOCK, description="When it opens, HH:MM in its time zone, e.g. 02:00.")
    stop: str = Field(pattern=_CLOCK, description="When it closes, HH:MM (before start: the next day).")

    def to_metadata(self) -> str:
        return etree.tostring(etree.Element("window", days=" ".join(self.days), start=self.start, stop=self.stop,
                                            timezone=self.timezone)).decode()


WINDOW_NS = "urn:vdesk:lifecycle-window:1"
WINDOW_NEEDED = ("window holds a change for the desktop's maintenance window: declare one, "
                 "maintenance_window: {days: [sat], start: \"02:00\", stop: \"05:00\", timezone: UTC}")


def window_of(dom) -> MaintenanceWindow | None:
    """The maintenance window a desktop's held changes wait for (apply_when: window); None: they wait for idle."""
    from .policy import metadata_of
    xml = metadata_of(dom, WINDOW_NS)
    return None if xml is None else MaintenanceWindow.from_metadata(xml)


def set_window(dom, window: MaintenanceWindow | None) -> None:
    from .policy import set_metadata
    set_metadata(dom, WINDOW_NS, "window", window.to_metadata() if window else None)


def schedule_of(dom) -> Schedule | None:
    from .policy import metadata_of
    xml = metadata_of(dom, METADATA_NS)
    return None if xml is None else Schedule.from_metadata(xml)


def set_schedule(dom, schedule: Schedule | None) -> None:
    from .policy import set_metadata
    set_metadata(dom, METADATA_NS, "schedule", schedule.to_metadata() if schedule else None)
