"""An invitation left unspent past its expiry gets an ``invitation.expired`` audit entry,
once; a spent or revoked one gets none."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from server.audit.models import AuditEntry
from server.config import Settings
from server.core import clock
from server.core.events import EventBus
from server.jobs import invitations
from server.jobs.runner import DueWorkRunner
from server.people import service as people
from server.people.models import Invitation, Membership
from tests.fixtures.world import World


async def issue(sessions: Any, settings: Settings, membership_id: str) -> tuple[str, str]:
    async with sessions() as db:
        membership = await db.get(Membership, membership_id)
        token = await people.issue_invitation(db, settings.secret_key, membership, days=2, actor_person_id=None)
        invitation = (
            await db.execute(
                select(Invitation).where(Invitation.membership_id == membership_id).order_by(Invitation.created_at.desc())
            )
        ).scalars().first()
        assert invitation is not None and invitation.spent_at is None and invitation.revoked_at is None
        await invitations.schedule_invitation_expiry(db, invitation)
        await db.commit()
        return token, invitation.id


async def expired_entries(sessions: Any) -> list[dict[str, Any]]:
    async with sessions() as db:
        rows = await db.execute(select(AuditEntry).where(AuditEntry.action == "invitation.expired"))
        return [e.data for e in rows.scalars()]


async def test_unspent_invitation_expires_once(sessions: Any, settings: Settings, world: World) -> None:
    runner = DueWorkRunner(sessions, EventBus())
    invitations.register(runner)
    kept = world.members["expert"].membership_id
    _, revoked = await issue(sessions, settings, kept)
    _, unspent = await issue(sessions, settings, kept)  # revokes the first link
    token, spent = await issue(sessions, settings, world.members["delegate"].membership_id)
    async with sessions() as db:
        await people.spend_invitation(db, settings.secret_key, token, user_agent="test")
        await db.commit()

    assert await runner.run_once() == 0
    clock.shift(timedelta(days=2, seconds=1))
    assert await runner.run_once() == 3
    assert await runner.run_once() == 0
    entries = await expired_entries(sessions)
    assert [e["invitation"] for e in entries] == [unspent]
    assert spent not in str(entries) and revoked not in str(entries)
    async with sessions() as db:
        assert (await db.execute(select(AuditEntry).where(AuditEntry.subject == kept))).scalars().all()[-1].action == (
            "invitation.expired"
        )
