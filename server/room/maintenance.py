"""Closing presence that no live connection backs: a dead process's, or a previous run's.

Connections are named ``"<process id>:<socket id>"`` (``conn_id``), so the owner of
every open connection in a room log is known. When a process's lease runs out (see
``server.presence``) its connections are closed here with a ``leave`` each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.core.events import DomainEvent
from server.room.log import RoomLog
from server.room.models import RoomEvent
from server.room.state import EventType

SEPARATOR = ":"


def conn_id(process_id: str, sid: str) -> str:
    """The connection id recorded in join/leave events: owner process and socket."""
    return f"{process_id}{SEPARATOR}{sid}"


def owner(conn: str) -> str | None:
    """The process that holds a connection, or None for one recorded before owners were."""
    process_id, sep, _ = conn.partition(SEPARATOR)
    return process_id if sep else None


@dataclass(frozen=True)
class PresenceClosed(DomainEvent):
    """Leaves recorded (and committed) for connections nobody holds any more; the
    realtime layer broadcasts them as ``room.event`` to the session's room."""

    session_id: str
    events: tuple[dict[str, Any], ...]


async def close_connections(
    db: AsyncSession,
    log: RoomLog,
    session_ids: list[str],
    chosen: Callable[[str], bool],
    reason: str,
) -> list[PresenceClosed]:
    """Record a ``leave`` for every open connection ``chosen`` picks, in one commit.

    Every room's append lock is held until that commit (taken in sorted order, the
    only place that holds several), so the leaves of all rooms commit together with
    the caller's other work in this transaction, or not at all.
    """
    closed: list[PresenceClosed] = []
    async with log.units_in(db, session_ids) as units:
        for session_id, unit in units.items():
            events = [
                unit.add(EventType.LEAVE, membership_id, {"conn": conn, "reason": reason})
                for membership_id, conns in list(unit.state.connections.items())
                for conn in sorted(conns)
                if chosen(conn)
            ]
            if events:
                closed.append(PresenceClosed(session_id, tuple(events)))
            await unit.flush()
        await db.commit()
    return closed


async def close_process_connections(
    db: AsyncSession, log: RoomLog, process_id: str, since: datetime | None, reason: str = "lost"
) -> list[PresenceClosed]:
    """Close the connections a process held. Only rooms joined since it started
    (``since``) can hold them, which keeps the search to recent events."""
    query = select(RoomEvent.session_id).where(RoomEvent.type == EventType.JOIN).distinct()
    if since is not None:
        query = query.where(RoomEvent.created_at >= since)
    session_ids = list((await db.execute(query)).scalars())
    return await close_connections(db, log, session_ids, lambda conn: owner(conn) == process_id, reason)


async def close_unowned_connections(db: AsyncSession, log: RoomLog) -> list[PresenceClosed]:
    """Close connections recorded without an owner, by a version before process leases.

    Only for a single process (no Redis), at start-up: no connection survives its
    restart. With several processes an older process still running may hold them.
    """
    balance = func.sum(case((RoomEvent.type == EventType.JOIN, 1), else_=-1))
    stale = await db.execute(
        select(RoomEvent.session_id)
        .where(RoomEvent.type.in_([EventType.JOIN, EventType.LEAVE]))
        .group_by(RoomEvent.session_id)
        .having(balance > 0)
    )
    return await close_connections(db, log, list(stale.scalars()), lambda conn: owner(conn) is None, "restart")
