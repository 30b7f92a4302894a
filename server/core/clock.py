"""The one place that reads the wall clock, so tests can move time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def utcnow() -> datetime:
    return datetime.now(UTC) + _offset


def shift(delta: timedelta) -> None:
    """Test helper: move the clock forward (e.g. to expire invitations)."""
    global _offset
    _offset += delta


def reset() -> None:
    global _offset
    _offset = timedelta(0)


def iso_z(value: datetime) -> str:
    """ISO-8601 in UTC ending in ``Z``, to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
