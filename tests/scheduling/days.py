"""A fixed-shape day for scheduling tests that does not age: a Wednesday at least two
weeks ahead, in Europe's summer time (Vienna UTC+2, Nairobi UTC+3, Bogota UTC-5) for a
few days either side, so expected local times and bands hold whenever the tests run."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def summer_wednesday(after: date) -> datetime:
    vienna = ZoneInfo("Europe/Vienna")
    day = after
    while True:
        summer = all(
            datetime.combine(day + timedelta(days=k), time(12), vienna).utcoffset() == timedelta(hours=2)
            for k in range(-4, 6)
        )
        if day.weekday() == 2 and summer:
            return datetime.combine(day, time(0), UTC)
        day += timedelta(days=1)


DAY = summer_wednesday(datetime.now(UTC).date() + timedelta(days=14))


def z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_date(days: int) -> str:
    """The date ``days`` after ``DAY``, as YYYY-MM-DD."""
    return (DAY + timedelta(days=days)).date().isoformat()
