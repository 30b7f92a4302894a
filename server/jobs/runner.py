"""Run due work exactly once, whichever process gets to it first.

Each process runs one ``DueWorkRunner``. It polls for rows that are due (every
``poll_seconds``, or at once when this process schedules something) and runs each
in its own transaction:

1. claim the oldest due row: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so racing
   runners each take a different row; SQLite has one process, whose writes are
   serialised by the database lock;
2. run the kind's handler in that transaction;
3. mark the row done in the same commit as the handler's effect. The mark is made
   by a ``before_commit`` hook, so it also rides along when the handler commits
   itself (the room log's append lock must cover the commit). The mark only applies
   to the row as claimed (not done, same ``due_at``); if another runner got there
   first or the deadline was moved meanwhile, the whole transaction rolls back.

A handler that raises rolls back; the row is retried later with exponential
back-off and its error is logged in one line. Domain events returned by the handler
are published on the bus after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from server.core.clock import utcnow
from server.core.events import DomainEvent, EventBus
from server.jobs import service
from server.jobs.models import DueWork

log = logging.getLogger("parley.jobs")

Handler = Callable[[AsyncSession, dict[str, Any]], Awaitable[Sequence[DomainEvent]]]
PURGE_EVERY_SECONDS = 3600.0


class ClaimLost(Exception):
    """Another runner ran the row, or it was moved, while this one worked on it."""


@dataclass
class _Claim:
    id: int
    kind: str
    key: str
    due_at: datetime
    attempts: int
    marked: bool = False

    def mark_done(self, session: Session) -> None:
        if self.marked:
            return
        result = session.execute(
            update(DueWork)
            .where(DueWork.id == self.id, DueWork.done_at.is_(None), DueWork.due_at == self.due_at)
            .values(done_at=utcnow(), attempts=self.attempts + 1)
        )
        if getattr(result, "rowcount", 0) != 1:
            raise ClaimLost(f"{self.kind} {self.key}")
        self.marked = True


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]


class DueWorkRunner:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: EventBus,
        *,
        poll_seconds: float = 1.0,
        batch: int = 50,
        backoff_seconds: float = 5.0,
        backoff_max_seconds: float = 600.0,
        keep_done: timedelta = timedelta(days=7),
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.keep_done = keep_done
        self._handlers: dict[str, Handler] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._purged_at = float("-inf")

    def handle(self, kind: str, handler: Handler) -> None:
        """Register the handler for ``kind``; a runner only claims kinds it can run."""
        if kind in self._handlers:
            raise ValueError(f"a handler for {kind!r} is already registered")
        self._handlers[kind] = handler

    def wake(self) -> None:
        self._wakeup.set()

    def backoff(self, attempts: int) -> float:
        return float(min(self.backoff_max_seconds, self.backoff_seconds * 2 ** max(attempts - 1, 0)))

    async def run_once(self) -> int:
        """Run what is due now, up to ``batch`` rows; returns how many were attempted."""
        attempted = 0
        while attempted < self.batch and await self._run_next():
            attempted += 1
        return attempted

    async def _run_next(self) -> bool:
        if not self._handlers:
            return False
        events: Sequence[DomainEvent] = ()
        async with self.sessions() as db:
            query = (
                select(DueWork)
                .where(
                    DueWork.done_at.is_(None),
                    DueWork.due_at <= utcnow(),
                    DueWork.kind.in_(sorted(self._handlers)),
                )
                .order_by(DueWork.due_at, DueWork.id)
                .limit(1)
            )
            if db.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            row = (await db.execute(query)).scalar_one_or_none()
            if row is None:
                await db.rollback()
                return False
            claim = _Claim(row.id, row.kind, row.key, row.due_at, row.attempts)
            payload = dict(row.payload or {})
            event.listen(db.sync_session, "before_commit", claim.mark_done)
            try:
                events = await self._handlers[claim.kind](db, payload)
                await db.commit()
            except ClaimLost:
                await db.rollback()
                return True
            except Exception as exc:
                await db.rollback()
                await self._failed(claim, exc)
                return True
        await self.bus.publish(*events)
        return True

    async def _failed(self, claim: _Claim, exc: Exception) -> None:
        attempts = claim.attempts + 1
        delay = self.backoff(attempts)
        message = _one_line(exc)
        async with self.sessions() as db:
            # Guarded like the claim: a row that ran or moved meanwhile is left alone.
            await db.execute(
                update(DueWork)
                .where(DueWork.id == claim.id, DueWork.done_at.is_(None), DueWork.due_at == claim.due_at)
                .values(attempts=attempts, last_error=message, due_at=utcnow() + timedelta(seconds=delay))
            )
            await db.commit()
        log.warning(
            "due work %s %s failed (attempt %d), retrying in %.0f s: %s",
            claim.kind, claim.key, attempts, delay, message,
        )

    async def _purge(self) -> None:
        if time.monotonic() - self._purged_at < PURGE_EVERY_SECONDS:
            return
        self._purged_at = time.monotonic()
        async with self.sessions() as db:
            await service.purge_done(db, utcnow() - self.keep_done)
            await db.commit()

    async def run(self) -> None:
        """Poll until cancelled; a failing poll (database away) is logged and retried."""
        service.add_waker(self.wake)
        try:
            while True:
                self._wakeup.clear()
                attempted = 0
                try:
                    attempted = await self.run_once()
                    await self._purge()
                except Exception as exc:
                    log.warning("due work poll failed: %s", _one_line(exc))
                if attempted >= self.batch:
                    continue  # more may be due: no pause
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.poll_seconds)
        finally:
            service.remove_waker(self.wake)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="due-work-runner")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
