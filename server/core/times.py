"""Showing UTC instants in a viewer's zone, with the zone's abbreviation or offset."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

from server.core.errors import invalid

# Dates people give are refused outside these years: year 1 or 9999 overflows when
# moved between zones, and a row stored with such a value breaks every page showing it.
EARLIEST_YEAR = 1970
LATEST_YEAR = 2200


def checked_date(day: date, where: str) -> date:
    """``day`` itself, or ``invalid`` when its year is outside EARLIEST_YEAR..LATEST_YEAR."""
    if not EARLIEST_YEAR <= day.year <= LATEST_YEAR:
        raise invalid(f"{where}: the year must be between {EARLIEST_YEAR} and {LATEST_YEAR}.")
    return day


def checked_instant(moment: datetime, where: str) -> datetime:
    """An aware ``moment`` in UTC, or ``invalid`` when it (in its own zone or in UTC)
    falls outside EARLIEST_YEAR..LATEST_YEAR or cannot be converted at all."""
    checked_date(moment.date(), where)
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise invalid(f"{where}: not a usable date and time.") from None
    checked_date(utc.date(), where)
    return utc


def valid_zone(name: str) -> bool:
    return name in _zones()


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
    return _ZONES


def offset_label(offset: timedelta | None) -> str:
    minutes = int((offset or timedelta(0)).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{mins:02d}"


@dataclass(frozen=True)
class LocalTime:
    value: datetime
    zone: str

    @property
    def abbreviation(self) -> str:
        """"CET", "EDT"... or the UTC offset when the zone has no letters ("+07")."""
        name = self.value.tzname() or ""
        if not name or name[0] in "+-" or name == "UTC":
            return offset_label(self.value.utcoffset())
        return name

    @property
    def offset(self) -> str:
        return offset_label(self.value.utcoffset())

    def clock(self) -> str:
        return self.value.strftime("%H:%M")

    def day(self) -> str:
        return self.value.strftime("%a %d %b %Y")

    def iso(self) -> str:
        return self.value.isoformat()


def local(instant: datetime, zone: str) -> LocalTime:
    return LocalTime(instant.astimezone(ZoneInfo(zone)), zone)
