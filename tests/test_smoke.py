"""The server starts, answers /healthz, and an invitation opens a room."""

from __future__ import annotations

import asyncio

from tests.conftest import LiveServer, http_client, login, socket_client
from tests.fixtures.world import World


async def test_healthz(server: LiveServer) -> None:
    async with http_client(server, None) as http, http.get("/healthz") as r:
        assert r.status == 200
        assert (await r.json())["status"] == "ok"


async def test_join_and_chat(server: LiveServer, world: World) -> None:
    cookie = await login(server, world.members["expert"].invite_token)
    client = await socket_client(server, cookie)
    got: list[dict] = []
    client.on("room.event", lambda e: got.append(e))
    ack = await client.call("room.join", {"session_id": world.sessions["open"]})
    assert ack["ok"] and ack["status"] == "joined", ack
    ack = await client.call("chat.send", {"session_id": world.sessions["open"], "text": "hello", "idem": "k1"})
    assert ack["ok"], ack
    await asyncio.sleep(0.2)
    assert [e["type"] for e in got][-1] == "chat"
    await client.disconnect()
