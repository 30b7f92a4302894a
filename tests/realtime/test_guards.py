"""The realtime core's guards under pressure, on a real server: load shedding and room
lock timeouts answer ``unavailable`` with ``retry_after``; the login sweep cuts only
sockets it judged; the ephemeral typing signal reaches the room, is never logged and
is bounded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import func, select, update

import server.people.logins as login_module
import server.people.service as people_service
import server.realtime.server as realtime_server
import server.room.log as room_log
from server.core.clock import utcnow
from server.people.models import LoginSession
from server.realtime.server import Realtime
from server.room.models import RoomEvent
from server.web.keys import REALTIME, ROOMS
from tests.conftest import LiveServer
from tests.fixtures.world import World
from tests.realtime.live import Peer, Peers, converge, eventually


async def stored_events(sessions: Any, session_id: str) -> list[RoomEvent]:
    async with sessions() as db:
        rows = await db.execute(select(RoomEvent).where(RoomEvent.session_id == session_id).order_by(RoomEvent.seq))
        return list(rows.scalars())


async def stored_count(sessions: Any) -> int:
    async with sessions() as db:
        return int((await db.execute(select(func.count()).select_from(RoomEvent))).scalar_one())


def assert_retry_later(ack: dict[str, Any], code: str, what: object = None) -> None:
    assert set(ack) == {"error"}, (what, ack)
    error = ack["error"]
    assert error["code"] == code, (what, ack)
    assert isinstance(error.get("retry_after"), int) and error["retry_after"] >= 1, (what, ack)
    assert isinstance(error["message"], str) and error["message"], (what, ack)


# ---- load shedding ----------------------------------------------------------------------------


async def test_events_past_the_in_flight_limit_are_shed_with_unavailable(
    peers: Peers, world: World, server: LiveServer, sessions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    await converge([chair, expert])
    rt = server.app[REALTIME]
    rooms = server.app[ROOMS]
    limit, fired = 3, 10
    monkeypatch.setattr(realtime_server, "MAX_IN_FLIGHT", limit)
    # The admitted events park inside the service until released, so the rest arrive
    # while exactly ``limit`` are in flight.
    original = rooms.chat
    entered: list[str] = []
    release = asyncio.Event()

    async def parked_chat(scope: Any, text: str, idem: str) -> Any:
        entered.append(idem)
        await release.wait()
        return await original(scope, text, idem)

    monkeypatch.setattr(rooms, "chat", parked_chat)
    before = await stored_events(sessions, sid)
    calls = [
        asyncio.create_task(expert.send("chat.send", text=f"burst {n}", idem=f"burst-{n}")) for n in range(fired)
    ]
    await eventually(lambda: sum(c.done() for c in calls) == fired - limit, "the shed events to be answered")
    await eventually(lambda: len(entered) == limit, "the admitted events to reach the service")
    assert rt.in_flight == limit
    shed = [c.result() for c in calls if c.done()]
    for ack in shed:
        assert_retry_later(ack, "unavailable")
    release.set()
    acks = await asyncio.gather(*calls)
    accepted = [a for a in acks if a.get("ok")]
    assert len(accepted) == limit, acks
    assert not any(a.get("error", {}).get("code") == "internal" for a in acks), acks
    assert sorted(a["error"]["code"] for a in acks if "error" in a) == ["unavailable"] * (fired - limit)

    # Only the admitted messages were stored; the server is back to normal.
    after = await stored_events(sessions, sid)
    assert sorted(r.idempotency_key for r in after[len(before):]) == sorted(entered)
    await eventually(lambda: rt.in_flight == 0, "nothing left in flight")
    monkeypatch.setattr(rooms, "chat", original)
    retried = next(f"burst-{n}" for n in range(fired) if f"burst-{n}" not in entered)
    again = await expert.send("chat.send", text="retried after shedding", idem=retried)
    assert again["ok"] and not again.get("duplicate"), again
    assert (await chair.send("room.sync", since=0))["ok"]
    await converge([chair, expert])
    assert len(chair.state.chat) == limit + 1


async def test_a_held_room_lock_answers_unavailable_and_stores_nothing(
    peers: Peers, world: World, server: LiveServer, sessions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    await converge([chair, expert])
    latecomer = await peers.connect("delegate")
    monkeypatch.setattr(room_log, "LOCK_WAIT_SECONDS", 0.3)
    locks = server.app[ROOMS].log.locks
    count = await stored_count(sessions)

    async with locks.hold(sid):  # a stalled holder of this room
        for peer, name, fields in (
            (expert, "chat.send", {"text": "while it is held", "idem": "held-1"}),
            (expert, "floor.request", {"idem": "floor-1"}),
            (chair, "item.start", {"item_id": world.items[sid][0]}),
        ):
            started = time.monotonic()
            ack = await peer.send(name, **fields)
            took = time.monotonic() - started
            assert_retry_later(ack, "unavailable", name)
            assert 0.25 < took < 3, (name, took)  # the bounded wait, not LOCK_WAIT_SECONDS' default
        started = time.monotonic()
        ack = await latecomer.call("room.join", {"session_id": sid})
        assert_retry_later(ack, "unavailable", "room.join")
        assert time.monotonic() - started < 3
        assert await stored_count(sessions) == count
        assert locks.waiting(sid) == 1  # only the test's own hold: no waiter was left queued
    assert locks.waiting(sid) == 0

    # Released: the same message (same idempotency key) is stored once, as a first send.
    ack = await expert.send("chat.send", text="while it is held", idem="held-1")
    assert ack["ok"] and not ack.get("duplicate"), ack
    floor = await expert.send("floor.request", idem="floor-1")
    assert floor["ok"], floor
    # The refused join never subscribed the latecomer: it heard nothing until it joins.
    await chair.synced(floor["seq"])
    assert latecomer.live == []
    joined = await latecomer.call("room.join", {"session_id": sid})
    assert joined["ok"] and joined["status"] == "joined", joined
    assert await stored_count(sessions) == count + 3  # chat, floor request, join
    await converge([chair, expert])
    assert [c["text"] for c in chair.state.chat] == ["while it is held"]


# ---- the login sweep --------------------------------------------------------------------------


@pytest.mark.parametrize("full", [False, True], ids=["quick", "full"])
async def test_the_login_sweep_does_not_cut_sockets_that_connect_while_it_runs(
    full: bool, peers: Peers, world: World, server: LiveServer, sessions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = server.app[REALTIME]

    async def idle(full: bool = False) -> None:
        return None

    # The background sweeper (every second) stays out of it: the test runs the sweep.
    monkeypatch.setattr(rt, "sweep", idle)
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    revoked = await peers.joined("expert", sid)
    steady = await peers.joined("expert2", sid)
    late_keys = ("delegate", "interpreter", "stakeholder")
    for key in late_keys:
        await peers.cookie(key)  # logged in already; their sockets connect during the sweep
    async with sessions() as db:
        await db.execute(
            update(LoginSession)
            .where(LoginSession.person_id == world.members["expert"].person_id)
            .values(revoked_at=utcnow())
        )
        await db.commit()

    # The sweep's query: slow, and it waits until the latecomers are connected.
    entered, release = asyncio.Event(), asyncio.Event()

    def slowed(original: Any) -> Any:
        async def slow(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs)
            entered.set()
            await release.wait()
            return result

        return slow

    monkeypatch.setattr(people_service, "ended_login_ids", slowed(people_service.ended_login_ids))
    monkeypatch.setattr(login_module, "valid_login_ids", slowed(login_module.valid_login_ids))
    monkeypatch.setattr(people_service, "valid_login_ids", login_module.valid_login_ids)

    sweeping = asyncio.create_task(Realtime.sweep(rt, full=full))
    await asyncio.wait_for(entered.wait(), 10)
    late: list[Peer] = [await peers.joined(key, sid) for key in late_keys]
    late.append(await peers.joined("secretariat", sid))  # a second socket on a login it judges
    assert revoked.client.connected
    release.set()
    await asyncio.wait_for(sweeping, 10)

    # The revoked login's socket is cut; nobody else's.
    assert revoked.client.get_sid() not in rt.sockets
    await eventually(lambda: not revoked.client.connected, "the revoked socket to be cut", timeout=3)
    survivors = [chair, steady, *late]
    said = await chair.send("chat.send", text="everyone but the revoked", idem="after-sweep")
    assert said["ok"], said
    for peer in survivors:
        await peer.synced(said["seq"])
        assert peer.client.connected and peer.client.get_sid() in rt.sockets, peer.key
    assert rt.sockets.keys() == {p.client.get_sid() for p in survivors}
    assert revoked.membership_id not in chair.state.present
    assert said["seq"] not in [e["seq"] for e in revoked.live]

    # A second sweep with nothing newly ended cuts nobody.
    await asyncio.wait_for(Realtime.sweep(rt, full=full), 10)
    assert all(p.client.connected for p in survivors)
    assert rt.sockets.keys() == {p.client.get_sid() for p in survivors}


# ---- the typing signal ------------------------------------------------------------------------


def listen(peer: Peer, name: str = "room.signal") -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []

    async def on(data: dict[str, Any]) -> None:
        got.append(data)

    peer.client.on(name, on)
    return got


async def test_typing_reaches_the_room_and_is_never_logged(
    peers: Peers, world: World, server: LiveServer, sessions: Any
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    delegate = await peers.joined("delegate", sid)
    await converge([chair, expert, delegate])
    heard = {p.key: listen(p) for p in (chair, delegate)}
    seq, count = chair.state.seq, await stored_count(sessions)

    ack = await expert.send("room.typing")
    assert ack == {"ok": True}, ack
    want = {"session_id": sid, "type": "typing", "membership_id": expert.membership_id}
    for key, got in heard.items():
        await eventually(lambda got=got: len(got) == 1, f"{key} to hear the typing signal")
        assert {k: got[0][k] for k in want} == want, (key, got)

    # Nothing in the log, nothing broadcast as a room event, nothing to sync.
    assert await stored_count(sessions) == count
    sync = await chair.send("room.sync", since=seq)
    assert sync["ok"] and sync["seq"] == seq and sync["events"] == [], sync
    assert all(p.live[-1]["seq"] == seq for p in (chair, expert, delegate))

    # An interpreter may chat, so may type.
    interpreter = await peers.joined("interpreter", sid)
    assert (await interpreter.send("room.typing")) == {"ok": True}
    await eventually(lambda: len(heard["secretariat"]) == 2, "the interpreter's signal")
    assert heard["secretariat"][1]["membership_id"] == interpreter.membership_id
    assert await stored_count(sessions) == count + 1  # the interpreter's join only


async def test_typing_is_refused_to_those_absent_or_without_the_chat_right(
    peers: Peers, world: World, server: LiveServer, sessions: Any
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    heard = listen(chair)
    count = len(await stored_events(sessions, sid))

    # Connected but never joined: not present.
    outsider = await peers.connect("expert")
    outsider.session_id = sid
    ack = await outsider.send("room.typing")
    assert ack["error"]["code"] == "conflict", ack
    # Joined, then left: not present any more.
    leaver = await peers.joined("delegate", sid)
    assert (await leaver.send("room.leave"))["ok"]
    ack = await leaver.send("room.typing")
    assert ack["error"]["code"] == "conflict", ack

    # An observer may listen, not chat: refused by the policy even when present; in a
    # closed session (which it may not even see) the session does not exist for it.
    observer = await peers.joined("observer", sid)
    ack = await observer.send("room.typing")
    assert ack["error"]["code"] == "forbidden", ack
    ack = await observer.call("room.typing", {"session_id": world.sessions["closed"]})
    assert ack["error"]["code"] == "not_found", ack
    stakeholder = await peers.connect("stakeholder")
    ack = await stakeholder.call("room.typing", {"session_id": world.sessions["closed"]})
    assert ack["error"]["code"] == "not_found", ack
    for bad in ({"session_id": sid, "text": "x"}, {}, "typing", None):
        assert (await chair.call("room.typing", bad))["error"]["code"] == "invalid", bad

    # None of it reached the room; the joins and the leave are all that was stored.
    assert (await chair.send("room.typing")) == {"ok": True}
    await eventually(lambda: len(heard) == 1, "the chair's own signal")
    assert [s["membership_id"] for s in heard] == [chair.membership_id]
    stored = [(r.type, r.membership_id) for r in await stored_events(sessions, sid)][count:]
    assert stored == [
        ("join", leaver.membership_id), ("leave", leaver.membership_id), ("join", observer.membership_id)
    ], stored


async def test_a_typing_flood_is_rate_limited(peers: Peers, world: World, server: LiveServer, sessions: Any) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    heard = listen(chair)
    count = await stored_count(sessions)

    started = time.monotonic()
    acks = [await expert.send("room.typing") for _ in range(20)]
    elapsed = time.monotonic() - started
    accepted = [a for a in acks if a.get("ok")]
    refused = [a for a in acks if "error" in a]
    assert acks[:5] == [{"ok": True}] * 5, acks  # the burst
    # Then two a second (one more for the boundary), however slowly the 20 went out.
    assert refused and len(accepted) <= 5 + 2 * elapsed + 1, (elapsed, acks)
    for ack in refused:
        assert_retry_later(ack, "rate_limited")
    # Only what was accepted went out; the limit is the sender's own.
    await eventually(lambda: len(heard) == len(accepted), "the accepted signals")
    assert all(s["membership_id"] == expert.membership_id for s in heard)
    assert (await chair.send("room.typing")) == {"ok": True}
    assert (await expert.send("chat.send", text="typing is limited, chat is not", idem="c1"))["ok"]
    assert await stored_count(sessions) == count + 1
