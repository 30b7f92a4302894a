"""The event log's per-process state cache stays exact when other processes append."""

from __future__ import annotations

import asyncio
from typing import Any

from server.room.log import RoomLog
from server.room.state import EventType
from tests.fixtures.world import World


async def test_concurrent_reads_fold_another_process_events_once(sessions: Any, world: World) -> None:
    sid = world.sessions["open"]
    author = world.members["expert"].membership_id
    here, there = RoomLog(sessions), RoomLog(sessions)  # two server processes on one database
    async with here.unit(sid) as unit:
        unit.add(EventType.CHAT, author, {"text": "one"})
    async with there.unit(sid) as unit:
        assert unit.state.seq == 1
        unit.add(EventType.CHAT, author, {"text": "two"})
        unit.add(EventType.FLOOR_REQUEST, author, {})

    # Several commands on this process read the state at once (e.g. two room.syncs).
    async def read() -> Any:
        async with sessions() as db:
            return await here.state(db, sid)

    states = await asyncio.gather(*(read() for _ in range(4)))
    async with sessions() as db:
        expected = await RoomLog(sessions).state(db, sid)
    for state in states:
        assert state.snapshot() == expected.snapshot()
    assert [c["text"] for c in expected.chat] == ["one", "two"] and expected.seq == 3
