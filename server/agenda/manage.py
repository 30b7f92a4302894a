"""Secretariat changes to a session: access level, admission, chair (all audited)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import facts
from server.access.facts import AccessChanged
from server.access.roles import Access
from server.agenda.models import AgendaSession, SessionRole, SessionRoleName
from server.audit import service as audit
from server.core.errors import not_found
from server.people.models import Membership


class SessionChanges(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    # JSON carries the access level as a string: the enum alone is not strict.
    access: Annotated[Access, Field(strict=False)] | None = None
    requires_admission: bool | None = None
    # A membership id, or "" to fall back to the secretariat as chair.
    chair_membership_id: Annotated[str, StringConstraints(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")] | None = None


async def change_session(
    db: AsyncSession, session: AgendaSession, changes: SessionChanges, *, actor_person_id: str
) -> AccessChanged | None:
    """Apply the changes (flushed; the caller commits) and raise the visit's access
    version. Returns the news (this session's room must be emptied), or None when
    nothing changed."""
    record: dict[str, object] = {}
    if changes.access is not None and changes.access != session.access:
        record["access"] = {"from": session.access, "to": str(changes.access)}
        session.access = changes.access
    if changes.requires_admission is not None and changes.requires_admission != session.requires_admission:
        record["requires_admission"] = {"from": session.requires_admission, "to": changes.requires_admission}
        session.requires_admission = changes.requires_admission
    if changes.chair_membership_id is not None:
        if changes.chair_membership_id:
            member = await db.get(Membership, changes.chair_membership_id)
            if member is None or member.visit_id != session.visit_id:
                raise not_found("Participant")
        await db.execute(
            delete(SessionRole).where(SessionRole.session_id == session.id, SessionRole.role == SessionRoleName.CHAIR)
        )
        if changes.chair_membership_id:
            db.add(SessionRole(session_id=session.id, membership_id=changes.chair_membership_id, role=SessionRoleName.CHAIR))
        record["chair"] = changes.chair_membership_id or "secretariat"
    if record:
        await audit.record(
            db, "session.changed", actor_person_id=actor_person_id, visit_id=session.visit_id,
            subject=session.id, data=record,
        )
        await facts.bump(db, session.visit_id)
    await db.flush()
    return AccessChanged(session.visit_id, (session.id,)) if record else None


async def named_chairs(db: AsyncSession, session_id: str) -> list[str]:
    rows = await db.execute(
        select(SessionRole.membership_id).where(
            SessionRole.session_id == session_id, SessionRole.role == SessionRoleName.CHAIR
        )
    )
    return list(rows.scalars())
