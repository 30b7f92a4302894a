"""Due work runs at its time, exactly once, across restarts and racing runners, on
SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Settings
from server.core import clock
from server.core.clock import utcnow
from server.core.events import DomainEvent, EventBus
from server.db.session import make_engine, make_sessionmaker
from server.jobs import service as jobs
from server.jobs.models import DueWork
from server.jobs.runner import DueWorkRunner


@dataclass(frozen=True)
class Done(DomainEvent):
    key: str


class Recorder:
    """A handler whose effect is a row (an ``effect`` deadline nobody runs), so it
    commits or rolls back with the claim; ``fail`` makes the next calls raise after
    writing that effect."""

    def __init__(self, name: str = "", delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay
        self.calls: list[str] = []
        self.fail = 0

    async def __call__(self, db: AsyncSession, payload: dict[str, Any]) -> Sequence[DomainEvent]:
        key = str(payload["n"])
        self.calls.append(key)
        await jobs.schedule(db, "effect", key, utcnow(), {"by": self.name})
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            self.fail -= 1
            raise RuntimeError("the mail server said no\nsecond line")
        return [Done(key)]


async def effects(sessions: Any) -> list[str]:
    async with sessions() as db:
        rows = await db.execute(select(DueWork.key).where(DueWork.kind == "effect").order_by(DueWork.key))
        return list(rows.scalars())


async def row(sessions: Any, key: str, kind: str = "test.work") -> DueWork:
    async with sessions() as db:
        found = await jobs.find(db, kind, key)
        assert found is not None
        return found


def make_runner(sessions: Any, handler: Recorder, published: list[DomainEvent] | None = None) -> DueWorkRunner:
    bus = EventBus()
    if published is not None:

        async def collect(event: Done) -> None:
            published.append(event)

        bus.subscribe(Done, collect)
    runner = DueWorkRunner(sessions, bus, backoff_seconds=10)
    runner.handle("test.work", handler)
    return runner


async def schedule(sessions: Any, key: str, after: timedelta, **payload: Any) -> None:
    async with sessions() as db:
        await jobs.schedule(db, "test.work", key, utcnow() + after, {"n": key, **payload})
        await db.commit()


async def test_runs_once_when_due_and_publishes_after_commit(sessions: Any) -> None:
    handler, published = Recorder(), []
    runner = make_runner(sessions, handler, published)  # type: ignore[arg-type]
    await schedule(sessions, "1", timedelta(seconds=10))
    assert await runner.run_once() == 0
    clock.shift(timedelta(seconds=11))
    assert await runner.run_once() == 1
    assert await runner.run_once() == 0
    assert handler.calls == ["1"]
    assert published == [Done("1")]
    assert await effects(sessions) == ["1"]
    done = await row(sessions, "1")
    assert done.done_at is not None and done.attempts == 1


async def test_late_run_after_downtime(sessions: Any) -> None:
    await schedule(sessions, "late", timedelta(minutes=5))
    # The server is down while the deadline passes; a new process finds it later.
    clock.shift(timedelta(hours=3))
    handler = Recorder()
    assert await make_runner(sessions, handler).run_once() == 1
    assert await make_runner(sessions, handler).run_once() == 0
    assert handler.calls == ["late"]


async def test_failure_rolls_back_and_retries_with_backoff(
    sessions: Any, caplog: pytest.LogCaptureFixture
) -> None:
    handler = Recorder()
    handler.fail = 2
    runner = make_runner(sessions, handler)
    await schedule(sessions, "flaky", timedelta(0))
    with caplog.at_level(logging.WARNING, "parley.jobs"):
        assert await runner.run_once() == 1
    assert await effects(sessions) == []  # the effect rolled back with the failure
    failed = await row(sessions, "flaky")
    assert failed.done_at is None and failed.attempts == 1
    assert failed.last_error == "RuntimeError: the mail server said no second line"
    assert timedelta(seconds=9) < failed.due_at - utcnow() <= timedelta(seconds=10)
    [record] = [r for r in caplog.records if r.name == "parley.jobs"]
    assert record.exc_info is None and "\n" not in record.getMessage()
    assert "test.work flaky failed (attempt 1)" in record.getMessage()

    assert await runner.run_once() == 0  # not before the back-off
    clock.shift(timedelta(seconds=10))
    assert await runner.run_once() == 1  # fails again: twice the wait
    again = await row(sessions, "flaky")
    assert again.attempts == 2 and again.due_at - utcnow() > timedelta(seconds=19)
    clock.shift(timedelta(seconds=20))
    assert await runner.run_once() == 1
    assert handler.calls == ["flaky"] * 3
    assert await effects(sessions) == ["flaky"]
    assert (await row(sessions, "flaky")).done_at is not None


async def test_schedule_again_moves_the_deadline_and_cancel_drops_it(sessions: Any) -> None:
    handler = Recorder()
    runner = make_runner(sessions, handler)
    await schedule(sessions, "m", timedelta(seconds=10))
    await schedule(sessions, "m", timedelta(seconds=100), extra=1)
    async with sessions() as db:
        count = (await db.execute(select(func.count()).select_from(DueWork))).scalar_one()
    assert count == 1
    assert (await row(sessions, "m")).payload == {"n": "m", "extra": 1}
    clock.shift(timedelta(seconds=20))
    assert await runner.run_once() == 0
    clock.shift(timedelta(seconds=90))
    assert await runner.run_once() == 1

    # A deadline that ran is armed again by a new schedule; cancel drops a pending one.
    await schedule(sessions, "m", timedelta(seconds=5))
    await schedule(sessions, "gone", timedelta(seconds=5))
    async with sessions() as db:
        assert await jobs.cancel(db, "test.work", "gone")
        assert not await jobs.cancel(db, "test.work", "never")
        await db.commit()
    clock.shift(timedelta(seconds=6))
    assert await runner.run_once() == 1
    assert handler.calls == ["m", "m"]


async def test_unknown_kinds_are_left_for_a_runner_that_knows_them(sessions: Any) -> None:
    async with sessions() as db:
        await jobs.schedule(db, "other.kind", "x", utcnow(), {})
        await db.commit()
    assert await make_runner(sessions, Recorder()).run_once() == 0
    assert (await row(sessions, "x", kind="other.kind")).done_at is None


async def test_two_runners_racing_run_each_row_once(settings: Settings, sessions: Any) -> None:
    """Two runners with their own connection pools (as two processes have) race for
    the same due rows: every row runs once, and its effect is stored once."""
    keys = [f"{n:02d}" for n in range(20)]
    for key in keys:
        await schedule(sessions, key, timedelta(0))
    other = make_engine(settings.database_url)
    try:
        first, second = Recorder("a", delay=0.02), Recorder("b", delay=0.02)
        runners = [make_runner(sessions, first), make_runner(make_sessionmaker(other), second)]
        await asyncio.gather(*(r.run_once() for r in runners))
        await asyncio.gather(*(r.run_once() for r in runners))
    finally:
        await other.dispose()
    assert await effects(sessions) == keys
    async with sessions() as db:
        rows = (await db.execute(select(DueWork).where(DueWork.kind == "test.work"))).scalars().all()
    assert all(r.done_at is not None and r.attempts == 1 for r in rows)
    if settings.database_url.startswith("postgresql"):
        # SKIP LOCKED: each runner took different rows; nothing was run twice.
        assert sorted(first.calls + second.calls) == keys
        assert first.calls and second.calls


async def test_scheduling_wakes_the_runner(sessions: Any) -> None:
    handler = Recorder()
    runner = DueWorkRunner(sessions, EventBus(), poll_seconds=60)
    runner.handle("test.work", handler)
    runner.start()
    try:
        await asyncio.sleep(0.1)  # the first poll found nothing; the next is a minute away
        await schedule(sessions, "now", timedelta(0))
        for _ in range(200):
            if handler.calls:
                break
            await asyncio.sleep(0.01)
        assert handler.calls == ["now"]
    finally:
        await runner.stop()
