"""Malformed, oversized and unauthorised input is refused with a stable error code,
stores nothing, and does not disturb anyone else's connection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio
from sqlalchemy import func, select

from server.room.models import RoomEvent
from server.room.schemas import MAX_CHAT_CHARS
from tests.conftest import LiveServer, http_client, login
from tests.fixtures.world import World
from tests.realtime.live import TIMEOUT, Peer, Peers, converge, eventually


async def stored_count(sessions: Any) -> int:
    async with sessions() as db:
        return int((await db.execute(select(func.count()).select_from(RoomEvent))).scalar_one())


def bad_payloads(world: World, sid: str, me: str) -> list[tuple[str, Any, str]]:
    """(event, payload, expected error code)."""
    item = world.items[sid][0]
    other_item = world.items[world.sessions["closed"]][0]
    long_id = "x" * 65
    return [
        # Not an object at all.
        ("chat.send", None, "invalid"),
        ("chat.send", "hello", "invalid"),
        ("chat.send", 42, "invalid"),
        ("chat.send", [sid, "hello"], "invalid"),
        ("room.join", True, "invalid"),
        # Wrong types (strict: no coercion of "3" to 3 or 3 to "3").
        ("chat.send", {"session_id": 123, "text": "hi", "idem": "a"}, "invalid"),
        ("chat.send", {"session_id": sid, "text": 5, "idem": "a"}, "invalid"),
        ("chat.send", {"session_id": sid, "text": ["hi"], "idem": "a"}, "invalid"),
        ("chat.send", {"session_id": sid, "text": "hi", "idem": 7}, "invalid"),
        ("chat.send", {"session_id": sid, "text": {"$ne": ""}, "idem": "a"}, "invalid"),
        ("room.join", {"session_id": sid, "since": "3"}, "invalid"),
        ("room.join", {"session_id": sid, "since": -1}, "invalid"),
        ("room.join", {"session_id": sid, "since": 1.5}, "invalid"),
        ("room.sync", {"session_id": sid, "since": None}, "invalid"),
        ("floor.give", {"session_id": sid, "membership_id": None}, "invalid"),
        ("item.start", {"session_id": sid, "item_id": 1}, "invalid"),
        ("floor.request", {"session_id": sid, "idem": ""}, "invalid"),
        # Missing fields.
        ("chat.send", {"session_id": sid, "idem": "a"}, "invalid"),
        ("chat.send", {"session_id": sid, "text": "hi"}, "invalid"),
        ("chat.send", {"text": "hi", "idem": "a"}, "invalid"),
        ("room.sync", {"session_id": sid}, "invalid"),
        ("floor.give", {"session_id": sid}, "invalid"),
        ("item.start", {"session_id": sid}, "invalid"),
        ("lobby.admit", {"session_id": sid}, "invalid"),
        ("room.join", {}, "invalid"),
        # Extra fields.
        ("chat.send", {"session_id": sid, "text": "hi", "idem": "a", "seq": 1}, "invalid"),
        ("floor.request", {"session_id": sid, "membership_id": me}, "invalid"),
        ("room.join", {"session_id": sid, "as": "secretariat"}, "invalid"),
        # Oversized or empty text and ids.
        ("chat.send", {"session_id": sid, "text": "x" * (MAX_CHAT_CHARS + 1), "idem": "a"}, "invalid"),
        ("chat.send", {"session_id": sid, "text": "", "idem": "a"}, "invalid"),
        ("chat.send", {"session_id": sid, "text": " \n\t ", "idem": "a"}, "invalid"),
        ("chat.send", {"session_id": sid, "text": "hi", "idem": long_id}, "invalid"),
        ("chat.send", {"session_id": long_id, "text": "hi", "idem": "a"}, "invalid"),
        ("floor.give", {"session_id": sid, "membership_id": long_id}, "invalid"),
        # Unknown ids.
        ("room.join", {"session_id": "no-such-session"}, "not_found"),
        ("chat.send", {"session_id": "no-such-session", "text": "hi", "idem": "a"}, "not_found"),
        ("floor.give", {"session_id": sid, "membership_id": "no-such-member"}, "not_found"),
        ("lobby.admit", {"session_id": sid, "membership_id": "no-such-member"}, "not_found"),
        ("item.start", {"session_id": sid, "item_id": "no-such-item"}, "not_found"),
        ("item.start", {"session_id": sid, "item_id": other_item}, "not_found"),
        ("item.start", {"session_id": sid, "item_id": item, "idem": long_id}, "invalid"),
    ]


async def test_bad_payloads_are_refused_and_store_nothing(peers: Peers, world: World, sessions: Any) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    bystander = await peers.joined("delegate", sid)
    await converge([chair, bystander])
    count = await stored_count(sessions)
    for name, payload, code in bad_payloads(world, sid, chair.membership_id):
        ack = await chair.call(name, payload)
        assert set(ack) == {"error"}, (name, payload, ack)
        assert ack["error"]["code"] == code, (name, payload, ack)
        assert isinstance(ack["error"]["message"], str) and ack["error"]["message"]
    assert await stored_count(sessions) == count
    assert bystander.live[-1]["seq"] == chair.state.seq  # nothing was broadcast

    # Both the offender and everyone else are still served.
    longest = await chair.send("chat.send", text="y" * MAX_CHAT_CHARS, idem="max")
    assert longest["ok"], longest
    said = await bystander.send("chat.send", text="still fine", idem="b1")
    assert said["ok"] and said["seq"] == longest["seq"] + 1
    await converge([chair, bystander])
    assert [len(c["text"]) for c in bystander.state.chat] == [MAX_CHAT_CHARS, len("still fine")]


async def test_odd_argument_shapes_still_get_an_answer(peers: Peers, world: World, sessions: Any) -> None:
    """Several arguments, none, or an event nobody handles: an error ack, not silence."""
    sid = world.sessions["open"]
    peer = await peers.joined("expert", sid)
    count = await stored_count(sessions)
    payload = {"session_id": sid, "text": "two args", "idem": "t"}
    # python-socketio sends a tuple as separate arguments, as socket.emit(a, b, cb) does.
    ack = await peer.call("chat.send", (payload, payload))
    assert ack["error"]["code"] == "invalid", ack
    ack = await asyncio.wait_for(peer.client.call("chat.send", timeout=TIMEOUT), TIMEOUT + 1)
    assert ack["error"]["code"] == "invalid", ack
    ack = await peer.call("chat.shout", payload)
    assert ack["error"]["code"] == "invalid", ack
    assert await stored_count(sessions) == count
    assert (await peer.send("chat.send", text="after", idem="after"))["ok"]


async def test_bad_input_from_one_client_while_others_talk(peers: Peers, world: World) -> None:
    sid = world.sessions["open"]
    talkers = [await peers.joined(k, sid) for k in ("secretariat", "expert", "expert2")]
    noisy = await peers.joined("delegate", sid)
    junk = [(n, p) for n, p, _ in bad_payloads(world, sid, noisy.membership_id)]

    async def spam() -> None:
        for name, payload in junk * 2:
            assert "error" in await noisy.call(name, payload)

    async def talk(peer: Peer) -> None:
        for i in range(5):
            assert (await peer.send("chat.send", text=f"{peer.key} {i}", idem=f"{peer.key}-{i}"))["ok"]

    await asyncio.gather(spam(), *(talk(p) for p in talkers))
    await converge([*talkers, noisy])
    assert len(noisy.state.chat) == 15


async def refused(server: LiveServer, headers: dict[str, str]) -> None:
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, headers=headers, transports=["websocket"], wait_timeout=TIMEOUT)
    assert not client.connected
    await client.disconnect()


async def test_connections_need_a_login_and_an_allowed_origin(server: LiveServer, world: World) -> None:
    cookie = await login(server, world.members["expert"].invite_token)
    await refused(server, {"Origin": server.origin})
    await refused(server, {"Origin": server.origin, "Cookie": "parley_session=forged"})
    await refused(server, {"Origin": server.origin, "Cookie": "other=1"})
    await refused(server, {"Cookie": f"parley_session={cookie}"})
    await refused(server, {"Origin": "http://evil.example", "Cookie": f"parley_session={cookie}"})
    await refused(server, {"Origin": server.origin + ".evil.example", "Cookie": f"parley_session={cookie}"})
    # The same login from the allowed origin is accepted.
    ok = socketio.AsyncClient(reconnection=False)
    await ok.connect(
        server.url, headers={"Origin": server.origin, "Cookie": f"parley_session={cookie}"},
        transports=["websocket"], wait_timeout=TIMEOUT,
    )
    assert ok.connected
    await ok.disconnect()


async def revoke_current_login(server: LiveServer, cookie: str) -> None:
    async with http_client(server, cookie) as http:
        async with http.get("/api/me/logins") as r:
            assert r.status == 200, await r.text()
            current = [s for s in (await r.json())["logins"] if s["current"]]
        assert len(current) == 1
        async with http.post(f"/api/me/logins/{current[0]['id']}/revoke") as r:
            assert r.status == 200, await r.text()


async def test_a_revoked_login_is_no_longer_heard(peers: Peers, world: World, sessions: Any) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    assert (await expert.send("chat.send", text="before", idem="r1"))["ok"]
    await converge([chair, expert])
    count = await stored_count(sessions)

    await revoke_current_login(peers.server, expert.cookie)
    # The server ends the revoked login's open connection at once...
    await eventually(lambda: not expert.client.connected, "revoked socket disconnected", timeout=5)
    # ...and records that it left; nothing else was stored.
    assert await stored_count(sessions) == count + 1
    await refused(peers.server, {"Origin": peers.server.origin, "Cookie": f"parley_session={expert.cookie}"})
    # Other people's logins are untouched.
    assert (await chair.send("chat.send", text="carry on", idem="c1"))["ok"]


async def test_a_revoked_login_stops_hearing_the_room(peers: Peers, world: World) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    await converge([chair, expert])
    await revoke_current_login(peers.server, expert.cookie)
    said = await chair.send("chat.send", text="confidential", idem="secret")
    assert said["ok"], said
    await chair.synced(said["seq"])
    await eventually(
        lambda: not expert.client.connected or expert.state.seq >= said["seq"], "delivery or disconnect", timeout=2
    )
    assert said["seq"] not in [e["seq"] for e in expert.live]
