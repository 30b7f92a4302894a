"""Reading a visit's agenda as one actor may see it, with times in chosen zones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import facts
from server.access.guard import Actor
from server.access.policy import Action, decide
from server.access.roles import Access
from server.agenda.models import AgendaItem, AgendaSession, SessionInvitee
from server.core.clock import iso_z, utcnow
from server.core.times import LocalTime, local
from server.visits.models import Visit


@dataclass
class SessionView:
    session: AgendaSession
    start: LocalTime
    end: LocalTime
    live: bool
    items: list[AgendaItem]

    def as_json(self) -> dict[str, object]:
        s = self.session
        return {
            "id": s.id,
            "title": s.title,
            "start_utc": iso_z(s.start_utc),
            "end_utc": iso_z(s.end_utc),
            "access": s.access,
            "articles": s.articles,
            "requires_admission": s.requires_admission,
            "live": self.live,
            "items": [{"id": i.id, "title": i.title, "articles": i.articles} for i in self.items],
        }


async def _invited(db: AsyncSession, membership_id: str) -> set[str]:
    rows = await db.execute(
        select(SessionInvitee.session_id).where(SessionInvitee.membership_id == membership_id)
    )
    return set(rows.scalars())


async def visible_sessions(
    db: AsyncSession, actor: Actor, visit_id: str, *, include_cancelled: bool = False
) -> list[AgendaSession]:
    """Sessions the actor may see, in time order (a stakeholder sees only theirs);
    cancelled ones (tombstones) only when asked, e.g. for calendar feeds."""
    query = select(AgendaSession).where(AgendaSession.visit_id == visit_id)
    if not include_cancelled:
        query = query.where(AgendaSession.cancelled_at.is_(None))
    sessions = list((await db.execute(query.order_by(AgendaSession.start_utc, AgendaSession.id))).scalars())
    invited = await _invited(db, actor.membership_id)
    # Batch-loaded: one query for every session's chairs, not one per session.
    chairs = await facts.chairs(db, visit_id, [s.id for s in sessions])
    out = []
    for session in sessions:
        is_chair = actor.membership_id in chairs[session.id]
        if decide(
            Action.SESSION_VIEW,
            actor.role,
            Access(session.access),
            is_chair=is_chair,
            is_invited=session.id in invited,
        ):
            out.append(session)
    return out


async def session_items(db: AsyncSession, session_ids: list[str]) -> dict[str, list[AgendaItem]]:
    if not session_ids:
        return {}
    rows = await db.execute(
        select(AgendaItem).where(AgendaItem.session_id.in_(session_ids)).order_by(AgendaItem.position)
    )
    out: dict[str, list[AgendaItem]] = {sid: [] for sid in session_ids}
    for item in rows.scalars():
        out[item.session_id].append(item)
    return out


def is_live(session: AgendaSession, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return session.start_utc <= now < session.end_utc


async def agenda(
    db: AsyncSession, actor: Actor, visit: Visit, display_zone: str
) -> list[SessionView]:
    sessions = await visible_sessions(db, actor, visit.id)
    items = await session_items(db, [s.id for s in sessions])
    now = utcnow()
    return [
        SessionView(
            session=s,
            start=local(s.start_utc, display_zone),
            end=local(s.end_utc, display_zone),
            live=is_live(s, now),
            items=items[s.id],
        )
        for s in sessions
    ]


def display_zone(choice: str | None, actor: Actor, visit: Visit) -> tuple[str, str]:
    """Viewer's own zone by default; ``visit`` or ``utc`` on request. Returns (key, zone)."""
    if choice == "visit":
        return "visit", visit.timezone
    if choice == "utc":
        return "utc", "UTC"
    return "mine", actor.timezone
