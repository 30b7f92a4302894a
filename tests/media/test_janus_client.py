"""Parley's Janus API client against a real Janus (Debian's package): sessions, the
VideoRoom plugin, rooms protected by Parley's secrets, errors, and an asynchronous
request answered through the long poll."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from server.media.janus import VIDEOROOM, JanusClient, JanusError, JanusUnavailable
from tests.fixtures.janus import Janus, running_janus


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Janus]:
    with running_janus(tmp_path_factory.mktemp("janus")) as server:
        yield server


@pytest.fixture
async def client(janus: Janus) -> AsyncIterator[JanusClient]:
    async with JanusClient(janus.url, janus.api_secret) as c:
        yield c


async def test_info_names_the_videoroom_plugin_and_requires_the_secret(janus: Janus, client: JanusClient) -> None:
    info = await client.info()
    assert info["janus"] == "server_info" and VIDEOROOM in info["plugins"]
    assert info["api_secret"] is True
    async with JanusClient(janus.url, "not-the-secret") as stranger:
        with pytest.raises(JanusError) as refused:
            await stranger.create_session()
    assert refused.value.code == 403


async def test_rooms_are_created_only_with_the_admin_key_and_destroyed_only_with_their_secret(
    janus: Janus, client: JanusClient
) -> None:
    session = await client.create_session()
    try:
        handle = await session.attach()
        with pytest.raises(JanusError):  # no admin key: the plugin refuses
            await session.message(handle, {"request": "create", "room": 4242, "is_private": True})
        created = await session.message(
            handle,
            {
                "request": "create", "admin_key": janus.admin_key, "room": 4242, "is_private": True,
                "secret": "room-secret", "pin": "room-pin", "audiocodec": "opus", "publishers": 8,
            },
        )
        assert created["videoroom"] == "created" and created["room"] == 4242
        assert (await session.message(handle, {"request": "exists", "room": 4242}))["exists"] is True
        listed = await session.message(handle, {"request": "list"})
        assert 4242 not in [r["room"] for r in listed["list"]]  # private rooms are not listed
        with pytest.raises(JanusError):
            await session.message(handle, {"request": "destroy", "room": 4242, "secret": "wrong"})
        destroyed = await session.message(handle, {"request": "destroy", "room": 4242, "secret": "room-secret"})
        assert destroyed["videoroom"] == "destroyed"
        assert (await session.message(handle, {"request": "exists", "room": 4242}))["exists"] is False
    finally:
        await session.destroy()


async def test_an_asynchronous_request_gets_its_event_through_the_long_poll(
    janus: Janus, client: JanusClient
) -> None:
    session = await client.create_session()
    try:
        handle = await session.attach()
        await session.message(
            handle, {"request": "create", "admin_key": janus.admin_key, "room": 777, "pin": "p", "secret": "s"}
        )
        with pytest.raises(JanusError):  # the wrong pin: refused in the event
            await session.message(handle, {"request": "join", "ptype": "publisher", "room": 777, "pin": "x"})
        joined = await session.message(
            handle, {"request": "join", "ptype": "publisher", "room": 777, "pin": "p", "display": "floor"}
        )
        assert joined["videoroom"] == "joined" and joined["room"] == 777 and joined["id"]
        await session.keepalive()
        await session.message(handle, {"request": "destroy", "room": 777, "secret": "s"})
    finally:
        await session.destroy()


async def test_an_unreachable_janus_is_unavailable() -> None:
    async with JanusClient("http://127.0.0.1:9/janus", "x") as nowhere:
        with pytest.raises(JanusUnavailable):
            await nowhere.create_session()
