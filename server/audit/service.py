"""Append to and verify the hash-chained audit log.

Each entry's hash covers its content and the previous entry's hash, so editing or
deleting a row breaks every later link; ``verify`` walks the chain.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.models import AuditEntry
from server.core.clock import utcnow

GENESIS = "0" * 64
# Serialises appends inside one process; PostgreSQL's advisory lock does it across
# processes (SQLite is only used by a single embedded process).
_local_lock = asyncio.Lock()
_PG_AUDIT_LOCK = 0x5041524C  # "PARL"


def _digest(prev_hash: str, entry: AuditEntry) -> str:
    body = json.dumps(
        {
            "seq": entry.seq,
            "at": entry.at.astimezone(UTC).isoformat(),
            "action": entry.action,
            "actor": entry.actor_person_id,
            "visit": entry.visit_id,
            "subject": entry.subject,
            "data": entry.data,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


async def record(
    db: AsyncSession,
    action: str,
    *,
    actor_person_id: str | None = None,
    visit_id: str | None = None,
    subject: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry inside the caller's transaction (committed with the change)."""
    async with _local_lock:
        if db.bind.dialect.name == "postgresql":
            await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_AUDIT_LOCK})
        last = (
            await db.execute(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
        ).scalar_one_or_none()
        entry = AuditEntry(
            seq=(last.seq + 1) if last else 1,
            at=utcnow(),
            action=action,
            actor_person_id=actor_person_id,
            visit_id=visit_id,
            subject=subject,
            data=data or {},
            prev_hash=last.hash if last else GENESIS,
        )
        entry.hash = _digest(entry.prev_hash, entry)
        db.add(entry)
        await db.flush()
        return entry


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    broken_at: int | None = None
    reason: str = ""


async def verify(db: AsyncSession, batch: int = 1000) -> VerifyResult:
    prev_hash = GENESIS
    expected_seq = 1
    count = 0
    last_seq = 0
    while True:
        rows = (
            await db.execute(
                select(AuditEntry).where(AuditEntry.seq > last_seq).order_by(AuditEntry.seq).limit(batch)
            )
        ).scalars().all()
        if not rows:
            break
        for entry in rows:
            if entry.seq != expected_seq:
                return VerifyResult(False, count, entry.seq, f"entry {expected_seq} is missing")
            if entry.prev_hash != prev_hash:
                return VerifyResult(False, count, entry.seq, "link to the previous entry broken")
            if _digest(prev_hash, entry) != entry.hash:
                return VerifyResult(False, count, entry.seq, "entry content was altered")
            prev_hash = entry.hash
            expected_seq += 1
            count += 1
            last_seq = entry.seq
    return VerifyResult(True, count)


async def count(db: AsyncSession) -> int:
    return int((await db.execute(select(func.count()).select_from(AuditEntry))).scalar_one())
