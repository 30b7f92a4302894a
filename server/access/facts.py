"""Access facts: who chairs and who is invited where, loaded in batches, and the
visit's access version.

The guard, the agenda, scheduling and mail all ask here, so "who chairs a session"
has one answer: its named chairs, or the visit's secretariat when it names none.
Every change to these facts (or to roles, access levels, memberships, cancelled
sessions) raises the visit's ``access_version`` in the same transaction; the
realtime layer caches scopes per socket and re-checks that one integer instead of
re-reading the facts on every event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.access.roles import Role
from server.agenda.models import SessionInvitee, SessionRole, SessionRoleName
from server.core.events import DomainEvent
from server.people.models import Membership
from server.visits.models import Visit


@dataclass(frozen=True)
class AccessChanged(DomainEvent):
    """Roles, chairs or access levels changed: these sessions' rooms are emptied so
    every socket re-joins under the new rules, and cached scopes are dropped."""

    visit_id: str
    session_ids: tuple[str, ...]


async def bump(db: AsyncSession, visit_id: str) -> None:
    """Raise the visit's access version (in the caller's transaction)."""
    await db.execute(
        update(Visit).where(Visit.id == visit_id).values(access_version=Visit.access_version + 1)
    )


async def version(db: AsyncSession, visit_id: str) -> int:
    found = (await db.execute(select(Visit.access_version).where(Visit.id == visit_id))).scalar_one_or_none()
    return int(found or 0)


async def secretariat(db: AsyncSession, visit_id: str) -> set[str]:
    return set(
        (
            await db.execute(
                select(Membership.id).where(Membership.visit_id == visit_id, Membership.role == Role.SECRETARIAT)
            )
        ).scalars()
    )


async def named_chairs(db: AsyncSession, session_ids: Iterable[str]) -> dict[str, set[str]]:
    """Each session's named chairs (sessions naming none are absent)."""
    ids = list(session_ids)
    found: dict[str, set[str]] = {}
    if not ids:
        return found
    rows = await db.execute(
        select(SessionRole.session_id, SessionRole.membership_id).where(
            SessionRole.session_id.in_(ids), SessionRole.role == SessionRoleName.CHAIR
        )
    )
    for session_id, membership_id in rows.all():
        found.setdefault(session_id, set()).add(membership_id)
    return found


async def chairs(db: AsyncSession, visit_id: str, session_ids: Iterable[str]) -> dict[str, set[str]]:
    """Who chairs each session: its named chairs, else the visit's secretariat."""
    ids = list(session_ids)
    named = await named_chairs(db, ids)
    default = await secretariat(db, visit_id) if any(s not in named for s in ids) else set()
    return {s: named.get(s, default) for s in ids}


async def invitees(db: AsyncSession, session_ids: Iterable[str]) -> dict[str, set[str]]:
    """Each session's invited stakeholders (memberships)."""
    ids = list(session_ids)
    found: dict[str, set[str]] = {s: set() for s in ids}
    if not ids:
        return found
    rows = await db.execute(
        select(SessionInvitee.session_id, SessionInvitee.membership_id).where(SessionInvitee.session_id.in_(ids))
    )
    for session_id, membership_id in rows.all():
        found[session_id].add(membership_id)
    return found
