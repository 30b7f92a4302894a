"""Older chat messages, read from the session event log a page at a time.

A room's state keeps only the last ``CHAT_WINDOW`` messages; everything before is
read here on demand (``chat.history``), so no join carries a whole meeting's chat.
Kept apart from the log's append path: it only reads committed rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.core.clock import iso_z
from server.room.models import RoomEvent
from server.room.state import EventType


async def chat_before(
    db: AsyncSession, session_id: str, before: int, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` chat messages with seq below ``before``, oldest first, and
    whether older ones remain. Entries have the form of ``RoomState.chat``."""
    rows = (
        await db.execute(
            select(RoomEvent)
            .where(
                RoomEvent.session_id == session_id,
                RoomEvent.seq < before,
                RoomEvent.type == str(EventType.CHAT),
                # The fold ignores an authorless chat; so does its history.
                RoomEvent.membership_id.is_not(None),
            )
            .order_by(RoomEvent.seq.desc())
            .limit(limit + 1)  # one more than asked says whether there are more
        )
    ).scalars().all()
    page = [
        {"seq": r.seq, "membership_id": r.membership_id, "text": r.payload["text"], "at": iso_z(r.created_at)}
        for r in reversed(rows[:limit])
    ]
    return page, len(rows) > limit
