"""The time-zone strip under each agenda session: one row per (delegation, zone) of the
people who may attend it, with the local time and how that time falls for them.

The band comes from the scheduling engine's own pricing (``schedules.prices``): each
minute of the session is, for each person, inside their working hours, at night (the
night band 22:00-07:00) or otherwise outside working hours. A row's band is the worst of
its members' ("night" over "outside" over "work"), so one person up at 06:00 is enough
to show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from schedules import ProblemError, parse_problem
from schedules.prices import KIND_NIGHT, KIND_WORK, CostModel
from schedules.zones import is_valid_zone
from server.agenda.models import AgendaSession
from server.core.times import LocalTime, local
from server.scheduling import problem as problems

WORK, OUTSIDE, NIGHT, UNKNOWN = "work", "outside", "night", "unknown"
_RANK = {UNKNOWN: -1, WORK: 0, OUTSIDE: 1, NIGHT: 2}
# Shown next to the colour (words, not colour alone); translated in the template.
LABELS = {WORK: "working hours", OUTSIDE: "outside working hours", NIGHT: "night", UNKNOWN: "unknown"}


@dataclass(frozen=True)
class StripRow:
    delegation: str
    zone: str
    start: LocalTime
    end: LocalTime
    band: str
    people: int

    @property
    def label(self) -> str:
        return LABELS[self.band]


def _bands(session: AgendaSession, people: Sequence[problems.Member]) -> dict[str, str]:
    """membership id -> band for this session, priced by the engine."""
    start = session.start_utc.astimezone(UTC).replace(second=0, microsecond=0)
    minutes = max(1, problems.minutes_of(session))
    priced = [m for m in people if is_valid_zone(m.timezone)]
    if not priced:
        return {}
    data: dict[str, Any] = {
        "window": {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "end": (start + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")},
        "grid_minutes": 1, "min_gap_minutes": 0, "night": dict(problems.NIGHT),
        "participants": [problems.participant_json(m, []) for m in priced],
        "sessions": [{"id": "s", "duration_minutes": minutes, "participants": [m.membership_id for m in priced]}],
    }
    try:
        cm = CostModel(parse_problem(data))
    except ProblemError:  # stored hours the engine refuses: say nothing rather than guess
        return {}
    w0 = cm.w0
    out: dict[str, str] = {}
    for m in priced:
        counts = cm.kind_counts(m.membership_id, w0, w0 + minutes)
        if counts[KIND_NIGHT]:
            out[m.membership_id] = NIGHT
        elif counts[KIND_WORK] < minutes:
            out[m.membership_id] = OUTSIDE
        else:
            out[m.membership_id] = WORK
    return out


async def zone_strip(
    db: AsyncSession, visit_id: str, sessions: Sequence[AgendaSession]
) -> dict[str, list[StripRow]]:
    """session id -> rows, earliest local clock (west) last: sorted by UTC offset, then name."""
    if not sessions:
        return {}
    people = await problems.members(db, visit_id)
    attending = await problems.session_people(db, visit_id, sessions, people, required_only=False)
    out: dict[str, list[StripRow]] = {}
    for session in sessions:
        bands = _bands(session, attending[session.id])
        groups: dict[tuple[str, str], list[str]] = {}
        for m in attending[session.id]:
            groups.setdefault((m.delegation, m.timezone), []).append(bands.get(m.membership_id, UNKNOWN))
        rows = []
        for (delegation, zone), member_bands in groups.items():
            if not is_valid_zone(zone):
                continue
            rows.append(StripRow(delegation, zone, local(session.start_utc, zone), local(session.end_utc, zone),
                                 max(member_bands, key=_RANK.__getitem__), len(member_bands)))
        rows.sort(key=lambda r: (-(r.start.value.utcoffset() or timedelta(0)), r.delegation))
        out[session.id] = rows
    return out
