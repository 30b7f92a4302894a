"""Visits as their members see them; participants and invitation re-issue."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import facts
from server.access.roles import Role
from server.audit import service as audit
from server.core.errors import conflict, invalid, not_found
from server.people import service as people
from server.people.models import Membership, Person
from server.visits.models import Delegation, Visit


@dataclass(frozen=True)
class ParticipantRow:
    membership_id: str
    name: str
    role: str
    delegation: str | None
    timezone: str
    languages: list[str]


async def visits_of(db: AsyncSession, person_id: str) -> list[tuple[Visit, str]]:
    rows = await db.execute(
        select(Visit, Membership.role)
        .join(Membership, Membership.visit_id == Visit.id)
        .where(Membership.person_id == person_id)
        .order_by(Visit.created_at.desc())
    )
    return [(v, r) for v, r in rows.all()]


async def member_rows(db: AsyncSession, visit_id: str) -> list[tuple[Membership, Person, str | None]]:
    """Every membership of a visit with its person and delegation name, by delegation
    then name: the one query behind participant lists and scheduling problems."""
    rows = await db.execute(
        select(Membership, Person, Delegation.name)
        .join(Person, Person.id == Membership.person_id)
        .outerjoin(Delegation, Delegation.id == Membership.delegation_id)
        .where(Membership.visit_id == visit_id)
        .order_by(Delegation.name, Person.name)
    )
    return [(m, p, d) for m, p, d in rows.all()]


async def participants(db: AsyncSession, visit_id: str) -> list[ParticipantRow]:
    return [
        ParticipantRow(m.id, p.name, m.role, d, p.timezone, list(p.languages or []))
        for m, p, d in await member_rows(db, visit_id)
    ]


async def reissue_invitation(
    db: AsyncSession, secret_key: bytes, visit_id: str, membership_id: str, *, actor_person_id: str, days: int
) -> str:
    """Secretariat: a fresh invitation link for a participant; the old one stops working."""
    membership = await db.get(Membership, membership_id)
    if membership is None or membership.visit_id != visit_id:
        raise not_found("Participant")
    token = await people.issue_invitation(
        db, secret_key, membership, days=days, actor_person_id=actor_person_id
    )
    await db.commit()
    return token


async def change_role(
    db: AsyncSession, visit_id: str, membership_id: str, role: str, *, actor_person_id: str
) -> Membership:
    """Secretariat: change a participant's role in the visit (audited; flushed, the
    caller commits and publishes ``AccessChanged`` for the visit's sessions)."""
    if role not in {r.value for r in Role}:
        raise invalid(f"role: must be one of {', '.join(r.value for r in Role)}.")
    membership = await db.get(Membership, membership_id)
    if membership is None or membership.visit_id != visit_id:
        raise not_found("Participant")
    if membership.person_id == actor_person_id and role != membership.role:
        raise conflict("You cannot change your own role.")
    before = membership.role
    membership.role = role
    await audit.record(
        db, "role.changed", actor_person_id=actor_person_id, visit_id=visit_id,
        subject=membership_id, data={"from": before, "to": role},
    )
    await facts.bump(db, visit_id)
    await db.flush()
    return membership
