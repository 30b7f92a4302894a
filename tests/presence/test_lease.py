"""A process's connections leave the room when its lease lapses, and only then; a
graceful stop closes what is left and ends the lease. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from server.core import clock
from server.core.events import DomainEvent, EventBus
from server.jobs import service as jobs
from server.jobs.runner import DueWorkRunner
from server.presence.lease import PRESENCE_EXPIRE, ProcessLease
from server.presence.models import Lease
from server.room.log import RoomLog
from server.room.maintenance import PresenceClosed, conn_id
from server.room.state import EventType
from tests.fixtures.world import World


class Process:
    """One server process's presence machinery, sharing the database with others."""

    def __init__(self, sessions: Any, name: str) -> None:
        self.log = RoomLog(sessions)
        self.bus = EventBus()
        self.published: list[DomainEvent] = []
        self.lost = 0

        async def collect(event: PresenceClosed) -> None:
            self.published.append(event)

        async def on_lost() -> None:
            self.lost += 1

        self.bus.subscribe(PresenceClosed, collect)
        self.lease = ProcessLease(
            sessions, self.log, self.bus, lifetime_seconds=25, renew_seconds=10, process_id=name, on_lost=on_lost
        )
        self.runner = DueWorkRunner(sessions, self.bus)
        self.lease.register(self.runner)


async def join(sessions: Any, log: RoomLog, session_id: str, membership_id: str, conn: str) -> None:
    async with log.unit(session_id) as unit:
        unit.add(EventType.JOIN, membership_id, {"person": {"name": "x"}, "conn": conn})


async def connections(sessions: Any, session_id: str) -> dict[str, set[str]]:
    async with sessions() as db:
        state = await RoomLog(sessions).state(db, session_id)
    return {m: c for m, c in state.connections.items() if c}


async def test_a_dead_process_connections_leave_when_its_lease_lapses(sessions: Any, world: World) -> None:
    sid = world.sessions["open"]
    expert, chair = world.members["expert"].membership_id, world.members["secretariat"].membership_id
    dead, alive = Process(sessions, "dead"), Process(sessions, "alive")
    await dead.lease.start()
    await alive.lease.start()
    await join(sessions, dead.log, sid, expert, conn_id("dead", "s1"))
    await join(sessions, dead.log, sid, expert, conn_id("dead", "s2"))
    await join(sessions, alive.log, sid, chair, conn_id("alive", "s3"))
    # "dead" is killed: it renews no more. "alive" keeps renewing.
    clock.shift(timedelta(seconds=20))
    await alive.lease.renew()
    assert await alive.runner.run_once() == 0
    clock.shift(timedelta(seconds=10))
    await alive.lease.renew()
    assert await alive.runner.run_once() == 1
    assert await connections(sessions, sid) == {chair: {"alive:s3"}}
    [closed] = alive.published
    assert isinstance(closed, PresenceClosed) and closed.session_id == sid
    assert [(e["type"], e["payload"]) for e in closed.events] == [
        ("leave", {"conn": "dead:s1", "reason": "lost"}),
        ("leave", {"conn": "dead:s2", "reason": "lost"}),
    ]
    async with sessions() as db:
        assert [lease.process_id for lease in (await db.execute(select(Lease))).scalars()] == ["alive"]
    # Exactly once: the restarted "dead" process's runner finds nothing left to do.
    assert await dead.runner.run_once() == 0


async def test_a_stalled_process_learns_it_lost_its_lease(sessions: Any, world: World) -> None:
    sid = world.sessions["open"]
    expert = world.members["expert"].membership_id
    stalled, peer = Process(sessions, "stalled"), Process(sessions, "peer")
    await stalled.lease.start()
    await join(sessions, stalled.log, sid, expert, conn_id("stalled", "s1"))
    clock.shift(timedelta(seconds=26))
    assert await peer.runner.run_once() == 1
    assert await connections(sessions, sid) == {}
    assert not await stalled.lease.renew()
    assert stalled.lost == 1
    # A new deadline is armed: the process is alive again, with a fresh lease.
    async with sessions() as db:
        deadline = await jobs.find(db, PRESENCE_EXPIRE, "stalled")
    assert deadline is not None and deadline.done_at is None
    assert await stalled.lease.renew()
    assert stalled.lost == 1


async def test_a_graceful_stop_ends_the_lease(sessions: Any, world: World) -> None:
    sid = world.sessions["open"]
    expert = world.members["expert"].membership_id
    process = Process(sessions, "leaving")
    await process.lease.start()
    await join(sessions, process.log, sid, expert, conn_id("leaving", "s1"))  # its leave failed
    await process.lease.stop()
    assert await connections(sessions, sid) == {}
    [closed] = process.published
    assert isinstance(closed, PresenceClosed)
    assert closed.events[0]["payload"] == {"conn": "leaving:s1", "reason": "stop"}
    async with sessions() as db:
        assert await jobs.find(db, PRESENCE_EXPIRE, "leaving") is None
        assert (await db.execute(select(Lease))).scalars().all() == []
    clock.shift(timedelta(minutes=1))
    assert await Process(sessions, "next").runner.run_once() == 0


async def test_the_sole_process_expires_earlier_runs_at_once(sessions: Any, world: World) -> None:
    sid = world.sessions["open"]
    expert = world.members["expert"].membership_id
    crashed = Process(sessions, "crashed")
    await crashed.lease.start()
    await join(sessions, crashed.log, sid, expert, conn_id("crashed", "s1"))
    restarted = Process(sessions, "restarted")
    await restarted.lease.start()
    assert await restarted.lease.expire_others() == 1
    assert await restarted.runner.run_once() == 1
    assert await connections(sessions, sid) == {}
