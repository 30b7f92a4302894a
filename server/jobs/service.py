"""Schedule and cancel due work inside the caller's transaction.

A deadline is a row, so it commits (or rolls back) with the change that made it
necessary, survives restarts, and is seen by every process's runner. Runners in this
process are woken when a transaction that scheduled something commits, so near
deadlines do not wait for the next poll.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from server.core.clock import utcnow
from server.jobs.models import DueWork

_WAKE = "due_work.wake"
_wakers: set[Callable[[], None]] = set()


def add_waker(wake: Callable[[], None]) -> None:
    _wakers.add(wake)


def remove_waker(wake: Callable[[], None]) -> None:
    _wakers.discard(wake)


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    # Only after the commit: a runner woken earlier would not see the row yet.
    if session.info.pop(_WAKE, False):
        for wake in list(_wakers):
            wake()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_WAKE, None)


async def schedule(
    db: AsyncSession, kind: str, key: str, due_at: datetime, payload: dict[str, Any] | None = None
) -> None:
    """Make (kind, key) due at ``due_at`` with ``payload``; committed by the caller.

    Idempotent per key: an existing deadline is moved and its payload replaced. A
    deadline whose work already ran is armed again (the work runs once more, once),
    which is what a renewed lease or a re-issued subject needs.
    """
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(DueWork).values(
        kind=kind, key=key, due_at=due_at, payload=payload or {}, attempts=0, created_at=utcnow()
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[DueWork.kind, DueWork.key],
        set_={
            "due_at": stmt.excluded.due_at,
            "payload": stmt.excluded.payload,
            "attempts": 0,
            "last_error": None,
            "done_at": None,
        },
    )
    await db.execute(stmt)
    db.sync_session.info[_WAKE] = True


async def cancel(db: AsyncSession, kind: str, key: str) -> bool:
    """Drop a deadline that has not run; returns whether there was one."""
    result = await db.execute(
        delete(DueWork).where(DueWork.kind == kind, DueWork.key == key, DueWork.done_at.is_(None))
    )
    return bool(getattr(result, "rowcount", 0))


async def find(db: AsyncSession, kind: str, key: str) -> DueWork | None:
    return (
        await db.execute(select(DueWork).where(DueWork.kind == kind, DueWork.key == key))
    ).scalar_one_or_none()


async def purge_done(db: AsyncSession, before: datetime) -> int:
    """Delete deadlines that ran before ``before`` (their effects are recorded elsewhere)."""
    result = await db.execute(delete(DueWork).where(DueWork.done_at.is_not(None), DueWork.done_at < before))
    return int(getattr(result, "rowcount", 0))
