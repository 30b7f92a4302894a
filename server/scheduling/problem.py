"""The scheduling engine's problem, built from a visit.

* Participants are the visit's members, identified by membership id, in their
  delegation (or, without one, their role), with their zone, working hours (the
  default Monday-Friday 09:00-17:00 when they never set any), public holidays and
  unavailable times.
* A session's required participants are the members the access policy lets enter it
  (``Action.SESSION_ENTER``, with its invitees and chairs), except observers: they may
  attend but nobody waits for them.
* The sessions to schedule are the visit's non-cancelled sessions (or a chosen subset)
  in agenda order, each as long as it is now; "keep the current order" chains them
  with ``after``. Sessions left out stay where they are: during them (plus the minimum
  gap for those who attend them) everyone in the problem is unavailable, so nothing is
  placed on top of them.
* ``parley`` (ignored by the engine) records the agenda the run was made from, so an
  acceptance can tell that the agenda changed since.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import facts
from server.access.policy import Action, decide
from server.access.roles import Access, Role
from server.agenda.models import AgendaSession
from server.core.errors import invalid
from server.scheduling.models import Unavailability
from server.visits import service as visits
from server.visits.models import Visit

GRID_MINUTES = 15
GAP_MINUTES = 15
NIGHT = {"start": "22:00", "end": "07:00", "weight": 3}
MAX_WINDOW_DAYS = 92
WINDOW_MARGIN_DAYS = 2
MAX_ALTERNATIVES = 5


@dataclass(frozen=True)
class Member:
    membership_id: str
    person_id: str
    name: str
    email: str | None
    role: Role
    delegation: str  # the delegation's name, or the role when there is none
    timezone: str
    working_hours: dict[str, Any]
    holidays: list[str]


async def members(db: AsyncSession, visit_id: str) -> list[Member]:
    return [
        Member(m.id, p.id, p.name, p.email, Role(m.role), d or str(m.role).title(), p.timezone,
               dict(p.working_hours or {}), list(p.holidays or []))
        for m, p, d in await visits.member_rows(db, visit_id)
    ]


async def agenda_sessions(db: AsyncSession, visit_id: str) -> list[AgendaSession]:
    """The visit's non-cancelled sessions in agenda (time) order."""
    rows = await db.execute(
        select(AgendaSession)
        .where(AgendaSession.visit_id == visit_id, AgendaSession.cancelled_at.is_(None))
        .order_by(AgendaSession.start_utc, AgendaSession.id)
    )
    return list(rows.scalars())


async def session_people(
    db: AsyncSession, visit_id: str, sessions: Sequence[AgendaSession], people: Sequence[Member],
    *, action: Action = Action.SESSION_ENTER, required_only: bool,
) -> dict[str, list[Member]]:
    """For each session, the members the policy lets do ``action`` in it (its invitees
    and chairs taken into account); ``required_only`` leaves observers out."""
    ids = [s.id for s in sessions]
    invitees = await facts.invitees(db, ids)
    invited = {(s, m) for s, members in invitees.items() for m in members}
    chairs = await facts.named_chairs(db, ids)
    secretariat = {m.membership_id for m in people if m.role is Role.SECRETARIAT}
    out: dict[str, list[Member]] = {}
    for session in sessions:
        chaired = chairs.get(session.id) or secretariat
        out[session.id] = [
            m for m in people
            if not (required_only and m.role is Role.OBSERVER)
            and decide(action, m.role, Access(session.access), is_chair=m.membership_id in chaired,
                       is_invited=(session.id, m.membership_id) in invited)
        ]
    return out


async def visible_to(
    db: AsyncSession, visit_id: str, sessions: Sequence[AgendaSession]
) -> dict[str, set[str]]:
    """membership id -> ids of those sessions the member may see (for targeted news)."""
    people = await members(db, visit_id)
    seen = await session_people(db, visit_id, sessions, people, action=Action.SESSION_VIEW, required_only=False)
    out: dict[str, set[str]] = {m.membership_id: set() for m in people}
    for session_id, viewers in seen.items():
        for m in viewers:
            out[m.membership_id].add(session_id)
    return out


def fingerprint(sessions: Iterable[AgendaSession]) -> list[list[Any]]:
    """What a run depends on: every non-cancelled session's id, times and sequence."""
    return sorted(
        [s.id, s.start_utc.astimezone(UTC).isoformat(), s.end_utc.astimezone(UTC).isoformat(), s.sequence]
        for s in sessions
    )


# ---- the window --------------------------------------------------------------------------


def default_window(sessions: Sequence[AgendaSession], zone: str, today: date) -> tuple[date, date]:
    """The days of the current agenda, a few days either side (not before today), in ``zone``."""
    tz = ZoneInfo(zone)
    if not sessions:
        return today, today + timedelta(days=13)
    first = min(s.start_utc for s in sessions).astimezone(tz).date() - timedelta(days=WINDOW_MARGIN_DAYS)
    last = max(s.end_utc for s in sessions).astimezone(tz).date() + timedelta(days=WINDOW_MARGIN_DAYS)
    first = max(first, today)
    return first, max(last, first)


def window_from_dates(first: date, last: date, zone: str) -> tuple[datetime, datetime]:
    """From the start of ``first`` to the end of ``last`` (inclusive), local days of ``zone``."""
    if last < first:
        raise invalid("window_last: the last day must not be before the first day.")
    if (last - first).days + 1 > MAX_WINDOW_DAYS:
        raise invalid(f"window_last: the window may span at most {MAX_WINDOW_DAYS} days.")
    tz = ZoneInfo(zone)
    start = datetime.combine(first, time(0), tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tz).astimezone(UTC)
    return start, end


# ---- the problem -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    window_start: datetime
    window_end: datetime
    keep_order: bool = True
    session_ids: tuple[str, ...] | None = None  # None: every session
    alternatives: int = 3


def _floor(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def _ceil(value: datetime) -> datetime:
    floored = _floor(value)
    return floored if floored == value else floored + timedelta(minutes=1)


def _z(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def minutes_of(session: AgendaSession) -> int:
    return int((_ceil(session.end_utc) - _floor(session.start_utc)).total_seconds() // 60)


def participant_json(member: Member, unavailable: list[dict[str, str]]) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": member.membership_id, "name": member.name, "delegation": member.delegation,
                             "timezone": member.timezone}
    if member.working_hours:
        entry["working_hours"] = member.working_hours
    if member.holidays:
        entry["holidays"] = member.holidays
    if unavailable:
        entry["unavailable"] = unavailable
    return entry


async def build_problem(db: AsyncSession, visit: Visit, options: RunOptions) -> dict[str, Any]:
    """The engine's problem (JSON) for the visit's agenda; see the module docstring."""
    if options.window_end <= options.window_start:
        raise invalid("window: the end must be after the start.")
    if not 0 <= options.alternatives <= MAX_ALTERNATIVES:
        raise invalid(f"alternatives: must be between 0 and {MAX_ALTERNATIVES}.")
    sessions = await agenda_sessions(db, visit.id)
    if options.session_ids is None:
        chosen = {s.id for s in sessions}
    else:
        chosen = set(options.session_ids)
        unknown = chosen - {s.id for s in sessions}
        if unknown:
            raise invalid(f"session_ids: {sorted(unknown)[0]!r} is not a session of this visit's agenda.")
    scheduled = [s for s in sessions if s.id in chosen]
    fixed = [s for s in sessions if s.id not in chosen]
    if not scheduled:
        raise invalid("session_ids: choose at least one session to schedule.")
    people = await members(db, visit.id)
    required = await session_people(db, visit.id, sessions, people, required_only=True)
    for s in scheduled:
        if not required[s.id]:
            raise invalid(f"session_ids: nobody is required at '{s.title}', so it cannot be scheduled.")
        if minutes_of(s) > 10080:
            raise invalid(f"session_ids: '{s.title}' lasts more than a week; it cannot be scheduled.")
    in_problem = {m.membership_id: m for s in scheduled for m in required[s.id]}
    blocked: dict[str, list[dict[str, str]]] = {mid: [] for mid in in_problem}

    person_ids = {m.person_id for m in in_problem.values()}
    rows = await db.execute(
        select(Unavailability)
        .where(
            Unavailability.person_id.in_(sorted(person_ids)),
            Unavailability.end_utc > options.window_start,
            Unavailability.start_utc < options.window_end,
        )
        .order_by(Unavailability.start_utc)
    )
    by_person: dict[str, list[Unavailability]] = {}
    for u in rows.scalars():
        by_person.setdefault(u.person_id, []).append(u)
    for mid, m in in_problem.items():
        blocked[mid] = [{"start": _z(_floor(u.start_utc)), "end": _z(_ceil(u.end_utc))}
                        for u in by_person.get(m.person_id, [])]

    gap = timedelta(minutes=GAP_MINUTES)
    for f in fixed:
        if f.end_utc + gap <= options.window_start or f.start_utc - gap >= options.window_end:
            continue
        attending = {m.membership_id for m in required[f.id]}
        for mid in in_problem:
            pad = gap if mid in attending else timedelta(0)
            blocked[mid].append({"start": _z(_floor(f.start_utc) - pad), "end": _z(_ceil(f.end_utc) + pad)})

    session_entries: list[dict[str, Any]] = []
    for i, s in enumerate(scheduled):
        entry: dict[str, Any] = {"id": s.id, "title": s.title, "duration_minutes": minutes_of(s),
                                 "participants": [m.membership_id for m in required[s.id]]}
        if options.keep_order and i > 0:
            entry["after"] = scheduled[i - 1].id
        session_entries.append(entry)

    return {
        "window": {"start": _z(_ceil(options.window_start)), "end": _z(_floor(options.window_end))},
        "grid_minutes": GRID_MINUTES,
        "min_gap_minutes": GAP_MINUTES,
        "night": dict(NIGHT),
        "participants": [participant_json(m, blocked[mid]) for mid, m in in_problem.items()],
        "sessions": session_entries,
        "parley": {
            "visit_id": visit.id,
            "agenda": fingerprint(sessions),
            "fixed": [f.id for f in fixed],
            "keep_order": options.keep_order,
            "alternatives": options.alternatives,
        },
    }
