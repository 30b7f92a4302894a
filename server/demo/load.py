"""Load (or refresh) the demo visit and issue fresh invitation links."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.agenda.models import AgendaItem, AgendaSession, SessionInvitee
from server.audit import service as audit
from server.booths import service as booths
from server.config import Settings
from server.core.clock import iso_z, utcnow
from server.demo import data
from server.people import service as people
from server.people.models import DEFAULT_WORKING_HOURS, Membership, Person
from server.visits.models import Delegation, Visit


async def _create(db: AsyncSession) -> Visit:
    visit = Visit(slug=data.SLUG, **data.VISIT)
    db.add(visit)
    await db.flush()
    delegations = {}
    for name, kind in data.DELEGATIONS:
        d = Delegation(visit_id=visit.id, name=name, kind=kind)
        db.add(d)
        delegations[name] = d
    await db.flush()
    memberships: dict[str, Membership] = {}
    for p in data.PEOPLE:
        person = (await db.execute(select(Person).where(Person.email == p.email))).scalar_one_or_none()
        if person is None:
            person = Person(
                name=p.name,
                email=p.email,
                timezone=p.timezone,
                languages=list(p.languages),
                working_hours=p.working_hours or DEFAULT_WORKING_HOURS,
            )
            db.add(person)
            await db.flush()
        m = Membership(visit_id=visit.id, person_id=person.id, role=p.role, delegation_id=delegations[p.delegation].id)
        db.add(m)
        memberships[p.key] = m
    await db.flush()
    times = data.session_times(utcnow())
    for s in data.SESSIONS:
        start, end = times[s.key]
        session = AgendaSession(
            visit_id=visit.id,
            title=s.title,
            start_utc=start,
            end_utc=end,
            articles=list(s.articles),
            access=s.access,
            requires_admission=s.requires_admission,
        )
        db.add(session)
        await db.flush()
        for position, title in enumerate(s.items, start=1):
            db.add(AgendaItem(session_id=session.id, position=position, title=title, articles=[]))
        for key in s.invitees:
            db.add(SessionInvitee(session_id=session.id, membership_id=memberships[key].id))
    await audit.record(db, "visit.created", visit_id=visit.id, subject=visit.id, data={"demo": True})
    for language, interpreters in data.BOOTHS:
        await booths.create_booth(
            db, visit.id, language, [memberships[key].id for key in interpreters], actor_person_id=None
        )
    return visit


async def load_demo(db: AsyncSession, settings: Settings) -> dict[str, Any]:
    """Create the demo visit once; every call issues fresh links (old ones stop working)."""
    visit = (await db.execute(select(Visit).where(Visit.slug == data.SLUG))).scalar_one_or_none()
    if visit is None:
        visit = await _create(db)
    order = {p.email: i for i, p in enumerate(data.PEOPLE)}
    rows = (
        await db.execute(
            select(Membership, Person, Delegation.name)
            .join(Person, Person.id == Membership.person_id)
            .outerjoin(Delegation, Delegation.id == Membership.delegation_id)
            .where(Membership.visit_id == visit.id)
        )
    ).all()
    rows = sorted(rows, key=lambda r: order.get(r[1].email or "", 999))
    participants = []
    for membership, person, delegation in rows:
        token = await people.issue_invitation(
            db, settings.secret_key, membership, days=settings.invitation_days, actor_person_id=None
        )
        participants.append(
            {
                "name": person.name,
                "role": membership.role,
                "delegation": delegation,
                "timezone": person.timezone,
                "invite_url": f"{settings.base_url}/invite/{token}",
            }
        )
    sessions = (
        await db.execute(
            select(AgendaSession)
            .where(AgendaSession.visit_id == visit.id, AgendaSession.cancelled_at.is_(None))
            .order_by(AgendaSession.start_utc)
        )
    ).scalars()
    booth_rows = await booths.list_booths(db, visit.id)
    await db.commit()
    return {
        "visit_id": visit.id,
        "base_url": settings.base_url,
        "participants": participants,
        "sessions": [
            {
                "id": s.id,
                "title": s.title,
                "start_utc": iso_z(s.start_utc),
                "end_utc": iso_z(s.end_utc),
                "access": s.access,
            }
            for s in sessions
        ],
        "booths": [
            {
                "id": b.id,
                "language": b.language,
                "language_name": b.language_name,
                "interpreters": [i.name for i in b.interpreters],
                "active": b.active.name if b.active else None,
            }
            for b in booth_rows
        ],
    }
