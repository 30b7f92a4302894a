"""The lobby: who waits, the chair's decision, lasting admission, and who may enter at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from server.config import Settings
from tests.conftest import LiveServer
from tests.fixtures.world import World, build_world
from tests.realtime.live import Peer, Peers, converge, eventually


@pytest.fixture
async def gated(server: LiveServer, sessions: Any, settings: Settings) -> AsyncIterator[tuple[Peers, World]]:
    """Peers in a visit whose sessions all require admission."""
    async with sessions() as db:
        world = await build_world(db, settings, requires_admission=True)
    made = Peers(server, world)
    yield made, world
    await made.close()


async def wait_in_lobby(peer: Peer, session_id: str) -> dict[str, Any]:
    ack = await peer.join(session_id)
    assert ack["ok"] and ack["status"] == "waiting", ack
    return ack


async def test_admission_lets_a_delegate_in_for_good(gated: tuple[Peers, World]) -> None:
    peers, world = gated
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)  # the secretariat never waits
    delegate = await peers.connect("delegate")
    ack = await wait_in_lobby(delegate, sid)
    await chair.synced(ack["seq"])
    wait = chair.live[-1]
    assert wait["type"] == "lobby.wait" and wait["membership_id"] == delegate.membership_id
    assert wait["payload"]["person"]["role"] == "delegate"
    assert list(chair.state.lobby) == [delegate.membership_id]

    # Waiting is not being in the room: no live events, no chat, no floor, no history.
    assert delegate.live == []
    assert (await delegate.send("chat.send", text="hello?", idem="w1"))["error"]["code"] == "conflict"
    assert (await delegate.send("floor.request"))["error"]["code"] == "conflict"
    assert (await delegate.send("room.sync", since=0))["error"]["code"] == "waiting"
    # Asking again while waiting records nothing new.
    again = await wait_in_lobby(delegate, sid)
    assert again["seq"] == ack["seq"]

    admitted = await chair.send("lobby.admit", membership_id=delegate.membership_id)
    assert admitted["ok"], admitted
    await eventually(lambda: bool(delegate.admissions), "room.admission")
    assert delegate.admissions == [{"session_id": sid, "status": "admitted"}]
    assert (await chair.send("lobby.admit", membership_id=delegate.membership_id))["error"]["code"] == "not_found"
    joined = await delegate.join(sid)
    assert joined["status"] == "joined", joined
    await converge([chair, delegate])
    assert chair.state.lobby == {} and delegate.membership_id in chair.state.admitted
    assert delegate.membership_id in chair.state.present

    # Admission lasts: leaving and coming back (even on a new connection) does not wait.
    assert (await delegate.send("room.leave"))["ok"]
    assert (await delegate.join(sid, since=delegate.state.seq))["status"] == "joined"
    await delegate.client.disconnect()
    back = await peers.connect("delegate")
    assert (await back.join(sid))["status"] == "joined"
    assert (await back.send("chat.send", text="I am in", idem="in-1"))["ok"]
    # ... in this session only: another session asks again.
    assert (await back.join(world.sessions["closed"]))["status"] == "waiting"
    await converge([chair, back])


async def test_declined_request_can_be_made_again(gated: tuple[Peers, World]) -> None:
    peers, world = gated
    sid = world.sessions["closed"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.connect("expert")
    first = await wait_in_lobby(expert, sid)
    await chair.synced(first["seq"])
    declined = await chair.send("lobby.decline", membership_id=expert.membership_id)
    assert declined["ok"], declined
    await eventually(lambda: bool(expert.admissions), "room.admission")
    assert expert.admissions == [{"session_id": sid, "status": "declined"}]
    await chair.synced(declined["seq"])
    assert chair.state.lobby == {} and expert.membership_id not in chair.state.admitted
    assert (await expert.send("room.sync", since=0))["error"]["code"] == "waiting"

    second = await wait_in_lobby(expert, sid)
    assert second["seq"] == declined["seq"] + 1
    await chair.synced(second["seq"])
    assert chair.live[-1]["type"] == "lobby.wait"
    # Only the chair decides: a waiting or joined non-chair cannot admit.
    other = await peers.connect("expert2")
    await wait_in_lobby(other, sid)
    assert (await other.send("lobby.admit", membership_id=expert.membership_id))["error"]["code"] == "forbidden"
    assert (await chair.send("lobby.admit", membership_id=expert.membership_id))["ok"]
    await eventually(lambda: len(expert.admissions) == 2, "second decision")
    assert expert.admissions[-1]["status"] == "admitted"
    # The other waiting person heard nothing about someone else's admission.
    assert other.admissions == [] and other.live == []


async def test_who_may_enter_which_session(peers: Peers, world: World) -> None:
    stakeholder = await peers.connect("stakeholder")
    observer = await peers.connect("observer")
    closed = world.sessions["closed"]
    # Not even told a closed session exists.
    for peer in (stakeholder, observer):
        ack = await peer.call("room.join", {"session_id": closed})
        assert ack["error"]["code"] == "not_found", ack
        ack = await peer.call("room.sync", {"session_id": closed, "since": 0})
        assert ack["error"]["code"] == "not_found", ack
    assert (await observer.call("room.join", {"session_id": world.sessions["stakeholder"]}))["error"]["code"] == "not_found"
    # The invited stakeholder enters the stakeholder session, and may speak there.
    assert (await stakeholder.join(world.sessions["stakeholder"]))["status"] == "joined"
    assert (await stakeholder.send("floor.request"))["ok"]

    # An observer listens: enters the open session, but neither chats nor speaks.
    chair = await peers.joined("secretariat", world.sessions["open"])
    assert (await observer.join(world.sessions["open"]))["status"] == "joined"
    await converge([chair, observer])
    before = chair.state.seq
    assert (await observer.send("chat.send", text="may I?", idem="o1"))["error"]["code"] == "forbidden"
    assert (await observer.send("floor.request"))["error"]["code"] == "forbidden"
    sync = await chair.send("room.sync", since=before)
    assert sync["events"] == [] and sync["seq"] == before
    assert chair.state.chat == [] and chair.state.queue == []
