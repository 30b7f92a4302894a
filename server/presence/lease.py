"""Each server process holds a lease; when it stops renewing, its presence expires.

A process renews its lease row every ``renew_seconds`` and, in the same
transaction, moves its ``presence.expire`` deadline (keyed by its process id) to the
lease's expiry. While it lives the deadline never comes; once it dies (``kill -9``,
a lost machine) the deadline comes due and whichever process's due-work runner gets
there first (a peer, or the restarted process itself) records a ``leave`` for each
connection the dead process held. A graceful stop closes what its sockets left open,
ends the lease and cancels the deadline, all in one commit.

If a live process finds its deadline already ran (it stalled past its lease), its
connections were closed under it: ``on_lost`` lets the transport drop its sockets so
the clients reconnect and join again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.core.clock import utcnow
from server.core.events import DomainEvent, EventBus
from server.jobs import service as jobs
from server.jobs.models import DueWork
from server.jobs.runner import DueWorkRunner
from server.presence.models import Lease
from server.room.log import RoomLog
from server.room.maintenance import close_process_connections

log = logging.getLogger("parley.presence")

PRESENCE_EXPIRE = "presence.expire"


def new_process_id() -> str:
    """A random id for one server process run (72 bits; no ``:``, which separates it
    from the socket id in a connection id)."""
    return secrets.token_urlsafe(9)


def expire_handler(log_: RoomLog) -> Callable[[AsyncSession, dict[str, Any]], Awaitable[Sequence[DomainEvent]]]:
    """The ``presence.expire`` handler: close the connections of the process named
    in the payload (``{"process_id", "since"}``) and drop its lease row."""

    async def expire(db: AsyncSession, payload: dict[str, Any]) -> Sequence[DomainEvent]:
        process_id = str(payload["process_id"])
        since = datetime.fromisoformat(payload["since"]) if payload.get("since") else None
        await db.execute(delete(Lease).where(Lease.process_id == process_id))
        closed = await close_process_connections(db, log_, process_id, since, reason="lost")
        if closed:
            log.info("process %s lost its lease: closed connections in %d room(s)", process_id, len(closed))
        return closed

    return expire


class ProcessLease:
    """This process's lease. ``process_id`` prefixes every connection id it records."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        room_log: RoomLog,
        bus: EventBus,
        *,
        lifetime_seconds: float = 25.0,
        renew_seconds: float = 10.0,
        process_id: str | None = None,
        on_lost: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if renew_seconds >= lifetime_seconds:
            raise ValueError("the lease must be renewed well before it expires")
        self.sessions = sessions
        self.room_log = room_log
        self.bus = bus
        self.lifetime = timedelta(seconds=lifetime_seconds)
        self.renew_seconds = renew_seconds
        self.process_id = process_id or new_process_id()
        self.on_lost = on_lost
        self.started_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    def register(self, runner: DueWorkRunner) -> None:
        runner.handle(PRESENCE_EXPIRE, expire_handler(self.room_log))

    async def renew(self) -> bool:
        """Extend the lease; returns False when it had already run out and the
        process's connections were closed (``on_lost`` has then been called)."""
        first = self.started_at is None
        if self.started_at is None:
            self.started_at = utcnow()
        expires = utcnow() + self.lifetime
        payload = {"process_id": self.process_id, "since": self.started_at.isoformat()}
        async with self.sessions() as db:
            # Move the deadline only if it has not run: one conditional write, so a
            # runner expiring this lease at the same moment is either waited for (its
            # row lock) and then seen as done, or finds the deadline moved and backs off.
            # The deadline row is locked before the lease row, in the runner's order.
            moved = await db.execute(
                update(DueWork)
                .where(DueWork.kind == PRESENCE_EXPIRE, DueWork.key == self.process_id, DueWork.done_at.is_(None))
                .values(due_at=expires, payload=payload)
            )
            lost = not first and getattr(moved, "rowcount", 0) != 1
            if getattr(moved, "rowcount", 0) != 1:
                await jobs.schedule(db, PRESENCE_EXPIRE, self.process_id, expires, payload)
            await db.merge(
                Lease(
                    process_id=self.process_id,
                    host=f"{socket.gethostname()}:{os.getpid()}"[:200],
                    started_at=self.started_at,
                    expires_at=expires,
                )
            )
            await db.commit()
        if lost:
            log.warning("process %s renewed a lease that had run out; dropping its sockets", self.process_id)
            if self.on_lost is not None:
                await self.on_lost()
        return not lost

    async def expire_others(self) -> int:
        """Make every other process's lease expire now. Only for the sole process of a
        deployment (no Redis): any other lease is a previous run's, which is over."""
        async with self.sessions() as db:
            result = await db.execute(
                update(DueWork)
                .where(
                    DueWork.kind == PRESENCE_EXPIRE,
                    DueWork.key != self.process_id,
                    DueWork.done_at.is_(None),
                    DueWork.due_at > utcnow(),
                )
                .values(due_at=utcnow())
            )
            await db.commit()
        return int(getattr(result, "rowcount", 0))

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.renew_seconds)
            try:
                await self.renew()
            except Exception as exc:
                # The next renewal may still come in time; only the expiry is final.
                log.warning("lease renewal failed: %s", " ".join(f"{type(exc).__name__}: {exc}".split())[:300])

    async def start(self) -> None:
        await self.renew()
        self._task = asyncio.create_task(self._keep(), name="presence-lease")

    async def stop(self) -> None:
        """End the lease after this process's sockets left: close whatever they left
        open, delete the lease and cancel its deadline in one commit."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.started_at is None:
            return
        try:
            async with self.sessions() as db:
                await db.execute(delete(Lease).where(Lease.process_id == self.process_id))
                await jobs.cancel(db, PRESENCE_EXPIRE, self.process_id)
                closed = await close_process_connections(
                    db, self.room_log, self.process_id, self.started_at, reason="stop"
                )
        except Exception as exc:
            # Nothing is lost: the lease lapses and another process (or the next start)
            # closes this one's presence then.
            log.warning("could not end the lease of %s: %s", self.process_id, " ".join(str(exc).split())[:300])
            return
        await self.bus.publish(*closed)
