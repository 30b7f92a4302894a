"""The live room between several real Socket.IO clients: speakers' list, agenda item,
chair-only commands, and every client ending with the same state."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from server.room.models import RoomEvent
from server.web.keys import ROOMS
from tests.conftest import LiveServer
from tests.fixtures.world import World
from tests.realtime.live import Peer, Peers, converge


async def stored_count(sessions: Any, session_id: str) -> int:
    async with sessions() as db:
        return int(
            (await db.execute(select(func.count()).where(RoomEvent.session_id == session_id))).scalar_one()
        )


async def test_speakers_list_is_ordered_and_everyone_agrees(peers: Peers, world: World) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    first = await peers.joined("expert", sid)
    second = await peers.joined("expert2", sid)
    delegate = await peers.joined("delegate", sid)
    everyone = [chair, first, second, delegate]
    ack = await chair.call("room.join", {"session_id": sid})
    assert ack["is_chair"] is True and ack["me"] == chair.membership_id
    await converge(everyone)

    ack = await first.send("floor.request")
    assert ack["ok"] and ack["position"] == 1, ack
    ack = await second.send("floor.request")
    assert ack["ok"] and ack["position"] == 2, ack
    await converge(everyone)
    for peer in everyone:
        assert peer.state.queue == [first.membership_id, second.membership_id]

    # Asking twice is refused and changes nothing.
    before = chair.state.seq
    ack = await first.send("floor.request")
    assert ack["error"]["code"] == "conflict", ack

    ack = await chair.send("floor.give", membership_id=first.membership_id)
    assert ack["ok"] and ack["seq"] == before + 1, ack
    await converge(everyone)
    for peer in everyone:
        assert peer.state.floor is not None and peer.state.floor["membership_id"] == first.membership_id
        assert peer.state.queue == [second.membership_id]

    # Giving the floor to the next speaker ends the current one first (two events).
    ack = await chair.send("floor.give", membership_id=second.membership_id)
    assert ack["ok"] and ack["seq"] == before + 3, ack
    await converge(everyone)
    assert [e["type"] for e in delegate.live[-2:]] == ["floor.end", "floor.give"]
    assert delegate.live[-2]["payload"]["target"] == first.membership_id
    assert delegate.state.floor and delegate.state.floor["membership_id"] == second.membership_id
    assert delegate.state.queue == []

    ack = await chair.send("floor.end")
    assert ack["ok"], ack
    ack = await chair.send("floor.end")
    assert ack["error"]["code"] == "conflict", ack
    await converge(everyone)
    assert all(p.state.floor is None for p in everyone)

    # Withdrawing leaves the list; the others keep their order.
    assert (await first.send("floor.request"))["ok"]
    assert (await delegate.send("floor.request"))["ok"]
    assert (await second.send("floor.request"))["ok"]
    assert (await delegate.send("floor.withdraw"))["ok"]
    await converge(everyone)
    assert chair.state.queue == [first.membership_id, second.membership_id]

    fresh = await peers.connect("interpreter")
    await converge(everyone, fresh=fresh)
    for peer in everyone:
        assert peer.live_duplicates() == []


async def test_agenda_items_move_only_by_the_chair(peers: Peers, world: World) -> None:
    sid = world.sessions["open"]
    one, two = world.items[sid]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    delegate = await peers.joined("delegate", sid)
    everyone = [chair, expert, delegate]

    assert (await chair.send("item.start", item_id=one))["ok"]
    await converge(everyone)
    assert delegate.state.current_item and delegate.state.current_item["item_id"] == one

    ack = await chair.send("item.start", item_id=one)
    assert ack["error"]["code"] == "conflict", ack

    # Starting the next item closes the current one.
    ack = await chair.send("item.start", item_id=two)
    assert ack["ok"], ack
    await converge(everyone)
    assert [e["type"] for e in expert.live[-2:]] == ["item.end", "item.start"]
    assert expert.state.items[one]["ended"] is not None
    assert expert.state.current_item and expert.state.current_item["item_id"] == two

    assert (await chair.send("item.end"))["ok"]
    assert (await chair.send("item.end"))["error"]["code"] == "conflict"
    await converge(everyone)
    assert expert.state.current_item is None
    assert expert.state.items[two]["ended"] is not None

    # An item of another session is unknown here.
    other = world.items[world.sessions["closed"]][0]
    assert (await chair.send("item.start", item_id=other))["error"]["code"] == "not_found"
    await converge(everyone, fresh=await peers.connect("expert2"))


async def test_non_chairs_are_refused_and_nothing_changes(peers: Peers, world: World, sessions: Any) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    delegate = await peers.joined("delegate", sid)
    interpreter = await peers.joined("interpreter", sid)
    assert (await delegate.send("floor.request"))["ok"]
    await converge([chair, expert, delegate, interpreter])
    seq = chair.state.seq
    count = await stored_count(sessions, sid)
    item = world.items[sid][0]

    attempts: list[tuple[Peer, str, dict[str, Any]]] = []
    for peer in (expert, delegate, interpreter):
        attempts += [
            (peer, "floor.give", {"membership_id": delegate.membership_id}),
            (peer, "floor.end", {}),
            (peer, "item.start", {"item_id": item}),
            (peer, "item.end", {}),
            (peer, "lobby.admit", {"membership_id": delegate.membership_id}),
            (peer, "lobby.decline", {"membership_id": delegate.membership_id}),
        ]
    # Interpreters voice others: they do not take the floor.
    attempts.append((interpreter, "floor.request", {}))
    for peer, name, fields in attempts:
        ack = await peer.send(name, **fields)
        assert ack.get("error", {}).get("code") == "forbidden", (peer.key, name, ack)
        assert "ok" not in ack

    sync = await chair.send("room.sync", since=seq)
    assert sync["ok"] and sync["seq"] == seq and sync["events"] == [], sync
    assert await stored_count(sessions, sid) == count
    assert all(p.state.seq == seq and p.live[-1]["seq"] == seq for p in (chair, expert, delegate, interpreter))
    # The chair's own command still works afterwards.
    assert (await chair.send("floor.give", membership_id=delegate.membership_id))["ok"]
    await converge([chair, expert, delegate, interpreter])
    assert interpreter.state.floor and interpreter.state.floor["membership_id"] == delegate.membership_id


async def test_chat_reaches_everyone_in_order(peers: Peers, world: World) -> None:
    sid = world.sessions["open"]
    everyone = [await peers.joined(k, sid) for k in ("secretariat", "expert", "delegate", "stakeholder")]
    for n, peer in enumerate(everyone * 2):
        ack = await peer.send("chat.send", text=f"  message {n}  ", idem=f"m{n}")
        assert ack["ok"], ack
    await converge(everyone)
    texts = [c["text"] for c in everyone[0].state.chat]
    assert texts == [f"message {n}" for n in range(8)]
    assert [c["membership_id"] for c in everyone[0].state.chat] == [p.membership_id for p in everyone * 2]


async def test_leaving_drops_presence_but_keeps_the_request(peers: Peers, world: World) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    assert (await expert.send("floor.request"))["ok"]
    await converge([chair, expert])
    assert expert.membership_id in chair.state.present

    ack = await expert.send("room.leave")
    assert ack["ok"], ack
    await chair.synced(expert.state.seq + 1)
    assert expert.membership_id not in chair.state.present
    # A request for the floor survives a reload or a dropped connection.
    assert chair.state.queue == [expert.membership_id]
    # Gone from the room: no more live events, and no floor request without joining again.
    heard = len(expert.live)
    ack = await chair.send("chat.send", text="after", idem="a1")
    assert ack["ok"], ack
    assert (await expert.send("floor.request"))["error"]["code"] == "conflict"
    await chair.synced(ack["seq"])
    assert len(expert.live) == heard


async def test_events_committed_while_a_join_completes_are_not_missed(
    peers: Peers, world: World, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The joiner must be subscribed before its join is committed: anything committed
    after its snapshot reaches it live, however slow the rest of the join is."""
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    rooms = server.app[ROOMS]
    original = rooms.join
    committed, release = asyncio.Event(), asyncio.Event()

    async def slow_join(*args: Any, **kwargs: Any) -> Any:
        out = await original(*args, **kwargs)
        committed.set()
        await release.wait()  # e.g. a slow database round trip before the ack
        return out

    monkeypatch.setattr(rooms, "join", slow_join)
    joiner = await peers.connect("expert")
    joining = asyncio.create_task(joiner.join(sid))
    await asyncio.wait_for(committed.wait(), 10)
    said = await chair.send("chat.send", text="during your join", idem="during")
    assert said["ok"], said
    release.set()
    ack = await joining
    assert ack["status"] == "joined" and ack["seq"] < said["seq"], ack
    await converge([chair, joiner])
    assert [c["text"] for c in joiner.state.chat] == ["during your join"]
