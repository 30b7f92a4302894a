"""Nothing acknowledged is lost across a server restart, and presence is cleaned up."""

from __future__ import annotations

import asyncio

from server.config import Settings
from tests.conftest import login, socket_client, start_server
from tests.fixtures.world import World


async def test_state_survives_restart(settings: Settings, world: World) -> None:
    session_id = world.sessions["open"]
    live, runner = await start_server(settings)
    expert = await login(live, world.members["expert"].invite_token)
    chair = await login(live, world.members["secretariat"].invite_token)
    a = await socket_client(live, expert)
    assert (await a.call("room.join", {"session_id": session_id}))["ok"]
    assert (await a.call("chat.send", {"session_id": session_id, "text": "before restart", "idem": "r1"}))["ok"]
    assert (await a.call("floor.request", {"session_id": session_id, "idem": "r2"}))["ok"]
    item = world.items[session_id][0]
    c = await socket_client(live, chair)
    assert (await c.call("room.join", {"session_id": session_id}))["ok"]
    assert (await c.call("item.start", {"session_id": session_id, "item_id": item}))["ok"]
    # Stop the server abruptly for the clients: they never say goodbye.
    await runner.cleanup()
    await asyncio.gather(a.disconnect(), c.disconnect())

    live2, runner2 = await start_server(settings)
    try:
        b = await socket_client(live2, chair)
        ack = await b.call("room.join", {"session_id": session_id})
        assert ack["ok"], ack
        state = ack["state"]
        assert [m["text"] for m in state["chat"]] == ["before restart"]
        assert state["queue"] == [world.members["expert"].membership_id]
        assert state["current_item"]["item_id"] == item
        # Only the connection made after the restart is present.
        assert state["present"] == [world.members["secretariat"].membership_id]
        await b.disconnect()
    finally:
        await runner2.cleanup()
