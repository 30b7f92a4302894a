"""The one place that reads the wall clock, so tests can move time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)
_frozen: datetime | None = None


def utcnow() -> datetime:
    return (_frozen or datetime.now(UTC)) + _offset


def shift(delta: timedelta) -> None:
    """Test helper: move the clock forward (e.g. to expire invitations)."""
    global _offset
    _offset += delta


def freeze() -> None:
    """Test helper: stop the clock where it is (``shift`` still moves it), so a test of
    durations does not depend on how fast a busy machine runs it."""
    global _frozen
    _frozen = datetime.now(UTC)


def reset() -> None:
    global _offset, _frozen
    _offset = timedelta(0)
    _frozen = None


def iso_z(value: datetime) -> str:
    """ISO-8601 in UTC ending in ``Z``, to the second."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
