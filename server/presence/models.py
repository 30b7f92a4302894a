"""A running server process's lease: renewed while it lives, gone when it stops."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from server.core.clock import utcnow
from server.db.base import Base, UTCDateTime


class Lease(Base):
    __tablename__ = "process_lease"

    process_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Where the process runs (host name and pid), for an operator reading the table.
    host: Mapped[str] = mapped_column(String(200), default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
