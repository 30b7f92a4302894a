"""A client that drops out catches up exactly: the events it missed, in order, once."""

from __future__ import annotations

import copy
from typing import Any

from server.room.log import SYNC_LIMIT, RoomLog
from server.room.state import EventType, RoomState
from server.web.keys import LEASE
from tests.fixtures.world import World
from tests.realtime.live import Peer, Peers, canonical, converge, eventually


def essence(event: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies an event, whether it came live or from a catch-up."""
    return (event["seq"], event["type"], event["membership_id"], canonical(event["payload"]), event["at"])


async def busy_while_away(chair: Peer, expert: Peer, expert2: Peer, item: str) -> None:
    """Chat and speakers'-list activity the absent client misses."""
    assert (await expert.send("chat.send", text="while you were out", idem="c1"))["ok"]
    assert (await expert.send("floor.request"))["ok"]
    assert (await expert2.send("floor.request"))["ok"]
    assert (await chair.send("floor.give", membership_id=expert.membership_id))["ok"]
    assert (await chair.send("item.start", item_id=item))["ok"]
    assert (await expert2.send("chat.send", text="second", idem="c2"))["ok"]


async def test_rejoin_since_last_seq_replays_exactly_the_missed_events(peers: Peers, world: World) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    expert2 = await peers.joined("expert2", sid)
    away = await peers.joined("delegate", sid)
    assert (await away.send("chat.send", text="before", idem="b1"))["ok"]
    await converge([chair, expert, expert2, away])
    last = away.state.seq
    kept = copy.deepcopy(away.state)

    await away.client.disconnect()
    # The server records the departure; the others see the delegate go.
    await eventually(lambda: away.membership_id not in chair.state.present, "leave seen")
    await busy_while_away(chair, expert, expert2, world.items[sid][0])
    await converge([chair, expert, expert2])

    back = await peers.connect("delegate")  # a new connection with the same login cookie
    back.state = kept
    ack = await back.join(sid, since=last)
    assert ack["ok"] and ack["status"] == "joined", ack
    replay = ack["events"]
    assert [e["seq"] for e in replay] == list(range(last + 1, ack["seq"] + 1))
    assert replay[0]["type"] == "leave" and replay[0]["membership_id"] == away.membership_id
    # A connection is named by its server process and socket (presence expiry needs the owner).
    conn = f"{peers.server.app[LEASE].process_id}:{back.client.get_sid()}"
    assert replay[-1]["type"] == "join" and replay[-1]["payload"]["conn"] == conn
    # Exactly what a client that stayed saw live.
    await chair.synced(ack["seq"])
    seen = [essence(e) for e in chair.live if e["seq"] > last]
    assert [essence(e) for e in replay] == seen

    await converge([chair, expert, expert2, back])
    assert back.membership_id in back.state.present
    assert [c["text"] for c in back.state.chat] == ["before", "while you were out", "second"]
    assert back.state.queue == [expert2.membership_id]
    # The old connection received nothing while away, the new one nothing twice.
    assert away.live[-1]["seq"] <= last
    assert back.live_duplicates() == []
    # The whole log, replayed from the start, folds to the same state.
    fresh = await peers.connect("interpreter")
    whole = await fresh.call("room.sync", {"session_id": sid, "since": 0})
    assert [e["seq"] for e in whole["events"]] == list(range(1, whole["seq"] + 1))
    folded = RoomState()
    for event in whole["events"]:
        folded.apply(event)
    assert canonical(folded.snapshot()) == back.snapshot()


async def test_sync_then_join_misses_nothing_in_between(peers: Peers, world: World) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    expert2 = await peers.joined("expert2", sid)
    away = await peers.joined("delegate", sid)
    await converge([chair, expert, expert2, away])
    last = away.state.seq
    kept = copy.deepcopy(away.state)
    await away.client.disconnect()
    await eventually(lambda: away.membership_id not in chair.state.present, "leave seen")
    await busy_while_away(chair, expert, expert2, world.items[sid][0])

    back = await peers.connect("delegate")
    back.session_id, back.state = sid, kept
    # room.sync works before joining (e.g. to render quickly) and is read-only.
    sync = await back.send("room.sync", since=last)
    assert sync["ok"], sync
    assert [e["seq"] for e in sync["events"]] == list(range(last + 1, sync["seq"] + 1))
    for event in sync["events"]:
        back.absorb(event)
    again = await back.send("room.sync", since=last)
    assert again["seq"] == sync["seq"] and again["events"] == sync["events"]
    # Something happens between the sync and the join: the join's replay covers it.
    said = await expert.send("chat.send", text="in between", idem="c3")
    assert said["ok"], said
    ack = await back.join(sid, since=sync["seq"])
    assert [e["type"] for e in ack["events"]] == ["chat", "join"]
    assert ack["events"][0]["seq"] == said["seq"] == sync["seq"] + 1
    await converge([chair, expert, expert2, back], fresh=await peers.connect("interpreter"))
    assert back.live_duplicates() == []
    # Nothing new since: an empty replay.
    tail = await back.send("room.sync", since=back.state.seq)
    assert tail["events"] == [] and tail["seq"] == back.state.seq


async def test_too_far_behind_or_ahead_gets_the_whole_state(
    peers: Peers, world: World, sessions: Any
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    away = await peers.joined("delegate", sid)
    last = away.state.seq
    await away.client.disconnect()
    await eventually(lambda: away.membership_id not in chair.state.present, "leave seen")
    # More than the replay limit, written straight to the log (as a busy day would).
    log = RoomLog()
    async with sessions() as db:
        async with log.locked(db, sid) as state:
            for n in range(SYNC_LIMIT + 5):
                log.add(db, state, sid, EventType.CHAT, chair.membership_id, {"text": f"bulk {n}"})
            await db.commit()

    back = await peers.connect("delegate")
    back.session_id = sid
    sync = await back.send("room.sync", since=last)
    assert "events" not in sync and sync["state"]["seq"] == sync["seq"] > last + SYNC_LIMIT
    assert len(sync["state"]["chat"]) == SYNC_LIMIT + 5
    ack = await back.call("room.join", {"session_id": sid, "since": last})
    assert ack["status"] == "joined" and "events" not in ack, sorted(ack)
    assert ack["state"]["seq"] == ack["seq"] == sync["seq"] + 1
    # A client claiming a future seq (a reset database) also gets the whole state.
    ahead = await back.send("room.sync", since=ack["seq"] + 50)
    assert "events" not in ahead and ahead["state"]["seq"] == ack["seq"]
    # The chair missed the bulk writes live too (it would sync on the gap): same state.
    current = await chair.send("room.sync", since=0)
    assert canonical(current["state"]) == canonical(ack["state"])


async def test_second_connection_of_the_same_person_keeps_presence(peers: Peers, world: World) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    tab1 = await peers.joined("expert", sid)
    tab2 = await peers.joined("expert", sid)
    await converge([chair, tab1, tab2])
    process = peers.server.app[LEASE].process_id
    assert chair.state.connections[tab1.membership_id] == {
        f"{process}:{tab1.client.get_sid()}", f"{process}:{tab2.client.get_sid()}"
    }
    await tab1.client.disconnect()
    await eventually(lambda: len(chair.state.connections[tab1.membership_id]) == 1, "one tab left")
    assert tab1.membership_id in chair.state.present
    assert (await tab2.send("chat.send", text="still here", idem="t2"))["ok"]
    await tab2.client.disconnect()
    await eventually(lambda: tab1.membership_id not in chair.state.present, "both tabs gone")


async def test_dropped_transport_is_recorded_as_a_leave(peers: Peers, world: World) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    dropped = await peers.joined("expert", sid)
    await converge([chair, dropped])
    # Close the WebSocket under Socket.IO, as a lost network or a killed tab would.
    await dropped.client.eio.ws.close()
    await eventually(lambda: dropped.membership_id not in chair.state.present, "leave after drop")
    assert chair.live[-1]["type"] == "leave"
    back = await peers.connect("expert")
    ack = await back.join(sid, since=0)
    assert ack["ok"] and ack["status"] == "joined"
    await converge([chair, back])
