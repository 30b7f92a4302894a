"""Interpretation booths of a visit and the interpreters who staff them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.core.clock import utcnow
from server.core.ids import new_id
from server.db.base import Base, UTCDateTime


class Booth(Base):
    """One interpretation language of a visit (one booth per language)."""

    __tablename__ = "booth"
    __table_args__ = (UniqueConstraint("visit_id", "language"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    visit_id: Mapped[str] = mapped_column(ForeignKey("visit.id", ondelete="CASCADE"), index=True)
    # A normalised BCP 47 tag: "en", "es", "pt-BR", "zh-Hans".
    language: Mapped[str] = mapped_column(String(35))
    # The interpreter now on the microphone (one of the booth's interpreters), if any.
    active_membership_id: Mapped[str | None] = mapped_column(ForeignKey("membership.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BoothInterpreter(Base):
    """An interpreter serving in a booth, in order (position 1 or 2). A membership
    belongs to one visit, so a unique membership means one booth per visit."""

    __tablename__ = "booth_interpreter"
    __table_args__ = (UniqueConstraint("booth_id", "position"),)

    booth_id: Mapped[str] = mapped_column(ForeignKey("booth.id", ondelete="CASCADE"), primary_key=True)
    membership_id: Mapped[str] = mapped_column(
        ForeignKey("membership.id", ondelete="CASCADE"), primary_key=True, unique=True
    )
    position: Mapped[int] = mapped_column(Integer)
