"""Append to and read the session event log, with a per-process state cache.

Appends for one session are serialised by one ``KeyedLock`` inside a process and,
on PostgreSQL, by a transaction-scoped advisory lock across processes. The order is
always the same: the keyed lock first, then a pooled connection, then the advisory
lock. Nobody holds a pooled connection while waiting for the keyed lock, so the pool
and the lock can never wait on each other.

Events are staged on a ``Unit`` and reach the shared cache only after their commit:
a failed commit leaves the cache exactly as the database is. The cache is only a
cache: every read first folds in whatever other processes wrote since (one indexed
query), so no room state lives only in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.clock import utcnow
from server.core.locks import KeyedLock
from server.room.append import SqliteAppender
from server.room.models import RoomEvent
from server.room.state import RoomState, serialize_event

SYNC_LIMIT = 1000
T = TypeVar("T")
# How long a command waits for its room before answering "unavailable" (retry later)
# instead of queueing without end behind a stalled holder.
LOCK_WAIT_SECONDS = 10.0
# Built once: its compiled form is cached on the statement object itself.
_INSERT = insert(RoomEvent.__table__)  # type: ignore[arg-type]


def as_dict(row: RoomEvent) -> dict[str, Any]:
    return serialize_event(
        seq=row.seq,
        type_=row.type,
        membership_id=row.membership_id,
        payload=row.payload,
        created_at=row.created_at,
    )


def _advisory_key(session_id: str) -> int:
    return zlib.crc32(session_id.encode()) & 0x7FFFFFFF


@dataclass
class Unit:
    """One locked, transactional change to a room's log.

    ``state`` is the committed state (read it to validate); ``add`` stages an event
    with the next sequence number. The events reach the cache only after commit.
    ``db`` is the unit's transaction; with ``opener`` it is opened on first use (a
    command that never touches it is appended without a session: ``SqliteAppender``)."""

    _db: AsyncSession | None
    session_id: str
    state: RoomState
    staged: list[dict[str, Any]] = field(default_factory=list)
    _rows: list[dict[str, Any]] = field(default_factory=list)
    opener: Callable[[], AsyncSession] | None = None

    @property
    def db(self) -> AsyncSession:
        if self._db is None:
            assert self.opener is not None
            self._db = self.opener()
        return self._db

    @property
    def opened(self) -> bool:
        return self._db is not None

    def take_rows(self) -> list[dict[str, Any]]:
        rows, self._rows = self._rows, []
        return rows

    @property
    def next_seq(self) -> int:
        return self.state.seq + len(self.staged) + 1

    def add(
        self, type_: str, membership_id: str | None, payload: dict[str, Any], idem: str | None = None
    ) -> dict[str, Any]:
        seq, at, kind = self.next_seq, utcnow(), str(type_)
        self._rows.append(
            {
                "session_id": self.session_id,
                "seq": seq,
                "type": kind,
                "membership_id": membership_id,
                "payload": payload,
                "idempotency_key": idem,
                "created_at": at,
            }
        )
        event = serialize_event(seq=seq, type_=kind, membership_id=membership_id, payload=payload, created_at=at)
        self.staged.append(event)
        return event

    async def flush(self) -> None:
        """Write the staged rows (a Core insert: the log is append-only, and the ORM's
        unit of work costs more than the insert itself on the hot path)."""
        if self._rows:
            rows = self.take_rows()
            conn = await self.db.connection()
            await conn.execute(_INSERT, rows[0] if len(rows) == 1 else rows)


class StaleCache(Exception):
    """A unit that trusted the cache found the log had moved on: run it again."""


class RoomLog:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        exclusive: bool = False,
        appender: SqliteAppender | None = None,
    ) -> None:
        self.sessions = sessions
        # Embedded setup only: appends of commands that use no session go through it.
        self.appender = appender if exclusive else None
        self.locks = KeyedLock("room")
        self._cache: dict[str, RoomState] = {}
        # The only process writing (the embedded setup, no Redis): a warm cache is the
        # log, and a command needs no catch-up read. Were anything else to append (a
        # tool, a test), the insert meets the taken seq and the command runs again
        # from the database (``StaleCache``).
        self.exclusive = exclusive

    @asynccontextmanager
    async def unit(self, session_id: str) -> AsyncIterator[Unit]:
        """Hold the room, open a transaction, yield a ``Unit``; commit on a clean exit.

        After the commit the staged events are folded into the cache; on any failure
        the transaction rolls back and the cache is untouched."""
        async with self.locks.hold(session_id, timeout=LOCK_WAIT_SECONDS):
            cached = self._cache.get(session_id) if self.exclusive else None
            if cached is not None and self.appender is not None:
                work = Unit(None, session_id, cached, opener=self.sessions)
                try:
                    yield work
                    if work.staged:
                        if work.opened:
                            await self._commit(work.db, work, cached)
                        else:
                            await self._append(self.appender, work, cached)
                        self._merge(session_id, work.staged)
                finally:
                    if work.opened:
                        await work.db.close()
                return
            async with self.sessions() as db:
                if db.get_bind().dialect.name == "postgresql":
                    await db.execute(text("SELECT pg_advisory_xact_lock(1, :k)"), {"k": _advisory_key(session_id)})
                state = cached if cached is not None else await self.state(db, session_id)
                work = Unit(db, session_id, state)
                yield work
                if work.staged:
                    await self._commit(db, work, cached)
                    self._merge(session_id, work.staged)

    async def _commit(self, db: AsyncSession, work: Unit, cached: RoomState | None) -> None:
        try:
            await work.flush()
            await db.commit()
        except IntegrityError:
            await db.rollback()
            await self._judge_conflict(db, work.session_id, cached)
            raise

    async def _append(self, appender: SqliteAppender, work: Unit, cached: RoomState) -> None:
        try:
            await appender.append(work.take_rows())
        except IntegrityError:
            async with self.sessions() as db:
                await self._judge_conflict(db, work.session_id, cached)
            raise

    async def _judge_conflict(self, db: AsyncSession, session_id: str, cached: RoomState | None) -> None:
        """An insert met a unique key: an idempotency key seen before (the caller's
        IntegrityError stands), or, trusting a cache, a seq something else took
        (``StaleCache``: the command runs again from the database)."""
        if cached is None:
            return
        if (await self.latest(db, [session_id]))[session_id] <= cached.seq:
            return
        self.forget(session_id)
        raise StaleCache(session_id) from None

    async def retrying(self, run: Callable[[], Awaitable[T]]) -> T:
        """Run a unit-using command, once more if it met a stale cache."""
        try:
            return await run()
        except StaleCache:
            return await run()

    @asynccontextmanager
    async def units_in(self, db: AsyncSession, session_ids: list[str]) -> AsyncIterator[dict[str, Unit]]:
        """Several rooms changed in the caller's own transaction (e.g. due work that must
        commit its effect with its done-mark). Locks are taken in sorted order; the
        caller commits inside the block. Staged events reach the cache only if that
        commit happened; otherwise the rooms' caches are dropped and rebuilt on read.
        Rare and bounded by the lock timeout: the caller holds a connection while it
        waits, which room commands never do."""
        units: dict[str, Unit] = {}
        async with AsyncExitStack() as stack:
            for session_id in sorted(set(session_ids)):
                await stack.enter_async_context(self.locks.hold(session_id, timeout=LOCK_WAIT_SECONDS))
                if db.get_bind().dialect.name == "postgresql":
                    await db.execute(text("SELECT pg_advisory_xact_lock(1, :k)"), {"k": _advisory_key(session_id)})
                units[session_id] = Unit(db, session_id, await self.state(db, session_id))
            try:
                yield units
            except BaseException:
                for session_id in units:
                    self.forget(session_id)
                raise
            for session_id, unit in units.items():
                if db.in_transaction():  # not committed: the cache must not run ahead
                    self.forget(session_id)
                elif unit.staged:
                    self._merge(session_id, unit.staged)

    def _merge(self, session_id: str, events: list[dict[str, Any]]) -> None:
        cached = self._cache.get(session_id)
        if cached is None:
            return
        for event in events:
            if event["seq"] == cached.seq + 1:
                cached.apply(event)
            elif event["seq"] > cached.seq:
                # A gap means the cache missed something: rebuild it on the next read.
                self.forget(session_id)
                return

    async def state(self, db: AsyncSession, session_id: str) -> RoomState:
        """The committed state: the cache plus whatever was committed since."""
        cached = self._cache.get(session_id) or RoomState()
        for event in await self.since(db, session_id, cached.seq, limit=None):
            # Concurrent readers fetch the same new events: each is folded once.
            if event["seq"] == cached.seq + 1:
                cached.apply(event)
        self._cache[session_id] = cached
        return cached

    async def since(
        self, db: AsyncSession, session_id: str, seq: int, limit: int | None = SYNC_LIMIT
    ) -> list[dict[str, Any]]:
        query = (
            select(RoomEvent)
            .where(RoomEvent.session_id == session_id, RoomEvent.seq > seq)
            .order_by(RoomEvent.seq)
        )
        if limit is not None:
            query = query.limit(limit)
        return [as_dict(row) for row in (await db.execute(query)).scalars()]

    async def latest(self, db: AsyncSession, session_ids: list[str]) -> dict[str, int]:
        """The last committed sequence number of each session (for beacons)."""
        if not session_ids:
            return {}
        rows = await db.execute(
            select(RoomEvent.session_id, func.max(RoomEvent.seq))
            .where(RoomEvent.session_id.in_(session_ids))
            .group_by(RoomEvent.session_id)
        )
        found = {sid: int(seq) for sid, seq in rows.all()}
        return {sid: found.get(sid, 0) for sid in session_ids}

    async def find_idempotent(
        self, db: AsyncSession, session_id: str, membership_id: str, idem: str
    ) -> dict[str, Any] | None:
        row = (
            await db.execute(
                select(RoomEvent).where(
                    RoomEvent.session_id == session_id,
                    RoomEvent.membership_id == membership_id,
                    RoomEvent.idempotency_key == idem,
                )
            )
        ).scalar_one_or_none()
        return as_dict(row) if row else None

    def forget(self, session_id: str) -> None:
        self._cache.pop(session_id, None)

    def forget_all(self) -> None:
        self._cache.clear()
