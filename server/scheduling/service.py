"""Scheduler runs: build the problem, solve it off the event loop, store the proposals,
and accept one (moving the sessions).

A run stores the engine's problem and its answer; ``proposals`` reads them back as the
best schedule followed by the alternatives, each with every session's new times. An
acceptance moves the sessions whose time changes (raising their iCalendar ``sequence``),
marks the run accepted and audits it, all in one transaction; the caller announces the
returned ``AgendaChanged`` only after that commit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from schedules import ProblemError, parse_problem, solve
from schedules.explain import explain_session
from schedules.model import epoch_minutes
from schedules.prices import CostModel
from server.agenda.models import AgendaSession
from server.audit import service as audit
from server.core.clock import iso_z, utcnow
from server.core.errors import DomainError, conflict, invalid, not_found
from server.core.events import DomainEvent
from server.core.locks import KeyedLock
from server.scheduling import problem as problems
from server.scheduling.models import ScheduleRun
from server.visits.models import Visit

# CP-SAT (large unordered agendas) stops here; the page says when an answer is not proven.
TIME_LIMIT_SECONDS = 20.0
# Acceptances for one visit in this process run one at a time (SQLite cannot upgrade a
# reader that another writer overtook); PostgreSQL also locks the visit row across
# processes. The commit happens under the lock, so the next acceptance's staleness check
# sees this one's moves (like the room's unit of work, an exception to "the transport
# commits").
_ACCEPTING = KeyedLock("schedule.accept")


def _problem_error(err: ProblemError, data: dict[str, Any]) -> DomainError:
    """The engine's field path, with the participant or session it names spelled out."""
    where = err.field
    for kind, key in (("participants", "name"), ("sessions", "title")):
        if where.startswith(f"{kind}["):
            try:
                index = int(where[len(kind) + 1:where.index("]")])
                where = f"{where} ({data[kind][index][key]})"
            except (ValueError, IndexError, KeyError):
                pass
    return invalid(f"{where}: {err.message}")


def _solve(data: dict[str, Any], alternatives: int) -> dict[str, Any]:
    """CPU-bound: run in a worker thread."""
    problem = parse_problem(data)
    result = solve(problem, alternatives=alternatives, time_limit=TIME_LIMIT_SECONDS)
    out = result.to_json()
    if result.alternatives:
        # The engine explains its best schedule; explain the alternatives the same way so
        # the proposals can be compared side by side.
        cm = CostModel(problem)
        by_id = {s.id: s for s in problem.sessions}
        for alt in out["alternatives"]:
            for placed in alt["sessions"]:
                start = epoch_minutes(datetime.fromisoformat(placed["start_utc"].replace("Z", "+00:00")))
                placed["explanation"] = explain_session(cm, by_id[placed["id"]], start)
    return out


async def run_scheduler(
    db: AsyncSession, visit: Visit, options: problems.RunOptions, *, actor_person_id: str
) -> ScheduleRun:
    """Build the visit's problem, solve it in a thread (it is CPU bound) and store the run."""
    data = await problems.build_problem(db, visit, options)
    try:
        parse_problem(data)  # fail fast, with the field named, before going to a thread
    except ProblemError as err:
        raise _problem_error(err, data) from None
    await db.commit()  # no transaction stays open while the engine works
    result = await asyncio.to_thread(_solve, data, options.alternatives)
    run = ScheduleRun(visit_id=visit.id, created_by=actor_person_id, problem=data, result=result)
    db.add(run)
    await db.flush()
    await audit.record(
        db, "schedule.run", actor_person_id=actor_person_id, visit_id=visit.id, subject=run.id,
        data={"sessions": len(data["sessions"]), "participants": len(data["participants"]),
              "window": data["window"], "total_cost": result.get("total_cost"),
              "alternatives": len(result.get("alternatives", [])), "feasible": "infeasible" not in result},
    )
    await db.commit()
    return run


async def get_run(db: AsyncSession, visit_id: str, run_id: str) -> ScheduleRun:
    run = await db.get(ScheduleRun, run_id)
    if run is None or run.visit_id != visit_id:
        raise not_found("Scheduler run")
    return run


async def recent_runs(db: AsyncSession, visit_id: str, limit: int = 10) -> list[ScheduleRun]:
    rows = await db.execute(
        select(ScheduleRun).where(ScheduleRun.visit_id == visit_id)
        .order_by(ScheduleRun.created_at.desc()).limit(limit)
    )
    return list(rows.scalars())


async def is_stale(db: AsyncSession, run: ScheduleRun) -> bool:
    """Whether the agenda changed since the run (a session moved, added or cancelled)."""
    current = problems.fingerprint(await problems.agenda_sessions(db, run.visit_id))
    recorded: object = run.problem.get("parley", {}).get("agenda")
    return current != recorded


def proposals(run: ScheduleRun) -> list[dict[str, Any]]:
    """The best schedule, then the alternatives: ``{"index", "sessions", "total_cost",
    "delegation_burden"}``; empty when nothing was feasible."""
    result = run.result
    if not result.get("sessions"):
        return []
    out = [{"index": 0, "sessions": result["sessions"], "total_cost": result["total_cost"],
            "delegation_burden": result["delegation_burden"]}]
    for i, alt in enumerate(result.get("alternatives", []), start=1):
        out.append({"index": i, "sessions": alt["sessions"], "total_cost": alt["total_cost"],
                    "delegation_burden": alt["delegation_burden"]})
    return out


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class MovedSession:
    id: str
    start_utc: datetime
    end_utc: datetime
    sequence: int

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "start_utc": iso_z(self.start_utc), "end_utc": iso_z(self.end_utc),
                "sequence": self.sequence}


@dataclass(frozen=True)
class AgendaChanged(DomainEvent):
    """Domain event: sessions of a visit moved. ``audience`` maps each member to the
    moved sessions they may see (a closed session's new time is not news to everyone)."""

    visit_id: str
    sessions: list[MovedSession]
    audience: dict[str, list[MovedSession]] = field(default_factory=dict)


async def _lock_visit(db: AsyncSession, visit_id: str) -> None:
    # Two acceptances for one visit run one after the other (PostgreSQL row lock; SQLite
    # has a single writer anyway), so the staleness check below sees the winner's moves.
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(select(Visit.id).where(Visit.id == visit_id).with_for_update())


async def accept(
    db: AsyncSession, visit_id: str, run_id: str, index: Any, *, actor_person_id: str
) -> AgendaChanged:
    """Move the sessions to proposal ``index`` (0 = the best, 1... the alternatives).

    Errors: ``not_found`` (no such run in this visit), ``invalid`` (no such proposal),
    ``conflict`` (the run was already accepted, or the agenda changed since it ran)."""
    if isinstance(index, bool) or not isinstance(index, int):
        raise invalid("index: expected a whole number (0 for the best proposal).")
    async with _ACCEPTING.hold(visit_id, timeout=30.0):
        change = await _accept(db, visit_id, run_id, index, actor_person_id=actor_person_id)
        await db.commit()
        return change


async def _accept(db: AsyncSession, visit_id: str, run_id: str, index: int, *, actor_person_id: str) -> AgendaChanged:
    await _lock_visit(db, visit_id)
    run = await get_run(db, visit_id, run_id)
    if run.accepted_at is not None:
        raise conflict("This run was already accepted; run the scheduler again to change the agenda.")
    found = proposals(run)
    if not 0 <= index < len(found):
        raise invalid(f"index: this run has {len(found)} proposal(s); there is no number {index}.")
    if await is_stale(db, run):
        raise conflict("The agenda changed since this run; run the scheduler again.")
    now = utcnow()
    moved: list[MovedSession] = []
    record: list[dict[str, str]] = []
    for placed in found[index]["sessions"]:
        session = await db.get(AgendaSession, placed["id"])
        if session is None or session.visit_id != visit_id:  # pragma: no cover - the fingerprint matched
            raise conflict("The agenda changed since this run; run the scheduler again.")
        start, end = _instant(placed["start_utc"]), _instant(placed["end_utc"])
        if start == session.start_utc and end == session.end_utc:
            continue
        record.append({"id": session.id, "from": iso_z(session.start_utc), "to": iso_z(start)})
        session.start_utc, session.end_utc = start, end
        session.sequence = (session.sequence or 0) + 1
        session.updated_at = now
        moved.append(MovedSession(session.id, start, end, session.sequence))
    # Conditional, so a concurrent acceptance of the same run cannot also succeed.
    marked = await db.execute(
        update(ScheduleRun).where(ScheduleRun.id == run.id, ScheduleRun.accepted_at.is_(None))
        .values(accepted_at=now, accepted_index=index)
    )
    if getattr(marked, "rowcount", 1) != 1:
        await db.rollback()
        raise conflict("This run was already accepted; run the scheduler again to change the agenda.")
    await audit.record(
        db, "schedule.accepted", actor_person_id=actor_person_id, visit_id=visit_id, subject=run.id,
        data={"proposal": index, "total_cost": found[index]["total_cost"], "moved": record},
    )
    await db.flush()
    sessions = [s for s in await problems.agenda_sessions(db, visit_id) if s.id in {m.id for m in moved}]
    visible = await problems.visible_to(db, visit_id, sessions)
    await db.flush()
    audience = {mid: [m for m in moved if m.id in ids] for mid, ids in visible.items()}
    return AgendaChanged(visit_id, moved, {mid: items for mid, items in audience.items() if items})
