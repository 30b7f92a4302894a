"""Beacons and message-queue gaps: a client that missed a broadcast learns it did.

A ``room.beacon`` ``{session_id, seq}`` names the last committed ``seq`` of each room
this process serves; a client behind it syncs. ``Realtime.on_gap`` (called by the
Redis manager when its subscription was lost, or a publish failed) drops the cached
scopes and room states and beacons at once. With Redis, rooms span processes of one
deployment (one ``redis_channel``) and never reach another deployment's.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest
import redis.asyncio as aioredis
from sqlalchemy import update

from server.access.roles import Access
from server.agenda.models import AgendaSession
from server.config import Settings
from server.realtime.manager import FanoutRedisManager
from server.room.log import RoomLog
from server.room.state import EventType
from server.web.keys import REALTIME
from tests.conftest import LiveServer, free_port, settings_for, start_server
from tests.fixtures.databases import REDIS_URL
from tests.fixtures.world import World
from tests.realtime.live import Peer, Peers, eventually, hold_cached_scopes

QUIET = 0.3  # how long a client is watched for something that must not arrive
# A beacon sent by on_gap or beacon() arrives at once; well before the periodic one
# (server.app.BEACON_SECONDS) could stand in for it.
PROMPT = 2.0


def beacons_of(peer: Peer) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    peer.client.on("room.beacon", got.append)
    return got


async def append_unheard(sessions: Any, session_id: str, author: str, text: str) -> int:
    """Append through a log of its own (as another process, or a tool, would): nothing
    is broadcast. Returns the seq written."""
    async with RoomLog(sessions).unit(session_id) as unit:
        event = unit.add(EventType.CHAT, author, {"text": text})
    return int(event["seq"])


# ---- one process --------------------------------------------------------------------------


async def test_a_gap_beacons_the_last_committed_seq(
    peers: Peers, world: World, sessions: Any, server: LiveServer
) -> None:
    sid, closed = world.sessions["open"], world.sessions["closed"]
    expert = await peers.joined("expert", sid)
    chair = await peers.joined("secretariat", closed)
    idle = await peers.connect("delegate")  # connected, in no room
    heard = {p.key: beacons_of(p) for p in (expert, chair, idle)}
    seen = expert.state.seq

    last = await append_unheard(sessions, sid, world.members["delegate"].membership_id, "missed one")
    last = await append_unheard(sessions, sid, world.members["delegate"].membership_id, "missed two")
    assert last == seen + 2
    await asyncio.sleep(QUIET)
    assert expert.state.seq == seen and heard["expert"] == []  # nothing was broadcast

    await server.app[REALTIME].on_gap("test")
    await eventually(lambda: heard["expert"] == [{"session_id": sid, "seq": last}], "the beacon of the open room",
                     timeout=PROMPT)
    await eventually(lambda: heard["secretariat"] == [{"session_id": closed, "seq": chair.state.seq}],
                     "the beacon of the closed room", timeout=PROMPT)
    await asyncio.sleep(QUIET)
    assert heard["delegate"] == []
    assert heard["expert"] == [{"session_id": sid, "seq": last}]

    # Behind the beacon, the client syncs and has what it missed.
    synced = await expert.send("room.sync", since=seen)
    assert [e["seq"] for e in synced["events"]] == [seen + 1, seen + 2]
    assert [e["payload"]["text"] for e in synced["events"]] == ["missed one", "missed two"]
    for event in synced["events"]:
        expert.absorb(event)
    # And the room goes on from the database's seq.
    said = await expert.send("chat.send", text="after the gap", idem="g1")
    assert said["ok"] and said["seq"] == last + 1, said
    await expert.synced(last + 1)


async def test_beacon_on_its_own_reports_each_room_it_serves(
    peers: Peers, world: World, sessions: Any, server: LiveServer
) -> None:
    sid = world.sessions["open"]
    first = await peers.joined("expert", sid)
    second = await peers.joined("delegate", sid)
    heard = [beacons_of(first), beacons_of(second)]
    realtime = server.app[REALTIME]

    await realtime.beacon()
    top = second.state.seq
    await eventually(lambda: all(got == [{"session_id": sid, "seq": top}] for got in heard),
                     "a beacon at the current seq", timeout=PROMPT)

    last = await append_unheard(sessions, sid, world.members["expert"].membership_id, "unheard")
    await realtime.beacon()
    await eventually(lambda: all(got[-1:] == [{"session_id": sid, "seq": last}] for got in heard),
                     "a beacon at the new seq", timeout=PROMPT)
    assert first.state.seq < last  # the beacon is how it learns


async def test_a_gap_drops_cached_scopes(
    peers: Peers, world: World, sessions: Any, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Access news from another process may be among what was lost: after a gap every
    socket's scope is read again, without waiting for the cache to age."""
    sid = world.sessions["open"]
    stakeholder = await peers.joined("stakeholder", sid)
    hold_cached_scopes(monkeypatch)
    assert (await stakeholder.send("chat.send", text="before", idem="s1"))["ok"]
    # Closed elsewhere; its news (and, for this test, even the version) never arrived.
    async with sessions() as db:
        await db.execute(update(AgendaSession).where(AgendaSession.id == sid).values(access=Access.CLOSED))
        await db.commit()
    await server.app[REALTIME].on_gap("test")
    said = await stakeholder.send("chat.send", text="after", idem="s2")
    assert said.get("error", {}).get("code") in {"not_found", "forbidden"}, said


# ---- Redis ------------------------------------------------------------------------------


async def _redis_up() -> None:
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except OSError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def redis_server(settings: Settings, channel: str) -> AsyncIterator[LiveServer]:
    """An in-process server on its own port, sharing rooms through Redis on ``channel``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    live, runner = await start_server(
        settings_for(settings, port=port, base_url=base, allowed_origins=(base,), redis_url=REDIS_URL,
                     redis_channel=channel)
    )
    manager = live.app[REALTIME].sio.manager
    try:
        assert isinstance(manager, FanoutRedisManager) and manager.channel == channel
        yield live
    finally:
        await runner.cleanup()
        # The app leaves the listener and the publishing connection to process exit.
        thread = getattr(manager, "thread", None)
        if thread is not None:
            thread.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await thread
        await manager.aclose()


def listening(live: LiveServer) -> bool:
    return bool(live.app[REALTIME].sio.manager.listening)


async def joined_on(peers: Peers, key: str, live: LiveServer, session_id: str) -> Peer:
    peer = await peers.connect(key, server=live)
    ack = await peer.join(session_id)
    assert ack["ok"] and ack["status"] == "joined", ack
    return peer


async def close(peers: Peers, servers: list[LiveServer]) -> None:
    for peer in peers.made:
        if peer.client.connected:
            await peer.client.disconnect()
    await eventually(lambda: not any(live.app[REALTIME].sio.environ for live in servers), "every disconnect handled")


# Several processes share one database only on PostgreSQL (docs/operations.md: a second
# process on the same SQLite file is not supported).
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_with_redis_rooms_cross_processes_but_not_deployments(
    settings: Settings, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    await _redis_up()
    ours, theirs = f"parley-test-{uuid.uuid4().hex}", f"parley-test-{uuid.uuid4().hex}"
    sid = world.sessions["open"]
    async with (
        redis_server(settings, ours) as one,
        redis_server(settings, ours) as two,
        redis_server(settings, theirs) as other,
    ):
        peers = Peers(one, world)
        try:
            near = await joined_on(peers, "expert", one, sid)
            far = await joined_on(peers, "delegate", two, sid)
            stranger = await joined_on(peers, "secretariat", other, sid)
            stranger_joined = stranger.state.seq
            await eventually(lambda: listening(one) and listening(two) and listening(other), "subscribed")

            # The deployments share this test's database (so one session id names the
            # same room in both), so each side's log has the other's events it never
            # hears: compare what arrived live, not the folded states.
            def arrived(peer: Peer) -> set[int]:
                return {e["seq"] for e in peer.live}

            # Published on process two, heard on process one; not by the other deployment.
            said = await far.send("chat.send", text="from two", idem="t1")
            assert said["ok"], said
            await eventually(lambda: said["seq"] in arrived(near), "process two's chat on process one")
            back = await near.send("chat.send", text="from one", idem="o1")
            assert back["ok"], back
            await eventually(lambda: back["seq"] in arrived(far), "process one's chat on process two")
            texts = {e["seq"]: e["payload"].get("text") for e in near.live}
            assert texts[said["seq"]] == "from two"
            await asyncio.sleep(QUIET)
            assert not {said["seq"], back["seq"]} & arrived(stranger)

            # Nor does the other deployment's news (its join, its chat) reach this one.
            theirs_said = await stranger.send("chat.send", text="other deployment", idem="x1")
            assert theirs_said["ok"], theirs_said
            await eventually(lambda: theirs_said["seq"] in arrived(stranger), "the other deployment's own chat")
            await asyncio.sleep(QUIET)
            for peer in (near, far):
                assert not {stranger_joined, theirs_said["seq"]} & arrived(peer), peer.key
        finally:
            await close(peers, [one, two, other])
    assert not [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]


def _our_redis_ports() -> set[int]:
    redis_port = int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    return {
        c.laddr.port for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == redis_port
    }


async def test_a_lost_redis_subscription_makes_clients_catch_up(
    settings: Settings, world: World, sessions: Any
) -> None:
    """End to end: the listener's connection is cut (only this test process's, never
    another's), it subscribes again, reports the gap, and the room is beaconed."""
    await _redis_up()
    sid = world.sessions["open"]
    async with redis_server(settings, f"parley-test-{uuid.uuid4().hex}") as one:
        peers = Peers(one, world)
        admin = aioredis.from_url(REDIS_URL)
        try:
            expert = await joined_on(peers, "expert", one, sid)
            heard = beacons_of(expert)
            await eventually(lambda: listening(one), "subscribed")
            last = await append_unheard(sessions, sid, world.members["delegate"].membership_id, "during the outage")

            mine = _our_redis_ports()
            cut = 0
            for entry in await admin.client_list(_type="pubsub"):
                if int(entry["addr"].rsplit(":", 1)[1]) in mine:
                    await admin.client_kill_filter(_id=entry["id"])
                    cut += 1
            assert cut >= 1
            await eventually(lambda: {"session_id": sid, "seq": last} in heard, "a beacon after the gap",
                             timeout=PROMPT + 1.0)
            await eventually(lambda: listening(one), "subscribed again", timeout=5)
            synced = await expert.send("room.sync", since=expert.state.seq)
            assert [e["payload"]["text"] for e in synced["events"]] == ["during the outage"]
        finally:
            await admin.aclose()
            await close(peers, [one])
