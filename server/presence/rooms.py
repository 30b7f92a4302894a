"""Until the realtime layer names connections ``<process id>:<socket id>`` itself, this
room service does it, so presence expiry knows which process holds which connection.

Remove it (use ``RoomService``) once the realtime layer passes ``conn_id(...)``; an id
that already names its owner is passed through unchanged, so both may coexist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from server.access.guard import SessionScope
from server.room.log import RoomLog
from server.room.maintenance import conn_id, owner
from server.room.service import Outcome, RoomService


class OwnedConnectionRooms(RoomService):
    def __init__(self, log: RoomLog, process_id: str) -> None:
        super().__init__(log)
        self.process_id = process_id

    def _owned(self, conn: str) -> str:
        return conn if owner(conn) is not None else conn_id(self.process_id, conn)

    async def join(
        self,
        db: AsyncSession,
        scope: SessionScope,
        conn: str,
        since: int | None,
        subscribe: Callable[[], Awaitable[None]] | None = None,
    ) -> Outcome:
        return await super().join(db, scope, self._owned(conn), since, subscribe)

    async def leave(self, db: AsyncSession, session_id: str, membership_id: str, conn: str) -> Outcome:
        return await super().leave(db, session_id, membership_id, self._owned(conn))
