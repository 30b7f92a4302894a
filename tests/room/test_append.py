"""The embedded setup's one-hop append (server/room/append.py): rows exactly as the
session would store them, nothing stored or cached when the commit fails, an
idempotency key met again, and a seq taken by someone else (the command runs again
from the database). On SQLite only: the appender exists only there."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from server.audit import service as audit
from server.config import Settings
from server.core.clock import utcnow
from server.db.session import make_engine, make_sessionmaker
from server.room.append import SqliteAppender
from server.room.log import RoomLog
from server.room.models import RoomEvent
from server.room.service import RoomService
from server.room.state import EventType
from tests.fixtures.databases import Templates
from tests.fixtures.world import World, build_world
from tests.room.test_log_commit import cached_state, fresh_fold, scope_of, stored


class Embedded:
    def __init__(self, url: str, sessions: Any, world: World) -> None:
        self.url = url
        self.sessions = sessions
        self.world = world
        self.appenders: list[SqliteAppender] = []

    def log(self) -> RoomLog:
        appender = SqliteAppender(self.url, RoomEvent.__table__)  # type: ignore[arg-type]
        self.appenders.append(appender)
        return RoomLog(self.sessions, exclusive=True, appender=appender)

    def raw(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.url.removeprefix("sqlite+aiosqlite:///"))
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()


@pytest.fixture
async def embedded(templates: Templates, tmp_path: Path) -> AsyncIterator[Embedded]:
    url = await templates.sqlite_copy(tmp_path / "embedded.db")
    local = Settings(
        var_dir=tmp_path / "var", database_url=url, redis_url=None, storage_dir=tmp_path / "storage",
        host="127.0.0.1", port=0, base_url="http://127.0.0.1", allowed_origins=("http://127.0.0.1",),
        secret_key=b"test-secret-key-" + tmp_path.name.encode(),
    )
    engine = make_engine(url)
    sessions = make_sessionmaker(engine, info=audit.session_info(local))
    async with sessions() as db:
        world = await build_world(db, local)
    made = Embedded(url, sessions, world)
    yield made
    for appender in made.appenders:
        await appender.aclose()
    await engine.dispose()


async def test_appended_rows_are_stored_as_the_session_stores_them(embedded: Embedded) -> None:
    world, sessions = embedded.world, embedded.sessions
    fast = RoomService(embedded.log())
    plain = RoomService(RoomLog(sessions, exclusive=True))
    open_, other = world.sessions["open"], world.sessions["stakeholder"]
    for rooms, sid in ((fast, open_), (plain, other)):
        scope = await scope_of(sessions, world, "secretariat", sid)
        assert (await rooms.join(scope, f"p:{sid}", None)).ack["status"] == "joined"
        said = await rooms.chat(scope, "Grüße — 50 % «done»", f"k-{sid}")
        assert said.ack == {"seq": 2}
    shapes = embedded.raw(
        "SELECT session_id, typeof(created_at), length(created_at), typeof(payload), payload, "
        "typeof(membership_id), idempotency_key IS NOT NULL FROM room_event WHERE type = 'chat' ORDER BY session_id"
    )
    by_room = {row[0]: row[1:] for row in shapes}
    assert by_room[open_] == by_room[other], shapes  # same storage, byte for byte in shape
    # Read back through the ORM: the same event the clients were sent.
    assert (await stored(sessions, open_))[-1] == (2, "chat", {"text": "Grüße — 50 % «done»"})
    assert await cached_state(fast.log, sessions, open_) == await fresh_fold(sessions, open_)
    # The chat went through the appender: no session was opened for it.
    assert fast.log.appender is not None


async def test_a_failed_append_leaves_the_cache_and_the_database_as_they_were(
    embedded: Embedded, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, sessions = embedded.world, embedded.sessions
    sid = world.sessions["open"]
    log = embedded.log()
    rooms = RoomService(log)
    expert = await scope_of(sessions, world, "expert", sid)
    chair = await scope_of(sessions, world, "secretariat", sid)
    await rooms.join(expert, "p:expert", None)
    await rooms.join(chair, "p:chair", None)
    assert (await rooms.chat(expert, "first", "i1")).ack == {"seq": 3}
    before = await cached_state(log, sessions, sid)

    appender = log.appender
    assert appender is not None
    original = appender._write
    failed: list[int] = []

    def insert_then_fail(params: list[tuple[Any, ...]]) -> None:
        # The row is written in the transaction; the COMMIT is what fails.
        conn = appender._connection()
        if not failed:
            failed.append(1)
            conn.execute(appender.sql, params[0])
            conn.rollback()
            raise OperationalError(appender.sql, params, sqlite3.OperationalError("disk I/O error"))
        original(params)

    monkeypatch.setattr(appender, "_write", insert_then_fail)
    with pytest.raises(OperationalError):
        await rooms.chat(expert, "lost", "i2")
    assert failed == [1]
    assert await cached_state(log, sessions, sid) == before
    assert [seq for seq, *_ in await stored(sessions, sid)] == [1, 2, 3]

    # The next command takes the next number, and the retry stores once.
    assert (await rooms.request_floor(chair, None)).ack["seq"] == 4
    assert (await rooms.chat(expert, "lost", "i2")).ack == {"seq": 5}
    assert (await rooms.chat(expert, "lost", "i2")).ack == {"seq": 5, "duplicate": True}
    assert [seq for seq, *_ in await stored(sessions, sid)] == [1, 2, 3, 4, 5]
    assert await cached_state(log, sessions, sid) == await fresh_fold(sessions, sid)


async def test_an_append_that_meets_a_taken_seq_runs_again_from_the_database(embedded: Embedded) -> None:
    world, sessions = embedded.world, embedded.sessions
    sid = world.sessions["open"]
    log = embedded.log()
    rooms = RoomService(log)
    expert = await scope_of(sessions, world, "expert", sid)
    await rooms.join(expert, "p:expert", None)
    assert (await rooms.chat(expert, "warm", "w1")).ack == {"seq": 2}
    # Someone else (a tool, a second writer) appends behind the warm cache's back.
    other = RoomLog(sessions, exclusive=False)
    async with other.unit(sid) as unit:
        unit.add(EventType.CHAT, world.members["expert"].membership_id, {"text": "from elsewhere"})
    said = await rooms.chat(expert, "after", "w2")
    assert said.ack == {"seq": 4}
    rows = await stored(sessions, sid)
    assert [p.get("text") for _, t, p in rows if t == EventType.CHAT] == ["warm", "from elsewhere", "after"]
    assert await cached_state(log, sessions, sid) == await fresh_fold(sessions, sid)


async def test_a_unique_key_met_again_is_an_integrity_error(embedded: Embedded) -> None:
    world = embedded.world
    sid = world.sessions["open"]
    appender = SqliteAppender(embedded.url, RoomEvent.__table__)  # type: ignore[arg-type]
    embedded.appenders.append(appender)
    row = {
        "session_id": sid, "seq": 1, "type": "chat", "membership_id": world.members["expert"].membership_id,
        "payload": {"text": "x"}, "idempotency_key": "same", "created_at": utcnow(),
    }
    await appender.append([row])
    with pytest.raises(IntegrityError):
        await appender.append([{**row, "seq": 2}])
    assert embedded.raw("SELECT count(*) FROM room_event WHERE session_id = ?", sid) == [(1,)]
