"""Invitation expiry as due work: an ``invitation.expired`` audit entry at ``expires_at``
for a link that was neither spent nor revoked by then."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from server.audit import service as audit
from server.core.clock import utcnow
from server.core.events import DomainEvent
from server.jobs.runner import DueWorkRunner
from server.jobs.service import schedule
from server.people.models import Invitation, Membership

INVITATION_EXPIRE = "invitation.expire"


@dataclass(frozen=True)
class InvitationExpired(DomainEvent):
    invitation_id: str
    membership_id: str
    visit_id: str


async def schedule_invitation_expiry(db: AsyncSession, invitation: Invitation) -> None:
    """Call in the transaction that issues ``invitation`` (after it has an id): the
    deadline commits with it. Call again after changing ``expires_at``."""
    await schedule(db, INVITATION_EXPIRE, invitation.id, invitation.expires_at, {"invitation_id": invitation.id})


async def expire_invitation(db: AsyncSession, payload: dict[str, Any]) -> Sequence[DomainEvent]:
    invitation = await db.get(Invitation, str(payload["invitation_id"]))
    if invitation is None or invitation.spent_at is not None or invitation.revoked_at is not None:
        return []
    if invitation.expires_at > utcnow():
        # Extended without a new deadline: its own schedule call owns the new time.
        return []
    membership = await db.get(Membership, invitation.membership_id)
    if membership is None:
        return []
    await audit.record(
        db,
        "invitation.expired",
        visit_id=membership.visit_id,
        subject=membership.id,
        data={"invitation": invitation.id, "expires_at": invitation.expires_at.isoformat()},
    )
    return [InvitationExpired(invitation.id, membership.id, membership.visit_id)]


def register(runner: DueWorkRunner) -> None:
    runner.handle(INVITATION_EXPIRE, expire_invitation)
