"""Visits and delegations."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.core.clock import utcnow
from server.core.ids import new_id
from server.db.base import Base, UTCDateTime


class VisitStatus(StrEnum):
    PREPARING = "preparing"
    IN_PROGRESS = "in_progress"
    CONCLUDED = "concluded"
    ARCHIVED = "archived"


class DelegationKind(StrEnum):
    SECRETARIAT = "secretariat"
    STATE_UNDER_REVIEW = "state_under_review"
    REVIEWING_STATE = "reviewing_state"
    INTERPRETERS = "interpreters"
    STAKEHOLDERS = "stakeholders"
    OBSERVERS = "observers"


class Visit(Base):
    __tablename__ = "visit"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    title: Mapped[str] = mapped_column(String(300))
    state_under_review: Mapped[str] = mapped_column(String(200))
    reviewing_states: Mapped[list[str]] = mapped_column(JSON, default=list)
    cycle: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default=VisitStatus.PREPARING)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Vienna")
    # A stable key for seeded visits (the demo), so re-loading does not duplicate.
    slug: Mapped[str | None] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Raised with every change to who may do what in this visit (access/facts.py).
    access_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Delegation(Base):
    __tablename__ = "delegation"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    visit_id: Mapped[str] = mapped_column(ForeignKey("visit.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(30))
