"""Participants' availability: time zone, working hours, public holidays, unavailable times.

Availability belongs to the person (it is the same in every visit they take part in);
changes are made in a visit's context and audited there. Values are validated like the
scheduling engine validates its input (tzdata zone names, ``HH:MM`` ranges that do not
cross midnight, intervals whose end is after their start), and every failure is a
``DomainError(invalid)`` whose message starts with the offending field.

Unavailable times are stored as UTC instants. They are entered and shown in the
person's own zone: a value without a UTC offset (``2027-03-25T09:00``, as a
``datetime-local`` input sends it) is read in that zone; one with an offset
(``2027-03-25T08:00:00Z``) is taken as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from schedules.zones import is_valid_zone, load_zone
from server.audit import service as audit
from server.core.errors import invalid, not_found
from server.core.times import checked_date, checked_instant
from server.people.models import DEFAULT_WORKING_HOURS, Membership, Person
from server.scheduling.models import Unavailability

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_ALIASES = {
    **{d: d for d in DAYS},
    **dict(zip(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"), DAYS, strict=True)),
}
DAY_NAMES = dict(zip(DAYS, ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"), strict=True))
_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
MAX_RANGES_PER_DAY = 12
MAX_HOLIDAYS = 400
MAX_UNAVAILABLE = 300
MAX_NOTE = 200

WorkingHours = dict[str, list[list[str]]]


# ---- values ------------------------------------------------------------------------------


def check_zone(value: Any, where: str) -> str:
    if not isinstance(value, str) or not is_valid_zone(value.strip()):
        shown = value if isinstance(value, str) else type(value).__name__
        raise invalid(f"{where}: unknown time zone {shown!r} (use an IANA name such as 'America/Bogota').")
    return value.strip()


def _clock(value: Any, where: str, *, end: bool) -> int:
    if not isinstance(value, str) or not _HHMM.match(value.strip()):
        raise invalid(f"{where}: expected a time 'HH:MM', got {value!r}.")
    text = value.strip()
    h, m = int(text[:2]), int(text[3:])
    minutes = h * 60 + m
    if minutes > 1440 or (minutes == 1440 and not end):
        raise invalid(f"{where}: {value!r} is not a time of day.")
    return minutes


def check_ranges(value: Any, where: str) -> list[list[str]]:
    """``[["09:00", "12:00"], ...]`` sorted; each end after its start (24:00 allowed as an end)."""
    if not isinstance(value, list):
        raise invalid(f"{where}: expected a list of [\"HH:MM\", \"HH:MM\"] ranges.")
    if len(value) > MAX_RANGES_PER_DAY:
        raise invalid(f"{where}: at most {MAX_RANGES_PER_DAY} ranges.")
    spans: list[tuple[int, int, list[str]]] = []
    for i, rng in enumerate(value):
        here = f"{where}[{i}]"
        if not isinstance(rng, list) or len(rng) != 2:
            raise invalid(f"{here}: expected a pair [\"HH:MM\", \"HH:MM\"].")
        a = _clock(rng[0], f"{here}[0]", end=False)
        b = _clock(rng[1], f"{here}[1]", end=True)
        if b <= a:
            raise invalid(f"{here}: the end ({rng[1]}) must be after the start ({rng[0]}); "
                          "a range cannot cross midnight, split it in two.")
        spans.append((a, b, [rng[0].strip(), rng[1].strip()]))
    spans.sort()
    for (_, b0, r0), (a1, _, r1) in pairwise(spans):
        if a1 < b0:
            raise invalid(f"{where}: the ranges {r0[0]}-{r0[1]} and {r1[0]}-{r1[1]} overlap.")
    return [r for _, _, r in spans]


def check_working_hours(value: Any, where: str = "working_hours") -> WorkingHours:
    """Every weekday present in the result: a day missing from ``value`` has no working hours."""
    if not isinstance(value, dict):
        raise invalid(f"{where}: expected an object such as {{\"mon\": [[\"09:00\", \"17:00\"]]}}.")
    out: WorkingHours = {d: [] for d in DAYS}
    seen: set[str] = set()
    for key, ranges in value.items():
        day = _DAY_ALIASES.get(str(key).lower())
        if day is None:
            raise invalid(f"{where}.{key}: unknown weekday (use {', '.join(DAYS)}).")
        if day in seen:
            raise invalid(f"{where}.{key}: weekday given twice.")
        seen.add(day)
        out[day] = check_ranges(ranges, f"{where}.{key}")
    return out


def parse_ranges_text(text: str, where: str) -> list[list[str]]:
    """``"09:00-12:00, 13:00-17:30"`` (as typed in the form) -> ranges; empty: none."""
    ranges: list[list[str]] = []
    for part in re.split(r"[,;]", text):
        part = part.strip()
        if not part:
            continue
        pieces = re.split(r"\s*[-–]\s*", part)
        if len(pieces) != 2:
            raise invalid(f"{where}: {part!r} is not a range such as 09:00-17:00.")
        ranges.append([pieces[0], pieces[1]])
    return check_ranges(ranges, where)


def check_holidays(value: Any, where: str = "holidays") -> list[str]:
    if not isinstance(value, list):
        raise invalid(f"{where}: expected a list of dates 'YYYY-MM-DD'.")
    if len(value) > MAX_HOLIDAYS:
        raise invalid(f"{where}: at most {MAX_HOLIDAYS} dates.")
    out: set[str] = set()
    for i, item in enumerate(value):
        try:
            if not isinstance(item, str) or len(item.strip()) != 10:
                raise ValueError
            day = date.fromisoformat(item.strip())
        except ValueError:
            raise invalid(f"{where}[{i}]: expected a date 'YYYY-MM-DD', got {item!r}.") from None
        out.add(checked_date(day, f"{where}[{i}]").isoformat())
    return sorted(out)


def parse_holidays_text(text: str) -> list[str]:
    return check_holidays([t for t in re.split(r"[\s,;]+", text) if t])


def parse_instant(value: Any, zone: str, where: str) -> datetime:
    """An instant in UTC: a value with an offset as given, one without read in ``zone``."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{where}: expected a date and time such as 2027-03-25T09:00.")
    text = value.strip()
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(f"{where}: {value!r} is not a date and time such as 2027-03-25T09:00.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=load_zone(zone))
    return checked_instant(moment, where).replace(microsecond=0)


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime
    note: str = ""


def check_interval(item: Any, zone: str, where: str) -> Interval:
    if not isinstance(item, dict):
        raise invalid(f"{where}: expected an object {{\"start\", \"end\"}}.")
    start = parse_instant(item.get("start"), zone, f"{where}.start")
    end = parse_instant(item.get("end"), zone, f"{where}.end")
    if end <= start:
        raise invalid(f"{where}.end: must be after the start.")
    note = item.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise invalid(f"{where}.note: expected text of at most {MAX_NOTE} characters.")
    return Interval(start, end, note.strip())


def check_intervals(value: Any, zone: str, where: str = "unavailable") -> list[Interval]:
    if not isinstance(value, list):
        raise invalid(f"{where}: expected a list of {{\"start\", \"end\"}} objects.")
    if len(value) > MAX_UNAVAILABLE:
        raise invalid(f"{where}: at most {MAX_UNAVAILABLE} entries.")
    return [check_interval(item, zone, f"{where}[{i}]") for i, item in enumerate(value)]


# ---- changes -----------------------------------------------------------------------------


@dataclass
class Change:
    """What to change; ``None`` leaves a field as it is."""

    timezone: str | None = None
    working_hours: WorkingHours | None = None
    holidays: list[str] | None = None
    replace_unavailable: list[Interval] | None = None
    add_unavailable: list[Interval] = field(default_factory=list)
    remove_unavailable: set[str] = field(default_factory=set)


_API_KEYS = {"timezone", "working_hours", "holidays", "unavailable"}


def change_from_json(body: Any, current_zone: str) -> Change:
    """The JSON API body: any of ``timezone``, ``working_hours``, ``holidays`` and
    ``unavailable`` (which replaces the stored list)."""
    if not isinstance(body, dict):
        raise invalid("body: expected an object.")
    unknown = sorted(set(body) - _API_KEYS)
    if unknown:
        raise invalid(f"{unknown[0]}: unknown field (expected {', '.join(sorted(_API_KEYS))}).")
    change = Change()
    if body.get("timezone") is not None:
        change.timezone = check_zone(body["timezone"], "timezone")
    zone = change.timezone or current_zone
    if body.get("working_hours") is not None:
        change.working_hours = check_working_hours(body["working_hours"])
    if body.get("holidays") is not None:
        change.holidays = check_holidays(body["holidays"])
    if body.get("unavailable") is not None:
        change.replace_unavailable = check_intervals(body["unavailable"], zone)
    return change


NEW_ROWS = 3  # empty "add an unavailable time" rows on the page


def change_from_form(form: dict[str, list[str]], current_zone: str) -> Change:
    """The availability page's form: ``timezone``, ``hours_mon`` ... ``hours_sun`` as
    "09:00-12:00, 13:00-17:30", ``holidays`` as dates separated by spaces or commas,
    ``remove`` (ids of unavailable times to delete) and ``new_start_N``/``new_end_N``/
    ``new_note_N`` in the person's zone. A field absent from the form is left as it is."""

    def one(name: str) -> str | None:
        values = form.get(name)
        return values[0] if values else None

    change = Change()
    zone_text = one("timezone")
    if zone_text is not None:
        change.timezone = check_zone(zone_text, "timezone")
    zone = change.timezone or current_zone
    if any(f"hours_{d}" in form for d in DAYS):
        change.working_hours = {d: parse_ranges_text(one(f"hours_{d}") or "", f"hours_{d}") for d in DAYS}
    holidays = one("holidays")
    if holidays is not None:
        change.holidays = parse_holidays_text(holidays)
    change.remove_unavailable = {v for v in form.get("remove", []) if v}
    for n in range(1, NEW_ROWS + 1):
        start, end, note = one(f"new_start_{n}") or "", one(f"new_end_{n}") or "", one(f"new_note_{n}") or ""
        if not (start.strip() or end.strip()):
            continue
        if not start.strip():
            raise invalid(f"new_start_{n}: give the start of the unavailable time.")
        if not end.strip():
            raise invalid(f"new_end_{n}: give the end of the unavailable time.")
        interval = check_interval({"start": start, "end": end, "note": note}, zone, f"new_{n}")
        change.add_unavailable.append(interval)
    return change


# ---- reading and writing -----------------------------------------------------------------


@dataclass(frozen=True)
class Availability:
    membership_id: str
    person: Person
    role: str
    working_hours: WorkingHours  # effective: the default when none were set
    default_hours: bool
    holidays: list[str]
    unavailable: list[Unavailability]

    def as_json(self) -> dict[str, Any]:
        zone = ZoneInfo(self.person.timezone) if is_valid_zone(self.person.timezone) else UTC
        return {
            "membership_id": self.membership_id,
            "name": self.person.name,
            "timezone": self.person.timezone,
            "working_hours": self.working_hours,
            "default_working_hours": self.default_hours,
            "holidays": self.holidays,
            "unavailable": [
                {
                    "id": u.id,
                    "start_utc": _z(u.start_utc),
                    "end_utc": _z(u.end_utc),
                    "start_local": u.start_utc.astimezone(zone).isoformat(),
                    "end_local": u.end_utc.astimezone(zone).isoformat(),
                    "note": u.note,
                }
                for u in self.unavailable
            ],
        }


def _z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def effective_hours(stored: dict[str, Any] | None) -> tuple[WorkingHours, bool]:
    """Stored working hours, or Monday-Friday 09:00-17:00 when none were ever set."""
    if not stored:
        return {d: [list(r) for r in DEFAULT_WORKING_HOURS.get(d, [])] for d in DAYS}, True
    return {d: [list(r) for r in stored.get(d, [])] for d in DAYS}, False


async def member_of_visit(db: AsyncSession, visit_id: str, membership_id: str) -> tuple[Membership, Person]:
    membership = await db.get(Membership, membership_id)
    if membership is None or membership.visit_id != visit_id:
        raise not_found("Participant")
    person = await db.get(Person, membership.person_id)
    if person is None:  # pragma: no cover - the foreign key cascades
        raise not_found("Participant")
    return membership, person


async def load(db: AsyncSession, visit_id: str, membership_id: str) -> Availability:
    membership, person = await member_of_visit(db, visit_id, membership_id)
    rows = await db.execute(
        select(Unavailability).where(Unavailability.person_id == person.id).order_by(Unavailability.start_utc)
    )
    hours, default = effective_hours(person.working_hours)
    return Availability(membership.id, person, membership.role, hours, default, list(person.holidays or []),
                        list(rows.scalars()))


async def _apply(db: AsyncSession, person: Person, change: Change) -> dict[str, Any]:
    """Apply a validated change to a person; returns what changed (for the audit log)."""
    record: dict[str, Any] = {}
    if change.timezone is not None and change.timezone != person.timezone:
        record["timezone"] = {"from": person.timezone, "to": change.timezone}
        person.timezone = change.timezone
    if change.working_hours is not None and change.working_hours != (person.working_hours or {}):
        record["working_hours"] = change.working_hours
        person.working_hours = change.working_hours
    if change.holidays is not None and change.holidays != list(person.holidays or []):
        record["holidays"] = change.holidays
        person.holidays = change.holidays
    removed = added = 0
    if change.replace_unavailable is not None:
        result = await db.execute(delete(Unavailability).where(Unavailability.person_id == person.id))
        removed += int(getattr(result, "rowcount", 0) or 0)
    if change.remove_unavailable:
        result = await db.execute(
            delete(Unavailability).where(
                Unavailability.person_id == person.id, Unavailability.id.in_(sorted(change.remove_unavailable))
            )
        )
        removed += int(getattr(result, "rowcount", 0) or 0)
    for interval in [*(change.replace_unavailable or []), *change.add_unavailable]:
        db.add(Unavailability(person_id=person.id, start_utc=interval.start, end_utc=interval.end, note=interval.note))
        added += 1
    if removed or added:
        record["unavailable"] = {"removed": removed, "added": added}
    return record


async def save(
    db: AsyncSession, visit_id: str, membership_id: str, change: Change, *, actor_person_id: str
) -> Availability:
    """Change one participant's availability (their own, or anyone's for the secretariat),
    audited as ``availability.changed`` when anything changed."""
    _, person = await member_of_visit(db, visit_id, membership_id)
    if change.add_unavailable:
        count = len((await db.execute(select(Unavailability.id).where(Unavailability.person_id == person.id))).all())
        if count + len(change.add_unavailable) - len(change.remove_unavailable) > MAX_UNAVAILABLE:
            raise invalid(f"unavailable: at most {MAX_UNAVAILABLE} entries.")
    record = await _apply(db, person, change)
    if record:
        await audit.record(
            db, "availability.changed", actor_person_id=actor_person_id, visit_id=visit_id,
            subject=membership_id, data={"by": "self" if actor_person_id == person.id else "secretariat", **record},
        )
    await db.flush()
    return await load(db, visit_id, membership_id)


# ---- import ------------------------------------------------------------------------------


async def import_json(db: AsyncSession, visit_id: str, data: Any, *, actor_person_id: str) -> list[str]:
    """Secretariat: import availability in the engine's problem format (a whole problem,
    ``{"participants": [...]}`` or the list itself). Each entry is matched to a participant
    of the visit by ``membership_id``, ``email``, or an ``id`` that is either; its
    ``timezone``, ``working_hours`` (a day missing has none), ``holidays`` and
    ``unavailable`` (which replace what is stored) are validated, all entries before any
    is written. ``delegation`` and other keys are ignored. Returns the membership ids."""
    entries = data.get("participants") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise invalid("participants: expected a non-empty list (the participants part of a scheduling problem).")
    if len(entries) > 1000:
        raise invalid("participants: at most 1000 entries.")
    rows = await db.execute(
        select(Membership, Person).join(Person, Person.id == Membership.person_id).where(Membership.visit_id == visit_id)
    )
    by_id: dict[str, tuple[Membership, Person]] = {}
    by_email: dict[str, tuple[Membership, Person]] = {}
    for membership, person in rows.all():
        by_id[membership.id] = (membership, person)
        if person.email:
            by_email[person.email.lower()] = (membership, person)
    planned: list[tuple[Membership, Person, Change]] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"participants[{i}]"
        if not isinstance(entry, dict):
            raise invalid(f"{where}: expected an object.")
        keys = [entry.get("membership_id"), entry.get("email"), entry.get("id")]
        found = None
        for key in keys:
            if isinstance(key, str) and key:
                found = by_id.get(key) or by_email.get(key.lower())
                if found:
                    break
        if found is None:
            named = next((k for k in keys if isinstance(k, str) and k), None)
            raise invalid(f"{where}: no participant of this visit has the membership id or e-mail {named!r}.")
        membership, person = found
        if membership.id in seen:
            raise invalid(f"{where}: {person.name} appears twice.")
        seen.add(membership.id)
        change = Change()
        if entry.get("timezone") is not None:
            change.timezone = check_zone(entry["timezone"], f"{where}.timezone")
        zone = change.timezone or person.timezone
        if entry.get("working_hours") is not None:
            change.working_hours = check_working_hours(entry["working_hours"], f"{where}.working_hours")
        if entry.get("holidays") is not None:
            change.holidays = check_holidays(entry["holidays"], f"{where}.holidays")
        if entry.get("unavailable") is not None:
            change.replace_unavailable = check_intervals(entry["unavailable"], zone, f"{where}.unavailable")
        planned.append((membership, person, change))
    changed: dict[str, Any] = {}
    for membership, person, change in planned:
        record = await _apply(db, person, change)
        if record:
            changed[membership.id] = sorted(record)
    await audit.record(
        db, "availability.imported", actor_person_id=actor_person_id, visit_id=visit_id,
        subject=visit_id, data={"participants": len(planned), "changed": changed},
    )
    await db.flush()
    return [m.id for m, _, _ in planned]
