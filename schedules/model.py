"""The scheduling problem: typed input model, parsed and validated from JSON.

Every validation failure raises :class:`ProblemError`, whose message is one line
that starts with the offending field (``participants[1].timezone: unknown time zone
'Europe/Viena'``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .zones import is_valid_zone

__all__ = [
    "DAY_KEYS",
    "DEFAULT_WORKING_HOURS",
    "Interval",
    "Participant",
    "Problem",
    "ProblemError",
    "Session",
    "epoch_minutes",
    "format_utc",
    "from_epoch_minutes",
    "parse_problem",
]

DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_ALIASES = {
    **{k: i for i, k in enumerate(DAY_KEYS)},
    **{n: i for i, n in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))},
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_WINDOW_DAYS = 366

#: weekday (0 = Monday) -> sorted, disjoint ((start_minute, end_minute), ...) local
WorkingHours = Mapping[int, tuple[tuple[int, int], ...]]

DEFAULT_WORKING_HOURS: dict[int, tuple[tuple[int, int], ...]] = {
    d: ((9 * 60, 17 * 60),) for d in range(5)
}


class ProblemError(ValueError):
    """Invalid problem input; ``field`` names the offending field."""

    def __init__(self, field_path: str, message: str) -> None:
        super().__init__(f"{field_path}: {message}")
        self.field = field_path
        self.message = message


def epoch_minutes(dt: datetime) -> int:
    """Whole minutes since 1970-01-01T00:00Z of an aware datetime."""
    delta = dt - _EPOCH
    return int(delta.total_seconds() // 60)


def from_epoch_minutes(m: int) -> datetime:
    return _EPOCH + timedelta(minutes=m)


def format_utc(m: int) -> str:
    return from_epoch_minutes(m).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Interval:
    """A half-open UTC interval [start, end)."""

    start: datetime
    end: datetime

    @property
    def start_min(self) -> int:
        return epoch_minutes(self.start)

    @property
    def end_min(self) -> int:
        return -(-int((self.end - _EPOCH).total_seconds()) // 60)


@dataclass(frozen=True)
class Participant:
    id: str
    delegation: str
    timezone: str
    working_hours: WorkingHours = field(default_factory=lambda: dict(DEFAULT_WORKING_HOURS))
    unavailable: tuple[Interval, ...] = ()
    holidays: frozenset[date] = frozenset()

    @functools.cached_property
    def _profile_key(self) -> tuple[Any, ...]:
        wh = tuple(tuple(self.working_hours.get(d, ())) for d in range(7))
        return (self.timezone, wh, tuple(sorted(self.holidays)))

    def profile_key(self) -> tuple[Any, ...]:
        """Participants with equal keys have identical minute prices."""
        return self._profile_key


@dataclass(frozen=True)
class Session:
    id: str
    duration_minutes: int
    participants: tuple[str, ...]
    after: str | None = None


@dataclass(frozen=True)
class Problem:
    window_start: datetime
    window_end: datetime
    participants: tuple[Participant, ...]
    sessions: tuple[Session, ...]
    grid_minutes: int = 15
    min_gap_minutes: int = 15
    night_start: int = 22 * 60  # local minute of day
    night_end: int = 7 * 60
    night_weight: int = 3

    def __post_init__(self) -> None:
        validate(self)

    @property
    def participant_by_id(self) -> dict[str, Participant]:
        return {p.id: p for p in self.participants}


# --------------------------------------------------------------------------- parsing

_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


def _req(obj: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in obj or obj[key] is None:
        raise ProblemError(f"{path}.{key}" if path else key, "missing")
    return obj[key]


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProblemError(path, "must be an object")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProblemError(path, "must be a list")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProblemError(path, "must be a non-empty string")
    return value


def _int(value: Any, path: str, lo: int, hi: int | None = None) -> int:
    number: int
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise ProblemError(path, "must be a whole number")
    if number < lo or (hi is not None and number > hi):
        rng = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise ProblemError(path, f"must be {rng}, got {number}")
    return number


def _instant(value: Any, path: str) -> datetime:
    if not isinstance(value, str):
        raise ProblemError(path, "must be an ISO-8601 time string such as 2027-03-24T00:00:00Z")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ProblemError(path, f"not an ISO-8601 time: {value!r}") from None
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ProblemError(path, f"must carry a UTC offset, e.g. 'Z': {value!r}")
    dt = dt.astimezone(UTC)
    if dt.second or dt.microsecond:
        raise ProblemError(path, f"must be a whole minute: {value!r}")
    return dt


def _clock(value: Any, path: str, allow_24: bool) -> int:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise ProblemError(path, f"must be a local time 'HH:MM', got {value!r}")
    h, m = int(value[:2]), int(value[3:])
    minutes = h * 60 + m
    if minutes > 1440 or (minutes == 1440 and not allow_24):
        raise ProblemError(path, f"not a valid time of day: {value!r}")
    return minutes


def _working_hours(value: Any, path: str) -> dict[int, tuple[tuple[int, int], ...]]:
    obj = _obj(value, path)
    out: dict[int, tuple[tuple[int, int], ...]] = {}
    for key, ranges in obj.items():
        kpath = f"{path}.{key}"
        day = _DAY_ALIASES.get(str(key).lower())
        if day is None:
            raise ProblemError(kpath, f"unknown weekday {key!r} (use {', '.join(DAY_KEYS)})")
        if day in out:
            raise ProblemError(kpath, "weekday given twice")
        spans: list[tuple[int, int]] = []
        for i, rng in enumerate(_list(ranges, kpath)):
            rpath = f"{kpath}[{i}]"
            if not isinstance(rng, list) or len(rng) != 2:
                raise ProblemError(rpath, "must be a pair [\"HH:MM\", \"HH:MM\"]")
            a = _clock(rng[0], f"{rpath}[0]", allow_24=False)
            b = _clock(rng[1], f"{rpath}[1]", allow_24=True)
            if b <= a:
                raise ProblemError(rpath, "end must be after start (ranges cannot cross midnight; split them)")
            spans.append((a, b))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        out[day] = tuple(merged)
    return out


def _intervals(value: Any, path: str) -> tuple[Interval, ...]:
    out = []
    for i, item in enumerate(_list(value, path)):
        ipath = f"{path}[{i}]"
        obj = _obj(item, ipath)
        start = _instant(_req(obj, "start", ipath), f"{ipath}.start")
        end = _instant(_req(obj, "end", ipath), f"{ipath}.end")
        if end <= start:
            raise ProblemError(f"{ipath}.end", "must be after start")
        out.append(Interval(start, end))
    return tuple(out)


def _holidays(value: Any, path: str) -> frozenset[date]:
    out = set()
    for i, item in enumerate(_list(value, path)):
        try:
            if not isinstance(item, str) or len(item) != 10:
                raise ValueError
            out.add(date.fromisoformat(item))
        except ValueError:
            raise ProblemError(f"{path}[{i}]", f"must be a local date 'YYYY-MM-DD', got {item!r}") from None
    return frozenset(out)


def parse_problem(data: Any) -> Problem:
    """Build a validated :class:`Problem` from parsed JSON."""
    root = _obj(data, "problem")
    window = _obj(_req(root, "window", ""), "window")
    w_start = _instant(_req(window, "start", "window"), "window.start")
    w_end = _instant(_req(window, "end", "window"), "window.end")

    grid = _int(root.get("grid_minutes", 15), "grid_minutes", 1, 1440)
    gap = _int(root.get("min_gap_minutes", 15), "min_gap_minutes", 0, 10080)
    night_start, night_end, weight = 22 * 60, 7 * 60, 3
    if root.get("night") is not None:
        night = _obj(root["night"], "night")
        if night.get("start") is not None:
            night_start = _clock(night["start"], "night.start", allow_24=False)
        if night.get("end") is not None:
            night_end = _clock(night["end"], "night.end", allow_24=True) % 1440
        if night.get("weight") is not None:
            weight = _int(night["weight"], "night.weight", 0, 1000)

    participants = []
    for i, item in enumerate(_list(_req(root, "participants", ""), "participants")):
        path = f"participants[{i}]"
        obj = _obj(item, path)
        pid = _str(_req(obj, "id", path), f"{path}.id")
        delegation = _str(_req(obj, "delegation", path), f"{path}.delegation")
        tz = _req(obj, "timezone", path)
        if not isinstance(tz, str) or not is_valid_zone(tz):
            raise ProblemError(f"{path}.timezone", f"unknown time zone {tz!r} (not in tzdata)")
        wh = (dict(DEFAULT_WORKING_HOURS) if obj.get("working_hours") is None
              else _working_hours(obj["working_hours"], f"{path}.working_hours"))
        unavailable = (_intervals(obj["unavailable"], f"{path}.unavailable")
                       if obj.get("unavailable") is not None else ())
        holidays = (_holidays(obj["holidays"], f"{path}.holidays")
                    if obj.get("holidays") is not None else frozenset())
        participants.append(Participant(pid, delegation, tz, wh, unavailable, holidays))

    sessions = []
    for i, item in enumerate(_list(_req(root, "sessions", ""), "sessions")):
        path = f"sessions[{i}]"
        obj = _obj(item, path)
        sid = _str(_req(obj, "id", path), f"{path}.id")
        dur = _int(_req(obj, "duration_minutes", path), f"{path}.duration_minutes", 1, 10080)
        members = tuple(_str(x, f"{path}.participants[{j}]")
                        for j, x in enumerate(_list(_req(obj, "participants", path), f"{path}.participants")))
        after = obj.get("after")
        if after is not None:
            after = _str(after, f"{path}.after")
        sessions.append(Session(sid, dur, members, after))

    return Problem(w_start, w_end, tuple(participants), tuple(sessions), grid, gap,
                   night_start, night_end, weight)


def validate(p: Problem) -> None:
    """Cross-field checks, shared by the JSON parser and the Python constructors."""
    if p.window_start.tzinfo is None or p.window_end.tzinfo is None:
        raise ProblemError("window", "start and end must be aware UTC datetimes")
    if p.window_end <= p.window_start:
        raise ProblemError("window.end", "must be after window.start")
    if p.window_end - p.window_start > timedelta(days=MAX_WINDOW_DAYS):
        raise ProblemError("window.end", f"the window may span at most {MAX_WINDOW_DAYS} days")
    if not 1 <= p.grid_minutes <= 1440 or 1440 % p.grid_minutes:
        raise ProblemError("grid_minutes", f"must divide a day (1440 minutes) evenly, got {p.grid_minutes}")
    if p.min_gap_minutes < 0:
        raise ProblemError("min_gap_minutes", "must not be negative")
    if p.night_weight < 0:
        raise ProblemError("night.weight", "must not be negative")
    seen: dict[str, int] = {}
    for i, part in enumerate(p.participants):
        if part.id in seen:
            raise ProblemError(f"participants[{i}].id", f"duplicate participant id {part.id!r}")
        seen[part.id] = i
        if not is_valid_zone(part.timezone):
            raise ProblemError(f"participants[{i}].timezone", f"unknown time zone {part.timezone!r} (not in tzdata)")
    if not p.sessions:
        raise ProblemError("sessions", "must list at least one session")
    sids: dict[str, int] = {}
    for i, s in enumerate(p.sessions):
        if s.id in sids:
            raise ProblemError(f"sessions[{i}].id", f"duplicate session id {s.id!r}")
        sids[s.id] = i
        if s.duration_minutes < 1:
            raise ProblemError(f"sessions[{i}].duration_minutes", "must be at least 1")
        if not s.participants:
            raise ProblemError(f"sessions[{i}].participants", "must name at least one participant")
        if len(set(s.participants)) != len(s.participants):
            raise ProblemError(f"sessions[{i}].participants", "names a participant twice")
        for j, pid in enumerate(s.participants):
            if pid not in seen:
                raise ProblemError(f"sessions[{i}].participants[{j}]", f"unknown participant id {pid!r}")
    for i, s in enumerate(p.sessions):
        if s.after is None:
            continue
        if s.after not in sids:
            raise ProblemError(f"sessions[{i}].after", f"unknown session id {s.after!r}")
        if s.after == s.id:
            raise ProblemError(f"sessions[{i}].after", "a session cannot follow itself")
    for i, s in enumerate(p.sessions):  # cycles
        cur, steps = s, 0
        while cur.after is not None:
            cur = p.sessions[sids[cur.after]]
            steps += 1
            if cur.id == s.id or steps > len(p.sessions):
                raise ProblemError(f"sessions[{i}].after", f"'after' forms a cycle through {s.id!r}")
