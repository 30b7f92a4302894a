"""Closing a session to stakeholders removes one already in the room at once."""

from __future__ import annotations

import asyncio

from tests.conftest import http_client
from tests.fixtures.world import World
from tests.realtime.live import Peers, eventually


async def test_a_stakeholder_in_the_room_stops_hearing_it_when_it_closes(peers: Peers, world: World) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    stakeholder = await peers.joined("stakeholder", sid)
    resets: list[dict] = []
    stakeholder.client.on("room.reset", lambda msg: resets.append(msg))

    async with http_client(peers.server, chair.cookie) as http:
        async with http.patch(f"/api/sessions/{sid}", json={"access": "closed"}) as r:
            assert r.status == 200, await r.text()
    await eventually(lambda: resets == [{"session_id": sid}], "room.reset reached the stakeholder")

    said = await chair.send("chat.send", text="closed-door remark", idem="c1")
    assert said["ok"], said
    await asyncio.sleep(0.3)
    assert said["seq"] not in [e["seq"] for e in stakeholder.live]
    # Joining again asks the policy anew: a closed session does not exist for them.
    again = await stakeholder.client.call("room.join", {"session_id": sid}, timeout=10)
    assert again["error"]["code"] == "not_found", again
    # The chair, re-joining after the reset, keeps the room.
    back = await chair.client.call("room.join", {"session_id": sid, "since": said["seq"]}, timeout=10)
    assert back["ok"] and back["status"] == "joined", back
