"""Events reach the room cache only after their commit.

The defect (fault-injection run): staged events were applied to the shared state
cache before the transaction committed. A commit that failed left the cache holding
an event the database never stored; the next command took the sequence number after
it, so the log had a hole and clients waited forever for the missing ``seq``. Now a
``Unit`` stages events and ``RoomLog`` folds them into the cache only after the
commit; a failure leaves the cache exactly as the database is. Checked at the
RoomLog and RoomService level, on both backends, with and without ``exclusive``
(the single-process mode that trusts a warm cache without reading the log).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access.guard import SessionScope, resolve_session
from server.people.models import Person
from server.room.log import RoomLog, Unit
from server.room.models import RoomEvent
from server.room.service import RoomService
from server.room.state import EventType
from tests.fixtures.world import World


class CommitFailed(Exception):
    """The database went away at the worst moment."""


def fail_once(monkeypatch: pytest.MonkeyPatch, where: str) -> list[int]:
    """Make the next unit's flush (before any row is written) or commit (after the rows
    were written in its transaction) raise once. Returns a list that records it."""
    raised: list[int] = []
    cls: Any = Unit if where == "flush" else AsyncSession
    name = "flush" if where == "flush" else "commit"
    original = getattr(cls, name)

    async def failing(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not raised:
            raised.append(1)
            if where == "commit":
                # The rows are in the transaction; the commit is what fails.
                assert self.in_transaction()
            raise CommitFailed(where)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, failing)
    return raised


async def stored(sessions: Any, session_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    async with sessions() as db:
        rows = await db.execute(
            select(RoomEvent.seq, RoomEvent.type, RoomEvent.payload)
            .where(RoomEvent.session_id == session_id)
            .order_by(RoomEvent.seq)
        )
        return [(r.seq, r.type, r.payload) for r in rows.all()]


async def fresh_fold(sessions: Any, session_id: str) -> dict[str, Any]:
    """The state folded from the database by a log that never cached anything."""
    async with sessions() as db:
        return (await RoomLog(sessions).state(db, session_id)).snapshot()


async def cached_state(log: RoomLog, sessions: Any, session_id: str) -> dict[str, Any]:
    async with sessions() as db:
        return (await log.state(db, session_id)).snapshot()


async def scope_of(sessions: Any, world: World, key: str, session_id: str) -> SessionScope:
    async with sessions() as db:
        person = await db.get(Person, world.members[key].person_id)
        assert person is not None
        return await resolve_session(db, person, session_id)


@pytest.mark.parametrize("where", ["flush", "commit"])
@pytest.mark.parametrize("exclusive", [True, False], ids=["exclusive", "shared"])
async def test_a_failed_commit_leaves_the_cache_as_the_database_is(
    sessions: Any, world: World, monkeypatch: pytest.MonkeyPatch, exclusive: bool, where: str
) -> None:
    sid = world.sessions["open"]
    author = world.members["expert"].membership_id
    log = RoomLog(sessions, exclusive=exclusive)
    async with log.unit(sid) as unit:
        unit.add(EventType.CHAT, author, {"text": "one"})
        unit.add(EventType.FLOOR_REQUEST, author, {})
    before = await cached_state(log, sessions, sid)
    assert before["seq"] == 2

    raised = fail_once(monkeypatch, where)
    with pytest.raises(CommitFailed):
        async with log.unit(sid) as unit:
            assert unit.state.seq == 2
            unit.add(EventType.CHAT, author, {"text": "never stored"})
            unit.add(EventType.FLOOR_WITHDRAW, author, {})
    assert raised == [1]
    # Nothing of it anywhere: not in the database, not in the cache.
    assert [seq for seq, *_ in await stored(sessions, sid)] == [1, 2]
    assert await cached_state(log, sessions, sid) == before

    # The next unit takes the next number: no hole for clients to wait on.
    async with log.unit(sid) as unit:
        assert unit.state.seq == 2 and unit.next_seq == 3
        event = unit.add(EventType.CHAT, author, {"text": "two"})
    assert event["seq"] == 3
    rows = await stored(sessions, sid)
    assert [seq for seq, *_ in rows] == [1, 2, 3]
    assert [p.get("text") for _, t, p in rows if t == EventType.CHAT] == ["one", "two"]
    assert await cached_state(log, sessions, sid) == await fresh_fold(sessions, sid)


@pytest.mark.parametrize("where", ["flush", "commit"])
@pytest.mark.parametrize("exclusive", [True, False], ids=["exclusive", "shared"])
async def test_a_chat_whose_commit_failed_is_not_in_the_room(
    sessions: Any, world: World, monkeypatch: pytest.MonkeyPatch, exclusive: bool, where: str
) -> None:
    sid = world.sessions["open"]
    rooms = RoomService(RoomLog(sessions, exclusive=exclusive))
    expert = await scope_of(sessions, world, "expert", sid)
    chair = await scope_of(sessions, world, "secretariat", sid)
    assert (await rooms.join(expert, "p:expert", None)).ack["status"] == "joined"
    assert (await rooms.join(chair, "p:chair", None)).ack["status"] == "joined"
    first = await rooms.chat(expert, "first", "i1")
    assert first.ack["seq"] == 3
    before = await cached_state(rooms.log, sessions, sid)

    raised = fail_once(monkeypatch, where)
    with pytest.raises(CommitFailed):
        await rooms.chat(expert, "lost", "i2")
    assert raised == [1]
    assert await cached_state(rooms.log, sessions, sid) == before
    assert [seq for seq, *_ in await stored(sessions, sid)] == [1, 2, 3]

    # Another participant's command gets the next number ...
    floor = await rooms.request_floor(chair, None)
    assert floor.ack["seq"] == 4 and floor.ack["position"] == 1
    [changed] = floor.news
    assert [e["seq"] for e in changed.events] == [4]  # type: ignore[attr-defined]
    # ... and the client's retry of the failed message stores it once, as new.
    retry = await rooms.chat(expert, "lost", "i2")
    assert retry.ack == {"seq": 5}
    again = await rooms.chat(expert, "lost", "i2")
    assert again.ack == {"seq": 5, "duplicate": True}

    rows = await stored(sessions, sid)
    assert [seq for seq, *_ in rows] == [1, 2, 3, 4, 5]
    assert [p["text"] for _, t, p in rows if t == EventType.CHAT] == ["first", "lost"]
    state = await cached_state(rooms.log, sessions, sid)
    assert state == await fresh_fold(sessions, sid)
    assert state["seq"] == 5 and state["queue"] == [world.members["secretariat"].membership_id]


@pytest.mark.parametrize("how", ["commit fails", "no commit"])
async def test_rooms_changed_in_a_callers_transaction_that_did_not_commit(
    sessions: Any, world: World, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """``units_in`` (due work changing rooms in its own transaction): a commit that fails
    or never happens leaves no staged event in the cache."""
    sid, other = world.sessions["open"], world.sessions["closed"]
    author = world.members["expert"].membership_id
    log = RoomLog(sessions, exclusive=True)
    for session_id in (sid, other):
        async with log.unit(session_id) as unit:
            unit.add(EventType.CHAT, author, {"text": "warm"})

    if how == "commit fails":
        fail_once(monkeypatch, "commit")
        with pytest.raises(CommitFailed):
            async with sessions() as db, log.units_in(db, [sid, other]) as units:
                units[sid].add(EventType.CHAT, author, {"text": "never stored"})
                units[other].add(EventType.CHAT, author, {"text": "never stored"})
                await units[sid].flush()
                await units[other].flush()
                await db.commit()
    else:
        async with sessions() as db, log.units_in(db, [sid, other]) as units:
            units[sid].add(EventType.CHAT, author, {"text": "never stored"})
            await units[sid].flush()

    for session_id in (sid, other):
        assert [seq for seq, *_ in await stored(sessions, session_id)] == [1]
        async with log.unit(session_id) as unit:
            assert unit.next_seq == 2
            unit.add(EventType.CHAT, author, {"text": "next"})
        assert [seq for seq, *_ in await stored(sessions, session_id)] == [1, 2]
        assert await cached_state(log, sessions, session_id) == await fresh_fold(sessions, session_id)
