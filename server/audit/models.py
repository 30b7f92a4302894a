"""The append-only audit log: one keyed hash chain per visit, one for everything
outside a visit, and the ``legacy`` chain of entries written before keyed hashing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, UTCDateTime


class AuditEntry(Base):
    __tablename__ = "audit_entry"

    # (chain, seq) is the primary key, so two writers cannot fork a chain.
    chain: Mapped[str] = mapped_column(String(80), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(60))
    actor_person_id: Mapped[str | None] = mapped_column(String(32))
    visit_id: Mapped[str | None] = mapped_column(String(32), index=True)
    subject: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """A chain's head at some entry, signed with the server's Ed25519 key."""

    __tablename__ = "audit_checkpoint"

    chain: Mapped[str] = mapped_column(String(80), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(100))  # base64 of 64 bytes
