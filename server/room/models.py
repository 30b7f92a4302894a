"""The append-only session event log: the single source of room state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.core.clock import utcnow
from server.db.base import Base, UTCDateTime


class RoomEvent(Base):
    __tablename__ = "room_event"
    # A retried client send (same author, same idempotency key) is stored once.
    __table_args__ = (UniqueConstraint("session_id", "membership_id", "idempotency_key"),)

    session_id: Mapped[str] = mapped_column(
        ForeignKey("agenda_session.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(40))
    membership_id: Mapped[str | None] = mapped_column(ForeignKey("membership.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
