"""Time zones from the pinned ``tzdata`` package only (never the host's files).

Zones are loaded with :meth:`zoneinfo.ZoneInfo.from_file` on the files shipped in
``tzdata.zoneinfo`` and cached; names are checked against tzdata's own zone list.
:func:`offset_segments` turns a zone into runs of constant UTC offset over a span of
UTC minutes, which is what the cost model works on.
"""

from __future__ import annotations

import functools
import importlib.resources
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "UnknownZoneError",
    "is_valid_zone",
    "load_zone",
    "offset_minutes_at",
    "offset_segments",
    "tzdata_version",
    "zone_names",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UnknownZoneError(ValueError):
    """A zone name that tzdata does not know."""


def tzdata_version() -> str:
    import tzdata  # type: ignore[import-untyped]  # tzdata ships no type information

    return str(getattr(tzdata, "IANA_VERSION", getattr(tzdata, "__version__", "?")))


@functools.cache
def zone_names() -> frozenset[str]:
    """Every zone name in tzdata's ``zones`` list."""
    text = importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def is_valid_zone(name: str) -> bool:
    return isinstance(name, str) and name in zone_names()


@functools.cache
def load_zone(name: str) -> ZoneInfo:
    """The zone ``name`` read from the tzdata package (cached)."""
    if not is_valid_zone(name):
        raise UnknownZoneError(name)
    resource = importlib.resources.files("tzdata.zoneinfo")
    for part in name.split("/"):
        resource = resource.joinpath(part)
    with resource.open("rb") as fh:
        return ZoneInfo.from_file(fh, key=name)


def offset_minutes_at(name: str, utc_minute: int) -> int:
    """UTC offset (whole minutes, rounded down) of zone ``name`` at a UTC epoch minute."""
    local = (_EPOCH + timedelta(minutes=utc_minute)).astimezone(load_zone(name))
    off = local.utcoffset()
    assert off is not None
    return int(off.total_seconds() // 60)


_HOUR = 60
_DAY = 1440


@functools.lru_cache(maxsize=200_000)
def _day_segments(name: str, day: int) -> tuple[tuple[int, int], ...]:
    """Offset changes within one UTC day: ((utc_minute, offset), ...), the first at
    the day's start.  The zone is sampled every hour and each change found to the
    minute by bisection (two changes less than an hour apart would be missed; tzdata
    has none)."""
    base = day * _DAY
    samples = [offset_minutes_at(name, base + h * _HOUR) for h in range(25)]
    out: list[tuple[int, int]] = [(base, samples[0])]
    for h in range(24):
        if samples[h + 1] != samples[h]:
            lo, hi = base + h * _HOUR, base + (h + 1) * _HOUR  # off(lo) old, off(hi) new
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset_minutes_at(name, mid) == samples[h]:
                    lo = mid
                else:
                    hi = mid
            if hi < base + _DAY:
                out.append((hi, samples[h + 1]))
    return tuple(out)


def offset_segments(name: str, start: int, end: int) -> list[tuple[int, int, int]]:
    """Runs ``(from_minute, to_minute, offset_minutes)`` of constant UTC offset covering
    the UTC epoch minutes ``[start, end)``."""
    if end <= start:
        return []
    points: list[tuple[int, int]] = []
    for day in range(start // _DAY, (end - 1) // _DAY + 1):
        for minute, off in _day_segments(name, day):
            if points and points[-1][1] == off:
                continue
            points.append((minute, off))
    runs: list[tuple[int, int, int]] = []
    for i, (minute, off) in enumerate(points):
        nxt = points[i + 1][0] if i + 1 < len(points) else end
        a, b = max(minute, start), min(nxt, end)
        if a < b:
            runs.append((a, b, off))
    return runs
