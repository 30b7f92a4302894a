"""Append to the audit log: one keyed hash chain per visit, one for the rest.

``record`` appends inside the caller's transaction, so an entry commits or rolls back
with the change it describes. Appends to one chain are serialised until the
transaction ends, and appends to different chains never wait on each other:

* PostgreSQL: a transaction-scoped advisory lock keyed by the chain. It is re-entrant
  within a transaction (recording twice in one transaction is fine) and released only
  by the commit or rollback, so no in-process lock is involved that could be given up
  while the database lock is still held (that was the cause of hung joins).
* SQLite (one embedded process): an in-process lock per chain, taken on the first
  append and released by the session's transaction end.

After a commit, each chain's new head goes outside the database (server.audit.heads);
every ``audit_checkpoint_every`` entries a signed checkpoint is stored.

The configuration (key, where heads go, signing key) rides on the session factory:
``make_sessionmaker(engine, info=audit.session_info(settings))``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from server.audit.chain import GENESIS, chain_for, chain_key, checkpoint_message, entry_hash
from server.audit.heads import HEADS_FILE_NAME, Head, HeadsFile, HeadSink, HeadsLog
from server.audit.models import AuditCheckpoint, AuditEntry
from server.audit.verify import VerifyReport
from server.audit.verify import verify as verify_log
from server.config import Settings
from server.core.clock import utcnow
from server.core.locks import KeyedLock
from server.core.signing import SigningKey, key_path, load_public_key

__all__ = [
    "GENESIS", "AuditConfig", "chain_key", "checkpoint_all", "count", "record", "session_info", "verify",
    "visit_entries",
]

log = logging.getLogger(__name__)

_CONFIG = "parley.audit.config"
_HELD = "parley.audit.held"  # chain -> release function (None on PostgreSQL)
_PENDING = "parley.audit.pending"  # chain -> head written in this transaction
# As long as SQLite's own busy timeout: past it the writer would fail anyway.
_SQLITE_WAIT_SECONDS = 30.0
_chain_locks = KeyedLock("audit-chain")


@dataclass
class AuditConfig:
    key: bytes = field(repr=False)
    heads: HeadSink
    heads_file: Path
    checkpoint_every: int
    signing_key_file: Path
    _signer: SigningKey | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditConfig:
        heads_file = settings.var_dir / HEADS_FILE_NAME
        sink: HeadSink = HeadsLog() if settings.audit_heads == "log" else HeadsFile(heads_file)
        return cls(
            key=chain_key(settings.secret_key),
            heads=sink,
            heads_file=heads_file,
            checkpoint_every=settings.audit_checkpoint_every,
            signing_key_file=key_path(settings),
        )

    def signer(self) -> SigningKey:
        if self._signer is None:
            self._signer = SigningKey.load_or_create(self.signing_key_file)
        return self._signer


def session_info(settings: Settings) -> dict[str, Any]:
    """The ``info`` for a session factory whose sessions may record audit entries."""
    return {_CONFIG: AuditConfig.from_settings(settings)}


def config_of(db: AsyncSession) -> AuditConfig:
    config = db.sync_session.info.get(_CONFIG)
    if not isinstance(config, AuditConfig):
        raise RuntimeError(
            "This session cannot record audit entries: make its factory with "
            "make_sessionmaker(engine, info=audit.session_info(settings))."
        )
    return config


async def record(
    db: AsyncSession,
    action: str,
    *,
    actor_person_id: str | None = None,
    visit_id: str | None = None,
    subject: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an entry to the visit's chain (or the global one) inside the caller's
    transaction; it is committed with the change it records."""
    config = config_of(db)
    chain = chain_for(visit_id)
    await _lock_chain(db, chain)
    last = (
        await db.execute(
            select(AuditEntry).where(AuditEntry.chain == chain).order_by(AuditEntry.seq.desc()).limit(1)
        )
    ).scalar_one_or_none()
    entry = AuditEntry(
        chain=chain,
        seq=(last.seq + 1) if last else 1,
        at=utcnow(),
        action=action,
        actor_person_id=actor_person_id,
        visit_id=visit_id,
        subject=subject,
        data=data or {},
        prev_hash=last.hash if last else GENESIS,
    )
    entry.hash = entry_hash(config.key, entry.prev_hash, entry)
    db.add(entry)
    if entry.seq % config.checkpoint_every == 0:
        db.add(_checkpoint(config, chain, entry.seq, entry.hash))
    await db.flush()
    db.sync_session.info.setdefault(_PENDING, {})[chain] = Head(chain, entry.seq, entry.hash)
    return entry


def _checkpoint(config: AuditConfig, chain: str, seq: int, head_hash: str) -> AuditCheckpoint:
    signer = config.signer()
    signature = signer.sign(checkpoint_message(chain, seq, head_hash))
    return AuditCheckpoint(
        chain=chain,
        seq=seq,
        hash=head_hash,
        at=utcnow(),
        key_fingerprint=signer.public_key.fingerprint,
        signature=base64.b64encode(signature).decode(),
    )


def _pg_lock_key(chain: str) -> int:
    # A signed 64-bit key from the chain name; a collision between two chains would only
    # make them share a lock, never mix their entries.
    digest = hashlib.sha256(b"parley-audit-chain:" + chain.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _lock_chain(db: AsyncSession, chain: str) -> None:
    held: dict[str, Any] = db.sync_session.info.setdefault(_HELD, {})
    if chain in held:
        return
    bind = db.get_bind()
    if bind.dialect.name == "postgresql":
        await db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _pg_lock_key(chain)})
        held[chain] = None
        return
    release = await _chain_locks.acquire(
        (str(bind.engine.url), chain), timeout=_SQLITE_WAIT_SECONDS,
        busy="The audit log is busy; try again in a moment.",
    )
    held[chain] = release


@event.listens_for(Session, "after_commit")
def _publish_heads(session: Session) -> None:
    pending: dict[str, Head] | None = session.info.pop(_PENDING, None)
    config = session.info.get(_CONFIG)
    if not pending or not isinstance(config, AuditConfig):
        return
    try:
        config.heads.publish(pending.values())
    except OSError:
        # The entries are committed; a head that could not be written only weakens the
        # truncation check until the next commit on that chain writes it again.
        log.exception("could not record audit heads %s", sorted(pending))


@event.listens_for(Session, "after_transaction_end")
def _release_chains(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    session.info.pop(_PENDING, None)
    held: dict[str, Any] | None = session.info.pop(_HELD, None)
    for release in (held or {}).values():
        if release is not None:
            release()


async def checkpoint_all(db: AsyncSession) -> list[AuditCheckpoint]:
    """Sign a checkpoint at the head of every chain that lacks one there, and record
    the heads outside the database; the caller commits."""
    config = config_of(db)
    latest = (
        await db.execute(select(AuditEntry.chain, func.max(AuditEntry.seq)).group_by(AuditEntry.chain))
    ).all()
    made: list[AuditCheckpoint] = []
    pending: dict[str, Head] = db.sync_session.info.setdefault(_PENDING, {})
    for chain, seq in latest:
        entry = await db.get(AuditEntry, (chain, seq))
        assert entry is not None
        pending[chain] = Head(chain, seq, entry.hash)
        if await db.get(AuditCheckpoint, (chain, seq)) is None:
            checkpoint = _checkpoint(config, chain, seq, entry.hash)
            db.add(checkpoint)
            made.append(checkpoint)
    await db.flush()
    return made


async def visit_entries(db: AsyncSession, visit_id: str, *, limit: int = 500) -> Sequence[AuditEntry]:
    """A visit's latest entries, newest first: its own chain and its legacy entries."""
    rows = await db.execute(
        select(AuditEntry)
        .where(AuditEntry.visit_id == visit_id)
        .order_by(AuditEntry.at.desc(), AuditEntry.seq.desc())
        .limit(limit)
    )
    return rows.scalars().all()


async def verify(db: AsyncSession) -> VerifyReport:
    """Check the whole log with this session's configuration: its key, the heads file
    (when heads go to a file) and the signing key's public half."""
    config = config_of(db)
    heads = HeadsFile(config.heads_file).read() if isinstance(config.heads, HeadsFile) else {}
    return await verify_log(db, config.key, heads=heads, public_key=load_public_key(config.signing_key_file))


async def count(db: AsyncSession) -> int:
    return int((await db.execute(select(func.count()).select_from(AuditEntry))).scalar_one())
