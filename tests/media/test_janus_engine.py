"""The Janus engine's rooms can be used only with what Parley keeps: a request that
reaches Janus's API without the room's PIN or secret (a forged join, a forged mute or
destroy) is refused, and rooms go away with ``close_room``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from server.media.engine import MediaError
from server.media.janus import JanusClient, JanusError
from server.media.janus_engine import JanusEngine
from tests.fixtures.janus import Janus, running_janus


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Janus]:
    with running_janus(tmp_path_factory.mktemp("janus-engine")) as server:
        yield server


async def test_forged_requests_without_the_rooms_pin_or_secret_are_refused(janus: Janus) -> None:
    async with JanusClient(janus.url, janus.api_secret) as client:
        engine = JanusEngine(client, admin_key=janus.admin_key)
        await engine.open_room("session-x")
        await engine.open_room("session-x")  # once only
        room = engine._rooms["session-x"]
        stranger = await client.create_session()
        try:
            handle = await stranger.attach()
            with pytest.raises(JanusError):
                await stranger.message(handle, {"request": "join", "ptype": "publisher", "room": room.number})
            with pytest.raises(JanusError):
                await stranger.message(
                    handle, {"request": "join", "ptype": "publisher", "room": room.number, "pin": "guess"}
                )
            with pytest.raises(JanusError):
                await stranger.message(handle, {"request": "moderate", "room": room.number, "id": 1, "mid": "0",
                                                "mute": True, "secret": "guess"})
            with pytest.raises(JanusError):
                await stranger.message(handle, {"request": "destroy", "room": room.number, "secret": "guess"})
            # Without Parley's admin key nobody creates rooms at all.
            with pytest.raises(JanusError):
                await stranger.message(handle, {"request": "create", "room": 99})
            assert (await stranger.message(handle, {"request": "exists", "room": room.number}))["exists"] is True

            # Garbage SDP: a clear refusal, nothing kept, the room still serves.
            with pytest.raises(MediaError):
                await engine.publish("session-x", "garbage", "floor", "this is not SDP")
            assert "garbage" not in room.publishers
            assert (await stranger.message(handle, {"request": "exists", "room": room.number}))["exists"] is True

            await engine.close_room("session-x")
            assert (await stranger.message(handle, {"request": "exists", "room": room.number}))["exists"] is False
            with pytest.raises(MediaError):
                await engine.publish("session-x", "someone", "floor", "v=0")
        finally:
            await stranger.destroy()
            await engine.aclose()
