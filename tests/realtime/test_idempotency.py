"""Retried sends are stored once; concurrent sends get distinct, gap-free seqs."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from server.room.models import RoomEvent
from tests.fixtures.world import World
from tests.realtime.live import Peers, converge


async def stored(sessions: Any, session_id: str) -> list[RoomEvent]:
    async with sessions() as db:
        rows = await db.execute(select(RoomEvent).where(RoomEvent.session_id == session_id).order_by(RoomEvent.seq))
        return list(rows.scalars())


async def test_retried_chat_is_stored_once(peers: Peers, world: World, sessions: Any) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    first = await expert.send("chat.send", text="only once", idem="retry-1")
    assert first["ok"] and "duplicate" not in first, first
    again = await expert.send("chat.send", text="only once", idem="retry-1")
    assert again == {"ok": True, "seq": first["seq"], "duplicate": True}
    # A retry from another connection of the same person (a reloaded tab) too.
    tab = await peers.joined("expert", sid)
    third = await tab.send("chat.send", text="only once", idem="retry-1")
    assert third["seq"] == first["seq"] and third["duplicate"] is True

    rows = [r for r in await stored(sessions, sid) if r.idempotency_key == "retry-1"]
    assert [(r.seq, r.type, r.payload) for r in rows] == [(first["seq"], "chat", {"text": "only once"})]
    # The same key from someone else is their own message.
    other = await chair.send("chat.send", text="mine", idem="retry-1")
    assert other["ok"] and "duplicate" not in other and other["seq"] > first["seq"]
    await converge([chair, expert, tab])
    assert [c["text"] for c in chair.state.chat] == ["only once", "mine"]


async def test_retried_floor_request_is_stored_once(peers: Peers, world: World, sessions: Any) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    first = await expert.send("floor.request", idem="floor-1")
    assert first["ok"] and first["position"] == 1, first
    again = await expert.send("floor.request", idem="floor-1")
    assert again["ok"] and again["seq"] == first["seq"] and again["duplicate"] is True, again
    # Without a key, asking again is a conflict, not a second entry.
    assert (await expert.send("floor.request"))["error"]["code"] == "conflict"
    requests = [r for r in await stored(sessions, sid) if r.type == "floor.request"]
    assert len(requests) == 1 and requests[0].idempotency_key == "floor-1"
    # A retried chair command is not applied twice either.
    give = await chair.send("floor.give", membership_id=expert.membership_id, idem="give-1")
    assert (await chair.send("floor.give", membership_id=expert.membership_id, idem="give-1"))["duplicate"]
    await converge([chair, expert])
    assert chair.state.seq == give["seq"]
    assert [r.type for r in await stored(sessions, sid)].count("floor.give") == 1


async def test_concurrent_retries_store_once(peers: Peers, world: World, sessions: Any) -> None:
    """A client that resends before the first ack arrives (same key, in flight together)."""
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    tab = await peers.joined("expert", sid)
    acks = await asyncio.gather(
        *(p.send("chat.send", text="racing", idem="race-1") for p in (expert, tab, expert, tab))
    )
    assert all(a.get("ok") for a in acks), acks
    assert len({a["seq"] for a in acks}) == 1, acks
    assert sum(1 for a in acks if not a.get("duplicate")) == 1, acks
    rows = [r for r in await stored(sessions, sid) if r.idempotency_key == "race-1"]
    assert len(rows) == 1
    acks = await asyncio.gather(*(p.send("floor.request", idem="race-2") for p in (expert, tab, expert)))
    assert all(a.get("ok") for a in acks) and len({a["seq"] for a in acks}) == 1, acks
    await converge([chair, expert, tab])
    assert [c["text"] for c in chair.state.chat] == ["racing"]
    assert chair.state.queue == [expert.membership_id]


async def test_concurrent_sends_get_consecutive_seqs(peers: Peers, world: World, sessions: Any) -> None:
    sid = world.sessions["open"]
    keys = ["secretariat", "expert", "expert2", "delegate", "stakeholder"]
    everyone = [await peers.joined(k, sid) for k in keys]
    await converge(everyone)
    start = everyone[0].state.seq
    rounds = 6

    async def talk(n: int) -> list[dict[str, Any]]:
        peer = everyone[n]
        return [await peer.send("chat.send", text=f"{peer.key} {i}", idem=f"{n}-{i}") for i in range(rounds)]

    acks = [a for batch in await asyncio.gather(*(talk(n) for n in range(len(everyone)))) for a in batch]
    assert all(a.get("ok") and not a.get("duplicate") for a in acks), acks
    seqs = sorted(a["seq"] for a in acks)
    assert seqs == list(range(start + 1, start + 1 + rounds * len(everyone)))
    # Floor requests racing each other too: positions 1..n, each once.
    positions = await asyncio.gather(*(p.send("floor.request") for p in everyone))
    assert sorted(a["position"] for a in positions) == list(range(1, len(everyone) + 1)), positions

    rows = await stored(sessions, sid)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    await converge(everyone, fresh=await peers.connect("interpreter"))
    by_seq = sorted(zip(positions, everyone, strict=True), key=lambda pair: pair[0]["seq"])
    assert everyone[0].state.queue == [peer.membership_id for _, peer in by_seq]
    # Each person's messages stay in the order they sent them.
    for peer in everyone:
        mine = [c["text"] for c in everyone[0].state.chat if c["membership_id"] == peer.membership_id]
        assert mine == [f"{peer.key} {i}" for i in range(rounds)]
        assert peer.live_duplicates() == []
