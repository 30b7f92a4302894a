"""Scheduler runs: the problem sent to the engine, its proposals, and which was accepted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.core.clock import utcnow
from server.core.ids import new_id
from server.db.base import Base, UTCDateTime


class ScheduleRun(Base):
    __tablename__ = "schedule_run"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    visit_id: Mapped[str] = mapped_column(ForeignKey("visit.id", ondelete="CASCADE"), index=True)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("person.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    problem: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The engine's answer: best schedule first, then the alternatives.
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_index: Mapped[int | None] = mapped_column(Integer)


class Unavailability(Base):
    """A time a person cannot attend (hard constraint for the scheduler)."""

    __tablename__ = "unavailability"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    start_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    end_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
