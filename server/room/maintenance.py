"""Start-up housekeeping for the embedded single-process mode."""

from __future__ import annotations

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.room.log import RoomLog
from server.room.models import RoomEvent
from server.room.state import EventType


async def close_stale_connections(db: AsyncSession, log: RoomLog) -> int:
    """Record a ``leave`` for every connection a previous run left open.

    Only for a single process (no Redis): no connection survives its restart, so
    presence must not claim people are still in. With several processes a restart of
    one cannot tell its own connections from the others', so this is not called.
    """
    balance = func.sum(case((RoomEvent.type == EventType.JOIN, 1), else_=-1))
    stale = await db.execute(
        select(RoomEvent.session_id)
        .where(RoomEvent.type.in_([EventType.JOIN, EventType.LEAVE]))
        .group_by(RoomEvent.session_id)
        .having(balance > 0)
    )
    closed = 0
    for session_id in list(stale.scalars()):
        async with log.locked(db, session_id) as state:
            for membership_id, conns in list(state.connections.items()):
                for conn in sorted(conns):
                    log.add(db, state, session_id, EventType.LEAVE, membership_id, {"conn": conn, "reason": "restart"})
                    closed += 1
            await db.commit()
    return closed
