"""Start-up housekeeping for the embedded single-process mode."""

from __future__ import annotations

from sqlalchemy import case, func, select

from server.room.log import RoomLog
from server.room.models import RoomEvent
from server.room.state import EventType


async def close_stale_connections(log: RoomLog) -> int:
    """Record a ``leave`` for every connection a previous run left open.

    Only for a single process (no Redis): no connection survives its restart, so
    presence must not claim people are still in."""
    balance = func.sum(case((RoomEvent.type == EventType.JOIN, 1), else_=-1))
    async with log.sessions() as db:
        stale = list(
            (
                await db.execute(
                    select(RoomEvent.session_id)
                    .where(RoomEvent.type.in_([EventType.JOIN, EventType.LEAVE]))
                    .group_by(RoomEvent.session_id)
                    .having(balance > 0)
                )
            ).scalars()
        )
    closed = 0
    for session_id in stale:
        async with log.unit(session_id) as unit:
            for membership_id, conns in list(unit.state.connections.items()):
                for conn in sorted(conns):
                    unit.add(EventType.LEAVE, membership_id, {"conn": conn, "reason": "restart"})
                    closed += 1
    return closed
