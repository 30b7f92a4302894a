"""Fault injection: disconnects in the middle of a burst of room commands.

The defect (fault-injection run): event handlers took a pooled connection and then
waited for the room's lock, while the disconnect handler's leave took the lock and
then asked the pool. With more commands in flight than the pool has connections,
one disconnect froze the room until the pool timed out ("QueuePool limit ... timed
out", acknowledgements ``internal``), and the leave was lost. Now every room
command takes the lock before a connection (``RoomLog.unit``), so a burst with
disconnects drains at the speed of the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from server.config import Settings
from server.db.session import POOL_TIMEOUT_SECONDS
from server.room.log import RoomLog
from server.room.models import RoomEvent
from server.web.keys import ENGINE, REALTIME, ROOMS
from tests.conftest import settings_for, start_server
from tests.fixtures.world import World
from tests.realtime.live import Peer, Peers, eventually

# Speakers, in turn, for the sending connections (observers may not chat).
SPEAKERS = ["secretariat", "expert", "expert2", "delegate", "interpreter", "stakeholder"]
SENDERS = 12  # connections sending
LEAVERS = 6  # connections that disconnect mid-burst
# Every acknowledgement arrives well before the pool's own timeout: a lock/pool
# deadlock would hold the burst until then (and answer "unavailable" or "internal").
ANSWER_WITHIN = min(4.0, POOL_TIMEOUT_SECONDS - 1.0)


def _capacity(live: Any) -> int:
    pool: Any = live.app[ENGINE].sync_engine.pool
    return int(pool.size() + max(pool._max_overflow, 0))


async def test_disconnects_during_a_burst_never_freeze_the_room(
    settings: Settings, world: World, sessions: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # No chat limit in the way: this test is about the pool and the lock.
    live, runner = await start_server(settings_for(settings, chat_rate=10_000.0, chat_burst=10_000))
    peers = Peers(live, world)
    sid = world.sessions["open"]
    try:
        capacity = _capacity(live)
        per_sender = -(-(2 * capacity + 10) // SENDERS)  # more sends in flight than connections
        senders = [await peers.joined(SPEAKERS[n % len(SPEAKERS)], sid) for n in range(SENDERS)]
        leavers = [await peers.joined(SPEAKERS[n % len(SPEAKERS)], sid) for n in range(LEAVERS)]
        leaving_conns = {peers.conn_id(p, live) for p in leavers}
        leaving_sids = {p.client.get_sid() for p in leavers}

        realtime = live.app[REALTIME]
        answers: dict[str, tuple[dict[str, Any], float]] = {}
        in_flight_at_disconnect: list[int] = []

        async def send(peer: Peer, n: int) -> None:
            text = f"burst {peer.client.get_sid()} {n}"
            started = time.monotonic()
            try:
                ack = await peer.call("chat.send", {"session_id": sid, "text": text, "idem": f"{n}-{started}"})
            except TimeoutError:
                ack = {"error": {"code": "no answer"}}
            answers[text] = (ack, time.monotonic() - started)

        # The room is held (as a slow command would hold it) until the disconnects are
        # under way, so the burst queues on it however fast each command is.
        release = await live.app[ROOMS].log.locks.acquire(sid)

        async def disconnect_mid_burst() -> None:
            # Once the server has more commands in flight than the pool has connections.
            try:
                await eventually(lambda: realtime.in_flight > capacity, "the burst under way")
                in_flight_at_disconnect.append(realtime.in_flight)
                await asyncio.gather(*(p.client.disconnect() for p in leavers))
            finally:
                release()

        caplog.set_level(logging.WARNING, logger="parley")
        started = time.monotonic()
        await asyncio.gather(
            *(send(p, n) for p in senders for n in range(per_sender)),
            disconnect_mid_burst(),
        )
        elapsed = time.monotonic() - started
        total = SENDERS * per_sender
        assert len(answers) == total
        assert in_flight_at_disconnect[0] > capacity, (in_flight_at_disconnect, capacity)

        # Every send answered quickly: ok, or "unavailable" with a retry_after; never internal.
        slow = [s for _, s in answers.values() if s > ANSWER_WITHIN]
        codes = Counter("ok" if a.get("ok") else a.get("error", {}).get("code") for a, _ in answers.values())
        assert not slow, (
            f"{len(slow)} of {total} answers took over {ANSWER_WITHIN}s (slowest {max(slow):.1f}s, "
            f"burst {elapsed:.1f}s, answers {dict(codes)})"
        )
        for text, (ack, _) in answers.items():
            if ack.get("ok"):
                continue
            error = ack.get("error", {})
            assert error.get("code") == "unavailable" and error.get("retry_after"), (text, ack)
        ok = {text: ack["seq"] for text, (ack, _) in answers.items() if ack.get("ok")}
        assert ok, answers

        # Every disconnect recorded its leave promptly (a leave that met an exhausted
        # pool used to be lost).
        async def read_log() -> list[Any]:
            async with sessions() as db:
                return list((await db.execute(
                    select(RoomEvent.seq, RoomEvent.type, RoomEvent.payload)
                    .where(RoomEvent.session_id == sid).order_by(RoomEvent.seq)
                )).all())

        deadline = time.monotonic() + ANSWER_WITHIN
        while True:
            rows = await read_log()
            left = {r.payload["conn"] for r in rows if r.type == "leave"}
            if leaving_conns <= left or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert leaving_conns <= left, f"leaves not recorded: {leaving_conns - left}"
        assert not (leaving_sids & set(realtime.sockets))
        assert not [r.getMessage() for r in caplog.records if "leave failed" in r.getMessage()]

        # One gap-free sequence.
        assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
        # Every acknowledged message stored exactly once, at the seq its ack named;
        # nothing refused was stored.
        stored = Counter(r.payload["text"] for r in rows if r.type == "chat")
        assert all(stored[text] == 1 for text in ok), {t: stored[t] for t in ok if stored[t] != 1}
        assert set(stored) == set(ok)
        at = {r.payload["text"]: r.seq for r in rows if r.type == "chat"}
        assert all(at[text] == seq for text, seq in ok.items())

        # And the room still answers at once.
        still = senders[0]
        t0 = time.monotonic()
        ack = await still.send("chat.send", text="after the burst", idem="after")
        assert ack["ok"] and ack["seq"] == rows[-1].seq + 1, ack
        assert time.monotonic() - t0 < 1.0
    finally:
        await peers.close()
        await runner.cleanup()


async def test_joins_from_sockets_that_close_meanwhile_leave_no_presence_behind(
    settings: Settings, world: World, sessions: Any
) -> None:
    """Sockets that ask to join and close before their join reached the room (it waits
    behind a burst): the room ends up with exactly the connections still open."""
    live, runner = await start_server(settings_for(settings, chat_rate=10_000.0, chat_burst=10_000))
    peers = Peers(live, world)
    sid = world.sessions["open"]
    try:
        capacity = _capacity(live)
        senders = [await peers.joined(SPEAKERS[n % len(SPEAKERS)], sid) for n in range(SENDERS)]
        quitters = [await peers.connect(SPEAKERS[n % len(SPEAKERS)]) for n in range(LEAVERS * 2)]
        quitter_conns = {peers.conn_id(p, live) for p in quitters}
        realtime = live.app[REALTIME]

        async def send(peer: Peer, n: int) -> dict[str, Any]:
            return await peer.call("chat.send", {"session_id": sid, "text": f"q {peer.client.get_sid()} {n}",
                                                 "idem": f"q{n}"})

        async def join_and_quit(peer: Peer) -> None:
            await eventually(lambda: realtime.in_flight > capacity, "the burst under way")
            await peer.client.emit("room.join", {"session_id": sid}, callback=lambda *_: None)
            # Long enough for the join to leave the client, far shorter than the
            # burst ahead of it on the room's lock.
            await asyncio.sleep(0.05)
            await peer.client.disconnect()

        async def quitters_then_release() -> None:
            try:
                await asyncio.gather(*(join_and_quit(p) for p in quitters))
            finally:
                release()

        per_sender = -(-(2 * capacity) // SENDERS)
        # The room is held until the quitters have asked and gone: their joins wait
        # behind the burst however fast each command is.
        release = await live.app[ROOMS].log.locks.acquire(sid)
        results = await asyncio.gather(
            *(send(p, n) for p in senders for n in range(per_sender)), quitters_then_release()
        )
        acks = [r for r in results if r is not None]
        assert all(a.get("ok") or a.get("error", {}).get("code") == "unavailable" for a in acks), acks
        await eventually(lambda: realtime.in_flight == 0, "every event answered")

        # The quitters' leaves (for joins that got in first) are recorded as their
        # disconnects are handled: give them a moment, then the room must be exact.
        open_conns = {peers.conn_id(p, live) for p in senders}
        deadline = time.monotonic() + ANSWER_WITHIN
        while True:
            async with sessions() as db:
                state = await RoomLog(sessions).state(db, sid)
            recorded = set().union(set(), *state.connections.values())
            if recorded == open_conns or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert not recorded & quitter_conns, f"presence of closed sockets: {recorded & quitter_conns}"
        assert recorded == open_conns
    finally:
        await peers.close()
        await runner.cleanup()
