"""Append to and read the session event log, with a per-process state cache.

Appends for one session are serialised: by an asyncio lock inside a process and, on
PostgreSQL, by a transaction-scoped advisory lock across processes. The cached
state is only a cache: every read first folds in whatever other processes wrote
since (one indexed query), so no room state lives only in memory.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.core.clock import utcnow
from server.room.models import RoomEvent
from server.room.state import RoomState, serialize_event

SYNC_LIMIT = 1000


def as_dict(row: RoomEvent) -> dict[str, Any]:
    return serialize_event(
        seq=row.seq,
        type_=row.type,
        membership_id=row.membership_id,
        payload=row.payload,
        created_at=row.created_at,
    )


class RoomLog:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._cache: dict[str, RoomState] = {}

    @asynccontextmanager
    async def locked(self, db: AsyncSession, session_id: str) -> AsyncIterator[RoomState]:
        """Hold the session's append lock and yield its current state.

        Events staged with ``add`` are applied to the cached state at once; the
        caller commits inside the block, and any failure drops the cache so the
        next read rebuilds it from the database.
        """
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            if db.bind.dialect.name == "postgresql":
                key = zlib.crc32(session_id.encode()) & 0x7FFFFFFF
                await db.execute(text("SELECT pg_advisory_xact_lock(1, :k)"), {"k": key})
            state = await self.state(db, session_id)
            try:
                yield state
            except BaseException:
                self.forget(session_id)
                raise

    async def state(self, db: AsyncSession, session_id: str) -> RoomState:
        cached = self._cache.get(session_id) or RoomState()
        for event in await self.since(db, session_id, cached.seq, limit=None):
            # Concurrent readers fetch the same new events: each is folded once.
            if event["seq"] > cached.seq:
                cached.apply(event)
        self._cache[session_id] = cached
        return cached

    async def since(
        self, db: AsyncSession, session_id: str, seq: int, limit: int | None = SYNC_LIMIT
    ) -> list[dict[str, Any]]:
        query = (
            select(RoomEvent)
            .where(RoomEvent.session_id == session_id, RoomEvent.seq > seq)
            .order_by(RoomEvent.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        return [as_dict(row) for row in (await db.execute(query)).scalars()]

    async def find_idempotent(
        self, db: AsyncSession, session_id: str, membership_id: str, idem: str
    ) -> dict[str, Any] | None:
        row = (
            await db.execute(
                select(RoomEvent).where(
                    RoomEvent.session_id == session_id,
                    RoomEvent.membership_id == membership_id,
                    RoomEvent.idempotency_key == idem,
                )
            )
        ).scalar_one_or_none()
        return as_dict(row) if row else None

    def add(
        self,
        db: AsyncSession,
        state: RoomState,
        session_id: str,
        type_: str,
        membership_id: str | None,
        payload: dict[str, Any],
        idem: str | None = None,
    ) -> dict[str, Any]:
        """Stage one event on the working state (committed by the caller)."""
        row = RoomEvent(
            session_id=session_id,
            seq=state.seq + 1,
            type=str(type_),
            membership_id=membership_id,
            payload=payload,
            idempotency_key=idem,
            created_at=utcnow(),
        )
        db.add(row)
        event = as_dict(row)
        state.apply(event)
        return event

    def forget(self, session_id: str) -> None:
        self._cache.pop(session_id, None)
