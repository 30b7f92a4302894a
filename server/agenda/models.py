"""Agenda sessions, their items, per-session roles and invitees."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.access.roles import Access
from server.core.ids import new_id
from server.db.base import Base, UTCDateTime


class SessionRoleName(StrEnum):
    CHAIR = "chair"
    RAPPORTEUR = "rapporteur"


class AgendaSession(Base):
    __tablename__ = "agenda_session"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    visit_id: Mapped[str] = mapped_column(ForeignKey("visit.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    start_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    end_utc: Mapped[datetime] = mapped_column(UTCDateTime)
    articles: Mapped[list[str]] = mapped_column(JSON, default=list)
    access: Mapped[str] = mapped_column(String(20), default=Access.OPEN)
    requires_admission: Mapped[bool] = mapped_column(Boolean, default=True)
    # iCalendar SEQUENCE: raised whenever the session's time changes or it is cancelled.
    sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A removed session is kept as a tombstone so calendar feeds can send it cancelled.
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AgendaItem(Base):
    __tablename__ = "agenda_item"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("agenda_session.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    articles: Mapped[list[str]] = mapped_column(JSON, default=list)


class SessionRole(Base):
    """A per-session role (chair, rapporteur) given to a membership."""

    __tablename__ = "session_role"
    __table_args__ = (UniqueConstraint("session_id", "membership_id", "role"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("agenda_session.id", ondelete="CASCADE"), index=True
    )
    membership_id: Mapped[str] = mapped_column(ForeignKey("membership.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))


class SessionInvitee(Base):
    """A stakeholder (or observer) invited to one specific session."""

    __tablename__ = "session_invitee"
    __table_args__ = (UniqueConstraint("session_id", "membership_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("agenda_session.id", ondelete="CASCADE"), index=True
    )
    membership_id: Mapped[str] = mapped_column(ForeignKey("membership.id", ondelete="CASCADE"))
