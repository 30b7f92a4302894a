"""Personal calendar feeds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.core.clock import utcnow
from server.core.ids import new_id
from server.db.base import Base, UTCDateTime


class CalendarFeed(Base):
    """A personal iCalendar subscription URL; only the token's hash is stored."""

    __tablename__ = "calendar_feed"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    membership_id: Mapped[str] = mapped_column(ForeignKey("membership.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
