"""Visits as their members see them; participants and invitation re-issue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import facts
from server.access.roles import Role
from server.audit import service as audit
from server.audit.models import AuditEntry
from server.core.errors import conflict, invalid, not_found
from server.people import service as people
from server.people.logins import Login
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


async def visits_granted(db: AsyncSession, logins: Sequence[Login]) -> list[tuple[Visit, str]]:
    """The visits the presented logins grant, with the role in each: every visit of a
    password login's person, and the one visit of each invitation login."""
    seen: dict[str, tuple[Visit, str]] = {}
    for visit, membership in await _granted(db, logins):
        seen.setdefault(visit.id, (visit, membership.role))
    return list(seen.values())


async def memberships_granted(db: AsyncSession, logins: Sequence[Login]) -> list[str]:
    return [membership.id for _, membership in await _granted(db, logins)]


async def _granted(db: AsyncSession, logins: Sequence[Login]) -> list[tuple[Visit, Membership]]:
    conditions = []
    for person, login in logins:
        if login.via == "password":
            conditions.append(Membership.person_id == person.id)
        elif login.membership_id is not None:
            conditions.append(Membership.id == login.membership_id)
    if not conditions:
        return []
    rows = await db.execute(
        select(Visit, Membership)
        .join(Membership, Membership.visit_id == Visit.id)
        .where(or_(*conditions))
        .order_by(Visit.created_at.desc())
    )
    return [(v, m) for v, m in rows.all()]


@dataclass(frozen=True)
class LinkNotice:
    """A re-issue of someone's invitation link, shown to its owner: whoever holds a
    new link can enter the visit as them, so they must be able to notice it."""

    visit_id: str
    visit_title: str
    at: datetime
    by: str | None


async def reissued_links(db: AsyncSession, membership_ids: Sequence[str]) -> list[LinkNotice]:
    """For each membership whose link was issued more than once, its latest issue."""
    if not membership_ids:
        return []
    rows = (
        await db.execute(
            select(AuditEntry, Person.name, Visit.title)
            .outerjoin(Person, Person.id == AuditEntry.actor_person_id)
            .join(Visit, Visit.id == AuditEntry.visit_id)
            .where(AuditEntry.action == "invitation.issued", AuditEntry.subject.in_(membership_ids))
            .order_by(AuditEntry.seq)
        )
    ).all()
    by_membership: dict[str, list[tuple[AuditEntry, str | None, str]]] = {}
    for entry, name, title in rows:
        by_membership.setdefault(entry.subject or "", []).append((entry, name, title))
    notices = []
    for issued in by_membership.values():
        if len(issued) > 1:
            latest, issuer, visit_title = issued[-1]
            notices.append(LinkNotice(latest.visit_id or "", visit_title, latest.at, issuer))
    return sorted(notices, key=lambda n: n.at, reverse=True)


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
    """Secretariat: a fresh invitation link for a participant; the old one stops working
    (flushed; the caller commits)."""
    membership = await db.get(Membership, membership_id)
    if membership is None or membership.visit_id != visit_id:
        raise not_found("Participant")
    token = await people.issue_invitation(
        db, secret_key, membership, days=days, actor_person_id=actor_person_id
    )
    await db.flush()
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
