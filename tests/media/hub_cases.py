"""The room's audio signalling against a real Janus: who may publish, what each listener
is subscribed to, what the engine forwards, and what is logged.

Run by ``test_hub.py`` inside a network namespace of its own (ICE skips loopback): the
server runs in-process with ``PARLEY_MEDIA_ENGINE=janus``, Janus beside it, clients are
python-socketio clients, and publishers are aiortc peers sending a sine tone, so media
really flows and listeners are subscribed to live feeds. What Janus forwards is read
from the engine's own record of its ``moderate`` requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack  # type: ignore[import-untyped]
from av import VideoFrame
from sqlalchemy import update

from server.booths import service as booths
from server.config import Settings
from server.media.hub import MediaHub
from server.people.models import Person
from server.web.keys import REALTIME
from tests.conftest import LiveServer, http_client, settings_for, start_server
from tests.fixtures.janus import Janus, running_janus
from tests.fixtures.world import World, build_world
from tests.media.janus_peers import Tone
from tests.realtime.live import Peer, Peers, eventually

OPEN: list[RTCPeerConnection] = []  # closed after each test


@pytest.fixture(autouse=True)
async def _close_peer_connections() -> AsyncIterator[None]:
    yield
    while OPEN:
        await OPEN.pop().close()


async def publish(peer: Peer, channel: str, hz: float = 440.0) -> dict[str, Any]:
    """Publish a tone from an aiortc peer connection through ``media.publish``."""
    pc = RTCPeerConnection()
    OPEN.append(pc)
    pc.addTrack(Tone(hz))
    await pc.setLocalDescription(await pc.createOffer())
    said = await peer.send("media.publish", channel=channel, sdp=pc.localDescription.sdp)
    if said.get("ok"):
        await pc.setRemoteDescription(RTCSessionDescription(sdp=said["sdp"], type="answer"))
    return said


async def offer_sdp() -> str:
    """A real audio offer (for requests that are refused before or at the engine)."""
    pc = RTCPeerConnection()
    OPEN.append(pc)
    pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    return str(pc.localDescription.sdp)


async def answer_sdp(offer: str) -> str:
    """A listener's answer from a peer connection kept open (so the engine's streams
    really start)."""
    pc = RTCPeerConnection()
    OPEN.append(pc)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    return str(pc.localDescription.sdp)


@pytest.fixture(scope="module")
def janus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Janus]:
    with running_janus(tmp_path_factory.mktemp("janus-hub")) as server:
        yield server


@pytest.fixture
async def world(sessions: Any, settings: Settings) -> World:
    """Three interpreters: ``interpreter`` (active) and ``interpreter2`` in the Spanish
    booth, ``interpreter3`` alone in the French one."""
    async with sessions() as db:
        world = await build_world(db, settings, extra_interpreters=2)
        ids = {k: world.members[k].membership_id for k in ("interpreter", "interpreter2", "interpreter3")}
        await booths.create_booth(db, world.visit_id, "es", [ids["interpreter"], ids["interpreter2"]],
                                  actor_person_id=None)
        await booths.create_booth(db, world.visit_id, "fr", [ids["interpreter3"]], actor_person_id=None)
        await db.commit()
    return world


@pytest.fixture(params=["janus", "embedded"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def server(settings: Settings, engine: str, janus: Janus) -> AsyncIterator[LiveServer]:
    changed = settings_for(settings, media_engine="embedded")
    if engine == "janus":
        changed = settings_for(settings, media_engine="janus", janus_url=janus.url,
                               janus_api_secret=janus.api_secret, janus_admin_key=janus.admin_key)
    live, runner = await start_server(changed)
    yield live
    await runner.cleanup()


@pytest.fixture
async def peers(server: LiveServer, world: World) -> AsyncIterator[Peers]:
    made = Peers(server, world)
    yield made
    await made.close()


def hub_of(server: LiveServer) -> MediaHub:
    return server.app[REALTIME].services.media  # type: ignore[no-any-return]


def pushes(peer: Peer, event: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    peer.client.on(event, lambda msg: got.append(msg))
    return got


def engine_forwarding(server: LiveServer, session_id: str) -> dict[str, bool]:
    """Publisher key -> forwarded, as last applied at the engine (the hub records it only
    once the engine accepted the change; test_janus_media.py and
    test_embedded_engine.py check that each engine then really silences the audio)."""
    room = hub_of(server)._rooms.get(session_id)
    return {p.key: p.forwarded for p in room.publishers.values()} if room else {}


def key_of(peers: Peers, peer: Peer) -> str:
    return f"p:{peers.conn_id(peer)}"


async def test_media_info_tells_each_role_what_it_may_do(peers: Peers, world: World, engine: str) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    delegate = await peers.joined("delegate", sid)
    interpreter = await peers.joined("interpreter", sid)
    observer = await peers.joined("observer", sid)

    mine = await chair.send("media.info")
    assert mine["ok"] and mine["engine"] == engine, mine
    assert [c["id"] for c in mine["channels"]] == ["floor", "es", "fr"]
    assert [c["name"] for c in mine["channels"]] == ["Floor", "Spanish", "French"]
    assert mine["may_publish"] == ["floor"] and mine["booth"] is None
    assert isinstance(mine["ice_servers"], list)

    theirs = await delegate.send("media.info")
    assert theirs["may_publish"] == [] and "floor" in theirs["publish_reason"], theirs
    booth = (await interpreter.send("media.info"))
    assert booth["may_publish"] == ["es"], booth
    assert booth["booth"] == {"language": "es", "active": True,
                              "standby": world.members["interpreter2"].membership_id,
                              "listen_sources": ["floor", "fr"], "carries_floor": False}
    assert (await observer.send("media.info"))["may_publish"] == []

    outsider = await peers.connect("expert")  # connected, not in the room
    refused = await outsider.call("media.info", {"session_id": sid})
    assert refused["error"]["code"] == "conflict", refused


async def test_who_may_publish_is_decided_by_the_server(peers: Peers, world: World, server: LiveServer) -> None:
    sid = world.sessions["stakeholder"]
    chair = await peers.joined("secretariat", sid)
    stakeholder = await peers.joined("stakeholder", sid)
    expert = await peers.joined("expert", sid)
    interpreter3 = await peers.joined("interpreter3", sid)
    sdp = await offer_sdp()

    for peer, channel in ((stakeholder, "floor"), (expert, "floor"), (expert, "es"),
                          (interpreter3, "es"), (interpreter3, "floor"), (stakeholder, "fr")):
        said = await peer.send("media.publish", channel=channel, sdp=sdp)
        assert said["error"]["code"] == "forbidden", (peer.key, channel, said)
    assert engine_forwarding(server, sid) == {}  # nothing reached the engine

    unknown = await chair.send("media.publish", channel="de", sdp=sdp)
    assert unknown["error"]["code"] == "invalid", unknown
    assert (await publish(chair, "floor"))["forwarded"] is True
    assert (await publish(interpreter3, "fr"))["forwarded"] is True

    # The stakeholder may speak in a stakeholder session once given the floor.
    assert (await stakeholder.send("floor.request"))["ok"]
    assert (await chair.send("floor.give", membership_id=stakeholder.membership_id))["ok"]
    given = await publish(stakeholder, "floor")
    assert given["ok"] and given["forwarded"] is True, given
    assert engine_forwarding(server, sid) == {
        key_of(peers, chair): True, key_of(peers, interpreter3): True, key_of(peers, stakeholder): True,
    }

    # Ending the floor is the mute: cut at the engine, and the speaker is told.
    states = pushes(stakeholder, "media.state")
    assert (await chair.send("floor.end"))["ok"]
    await eventually(lambda: engine_forwarding(server, sid)[key_of(peers, stakeholder)] is False, "the cut")
    await eventually(lambda: bool(states) and states[-1]["publishing"] == {"channel": "floor", "forwarded": False},
                     "the speaker told")
    assert engine_forwarding(server, sid)[key_of(peers, chair)] is True


async def test_a_listener_hears_the_floor_and_its_channel_and_is_renegotiated_as_speakers_come(
    peers: Peers, world: World, server: LiveServer, engine: str
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    listener = await peers.joined("delegate", sid)
    interpreter = await peers.joined("interpreter", sid)
    offers = pushes(listener, "media.offer")

    first = await listener.send("media.listen", channel="es")
    assert first["ok"] and first["sdp"] is None and first["channel"] == "es", first  # nobody speaks yet
    assert (await publish(chair, "floor"))["ok"]
    await eventually(lambda: any(o["sdp"] for o in offers), "an offer once the chair's media is up")
    offer = offers[-1]
    assert offer["fresh"] is True and list(offer["tracks"].values()) == ["floor"], offer
    assert (await listener.send("media.answer", sub=offer["sub"], sdp=await answer_sdp(offer["sdp"])))["ok"]

    assert (await publish(interpreter, "es", 660.0))["ok"]
    await eventually(lambda: sorted(offers[-1]["tracks"].values()) == ["es", "floor"], "the booth added")
    renegotiated = offers[-1]
    # Janus keeps the peer connection and adds a track; the embedded engine offers a new one.
    assert renegotiated["fresh"] is (engine == "embedded"), renegotiated
    stale = await listener.send("media.answer", sub=offer["sub"], sdp=await answer_sdp(renegotiated["sdp"]))
    assert stale["error"]["code"] == "conflict", stale
    assert (await listener.send("media.answer", sub=renegotiated["sub"],
                                sdp=await answer_sdp(renegotiated["sdp"])))["ok"]

    # A floor listener is never given the booth's audio.
    floor_listener = await peers.joined("expert", sid)
    got = await floor_listener.send("media.listen", channel="floor")
    assert list(got["tracks"].values()) == ["floor"], got
    assert (await floor_listener.send("media.answer", sub=got["sub"], sdp=await answer_sdp(got["sdp"])))["ok"]

    # The booth's interpreter leaves: the booth listener is renegotiated to the floor only.
    await interpreter.client.disconnect()
    await eventually(lambda: list(offers[-1]["tracks"].values()) == ["floor"], "the booth dropped")
    assert engine_forwarding(server, sid) == {key_of(peers, chair): True}


async def test_a_hand_over_only_switches_forwarding_and_is_logged(
    peers: Peers, world: World, server: LiveServer, sessions: Any
) -> None:
    sid = world.sessions["open"]
    active = await peers.joined("interpreter", sid)
    standby = await peers.joined("interpreter2", sid)
    listener = await peers.joined("delegate", sid)
    offers = pushes(listener, "media.offer")
    assert (await publish(active, "es", 660.0))["forwarded"] is True
    assert (await publish(standby, "es", 880.0))["forwarded"] is False
    assert (await listener.send("media.listen", channel="es"))["ok"]
    await eventually(lambda: bool(offers) and sorted(offers[-1]["tracks"].values()) == ["es", "es"],
                     "both voices subscribed")
    await asyncio.sleep(0.5)
    offers.clear()

    refused = await standby.send("booth.handover")
    assert refused["error"]["code"] == "forbidden", refused
    done = await active.send("booth.handover")
    assert done["ok"], done
    await eventually(lambda: engine_forwarding(server, sid) == {key_of(peers, active): False,
                                                                key_of(peers, standby): True}, "the swap")
    await listener.synced(done["seq"])
    logged = [e for e in listener.live if e["type"] == "booth.handover"]
    assert logged and logged[-1]["payload"] == {
        "language": "es", "from": active.membership_id, "to": standby.membership_id}, logged
    await asyncio.sleep(0.3)
    assert offers == []  # no renegotiation: the listener already had both voices
    info = await standby.send("media.info")
    assert info["booth"]["active"] is True and info["booth"]["standby"] == active.membership_id

    # The secretariat hands back from the booths page's API: the rooms' audio follows.
    chair = await peers.joined("secretariat", sid)
    async with sessions() as db:
        booth = next(b for b in await booths.list_booths(db, world.visit_id) if b.language == "es")
    async with http_client(server, chair.cookie) as http:
        async with http.post(f"/api/visits/{world.visit_id}/booths/{booth.id}/handover") as r:
            assert r.status == 200, await r.text()
    await eventually(lambda: engine_forwarding(server, sid) == {key_of(peers, active): True,
                                                                key_of(peers, standby): False}, "handed back")


async def test_the_floor_language_and_the_interpreters_switch(peers: Peers, world: World, server: LiveServer,
                                                             sessions: Any) -> None:
    async with sessions() as db:
        await db.execute(update(Person).where(Person.id == world.members["delegate"].person_id)
                         .values(languages=["es-CO", "en"]))
        await db.commit()
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    delegate = await peers.joined("delegate", sid)
    interpreter = await peers.joined("interpreter", sid)
    spanish = await peers.joined("expert", sid)
    offers = pushes(spanish, "media.offer")
    assert (await publish(interpreter, "es", 660.0))["ok"]
    assert (await spanish.send("media.listen", channel="es"))["ok"]
    await eventually(lambda: bool(offers) and list(offers[-1]["tracks"].values()) == ["es"], "the booth heard")
    assert (await delegate.send("floor.request"))["ok"]
    assert (await chair.send("floor.give", membership_id=delegate.membership_id))["ok"]
    assert (await publish(delegate, "floor"))["ok"]

    # A Spanish speaker: the Spanish channel carries the floor, not the interpreter.
    await eventually(lambda: bool(offers) and list(offers[-1]["tracks"].values()) == ["floor"], "floor on es")
    assert engine_forwarding(server, sid)[key_of(peers, interpreter)] is False
    state = await spanish.send("media.info")
    assert next(c for c in state["channels"] if c["id"] == "es")["carries_floor"] is True

    # The interpreter switches the channel back (interpreting after all), and it is logged.
    switched = await interpreter.send("booth.floor", carries_floor=False)
    assert switched["ok"], switched
    await eventually(lambda: sorted(offers[-1]["tracks"].values()) == ["es", "floor"], "es back")
    assert engine_forwarding(server, sid)[key_of(peers, interpreter)] is True
    await spanish.synced(switched["seq"])
    assert [e["payload"] for e in spanish.live if e["type"] == "booth.floor"] == [
        {"language": "es", "carries_floor": False}]
    assert (await chair.send("booth.floor", carries_floor=True))["error"]["code"] == "forbidden"


async def test_a_chair_unmutes_and_mutes_a_participant(peers: Peers, world: World, server: LiveServer) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    observer = await peers.joined("observer", sid)
    sdp = await offer_sdp()
    assert (await expert.send("media.publish", channel="floor", sdp=sdp))["error"]["code"] == "forbidden"
    assert (await observer.send("media.publish", channel="floor", sdp=sdp))["error"]["code"] == "forbidden"
    assert (await expert.send("media.unmute", membership_id=expert.membership_id))["error"]["code"] == "forbidden"
    assert (await chair.send("media.unmute", membership_id=observer.membership_id))["error"]["code"] == "forbidden"

    granted = await chair.send("media.unmute", membership_id=expert.membership_id)
    assert granted["ok"], granted
    assert (await publish(expert, "floor"))["forwarded"] is True
    await eventually(lambda: "floor" in chair.state.channels, "the floor heard")
    revoked = await chair.send("media.mute", membership_id=expert.membership_id)
    assert revoked["ok"], revoked
    await eventually(lambda: engine_forwarding(server, sid)[key_of(peers, expert)] is False, "muted at the engine")
    await chair.synced(revoked["seq"])
    kinds = [e["type"] for e in chair.live]
    assert "media.publish_granted" in kinds and "media.publish_revoked" in kinds
    assert "channel.open" in kinds  # the floor was heard ...
    await eventually(lambda: "floor" not in chair.state.channels, "... and is silent again")
    assert chair.state.unmuted == set()


async def test_channels_heard_are_logged_open_and_closed(peers: Peers, world: World) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    interpreter3 = await peers.joined("interpreter3", sid)
    assert (await publish(interpreter3, "fr"))["ok"]
    await eventually(lambda: "fr" in chair.state.channels, "fr heard")
    assert (await interpreter3.send("media.unpublish"))["ok"]
    await eventually(lambda: [(e["type"], e["payload"]) for e in chair.live if e["type"].startswith("channel.")] == [
        ("channel.open", {"channel": "fr"}), ("channel.close", {"channel": "fr"})], "fr opened and closed")
    assert chair.state.channels == set()


async def test_garbage_gets_clear_errors_and_the_engine_keeps_serving(
    peers: Peers, world: World, server: LiveServer
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    listener = await peers.joined("delegate", sid)
    for sdp in ("this is not SDP", "v=0\r\n" * 50, "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"):
        said = await chair.send("media.publish", channel="floor", sdp=sdp)
        assert said["error"]["code"] == "invalid", said
    for bad in ({"channel": "floor"}, {"channel": "floor", "sdp": ""}, {"channel": "x" * 99, "sdp": "v=0"},
                {"channel": "floor", "sdp": "v=0\x00"}, {"channel": 3, "sdp": "v=0"}):
        said = await chair.send("media.publish", **bad)
        assert said["error"]["code"] == "invalid", (bad, said)
    assert (await chair.send("media.candidate", pc="publish", candidate=None))["error"]["code"] == "conflict"

    assert (await publish(chair, "floor"))["ok"]
    for candidate in ({"candidate": "candidate:garbage", "sdpMid": "0", "sdpMLineIndex": 0},
                      {"candidate": "x", "sdpMid": "0", "sdpMLineIndex": 99}, {"nope": 1}):
        said = await chair.send("media.candidate", pc="publish", candidate=candidate)
        assert said.get("error", {}).get("code") in {"invalid", None}, (candidate, said)  # Janus may ignore one
    assert (await chair.send("media.answer", sub=1, sdp="v=0"))["error"]["code"] == "conflict"
    offers = pushes(listener, "media.offer")
    assert (await listener.send("media.listen", channel="floor"))["ok"]
    await eventually(lambda: any(o["sdp"] for o in offers), "still serving")
    heard = offers[-1]
    bad_answer = await listener.send("media.answer", sub=heard["sub"], sdp="not an answer")
    assert bad_answer["error"]["code"] == "invalid", bad_answer
    assert (await listener.send("media.answer", sub=heard["sub"], sdp=await answer_sdp(heard["sdp"])))["ok"]


async def test_a_vanished_browser_leaves_no_publisher(peers: Peers, world: World, server: LiveServer) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    assert (await publish(chair, "floor"))["ok"]
    assert engine_forwarding(server, sid)
    await chair.client.disconnect()
    await eventually(lambda: sid not in hub_of(server)._rooms, "the engine room closed")


async def test_the_talk_back_line_reaches_the_booth_partner_only(peers: Peers, world: World) -> None:
    sid = world.sessions["open"]
    active = await peers.joined("interpreter", sid)
    partner = await peers.joined("interpreter2", sid)
    other_booth = await peers.joined("interpreter3", sid)
    listener = await peers.joined("delegate", sid)
    chair = await peers.joined("secretariat", sid)
    partner_offers, listener_offers = pushes(partner, "media.offer"), pushes(listener, "media.offer")
    assert (await publish(chair, "floor"))["ok"]
    assert (await partner.send("media.listen", channel="floor"))["ok"]
    assert (await listener.send("media.listen", channel="es"))["ok"]

    refused = [await publish(p, "talkback") for p in (listener, chair)]
    assert all(r["error"]["code"] == "forbidden" for r in refused), refused
    assert (await publish(active, "es", 660.0))["ok"]
    said = await publish(active, "talkback", 990.0)  # a second peer connection beside the booth's
    assert said["ok"] and said["channel"] == "talkback", said
    assert (await publish(other_booth, "talkback", 1100.0))["ok"]  # another booth: not the partner's

    await eventually(lambda: bool(partner_offers) and sorted(partner_offers[-1]["tracks"].values()) == [
        "floor", "talkback"], "the partner hears the floor and the talk-back")
    await eventually(lambda: bool(listener_offers) and sorted(listener_offers[-1]["tracks"].values()) == [
        "es", "floor"], "the listener hears the booth, never the talk-back")
    assert (await partner.send("media.info"))["talkback"] is False
    assert (await active.send("media.info"))["talkback"] is True
    assert (await active.send("media.candidate", pc="talkback", candidate=None))["ok"]

    # Stopping the talk-back keeps the booth's voice.
    assert (await active.send("media.unpublish", channel="talkback"))["ok"]
    await eventually(lambda: list(partner_offers[-1]["tracks"].values()) == ["floor"], "talk-back gone")
    info = await active.send("media.info")
    assert info["talkback"] is False and info["publishing"] == {"channel": "es", "forwarded": True}, info
    assert [e for e in chair.live if "talkback" in str(e["payload"])] == []  # never logged


# ---- optional video (the floor only) ---------------------------------------------------

PALETTE = [(220, 40, 40), (40, 200, 60), (40, 60, 220)]  # red, green, blue


class Colours(VideoStreamTrack):  # type: ignore[misc]
    """A camera showing a solid colour that changes twice a second."""

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        colour = PALETTE[int(pts * time_base * 2) % len(PALETTE)]
        image = np.zeros((120, 160, 3), dtype=np.uint8)
        image[:, :] = colour
        frame = VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


async def publish_with_video(peer: Peer, channel: str, hz: float = 440.0) -> dict[str, Any]:
    """Publish a tone and a camera (one peer connection, an audio and a video m-line)."""
    pc = RTCPeerConnection()
    OPEN.append(pc)
    pc.addTrack(Tone(hz))
    pc.addTrack(Colours())
    await pc.setLocalDescription(await pc.createOffer())
    assert "m=video" in pc.localDescription.sdp
    said = await peer.send("media.publish", channel=channel, sdp=pc.localDescription.sdp)
    if said.get("ok"):
        await pc.setRemoteDescription(RTCSessionDescription(sdp=said["sdp"], type="answer"))
    return said


class Viewer:
    """A listening peer connection that keeps what arrives: (time, kind, mean colour)."""

    def __init__(self) -> None:
        self.pc: RTCPeerConnection | None = None
        self.got: list[tuple[float, str, tuple[int, ...]]] = []
        self.kinds: list[str] = []
        self._readers: list[asyncio.Task[None]] = []

    def _new(self) -> RTCPeerConnection:
        pc = RTCPeerConnection()
        OPEN.append(pc)

        @pc.on("track")  # type: ignore[misc]
        def on_track(track: Any) -> None:
            self.kinds.append(track.kind)

            async def read() -> None:
                while True:
                    try:
                        frame = await track.recv()
                    except Exception:
                        return
                    colour: tuple[int, ...] = ()
                    if track.kind == "video":
                        colour = tuple(int(c) for c in frame.to_ndarray(format="rgb24").mean(axis=(0, 1)))
                    self.got.append((asyncio.get_running_loop().time(), track.kind, colour))

            self._readers.append(asyncio.ensure_future(read()))

        return pc

    async def answer(self, offer: dict[str, Any]) -> str:
        """Answer an offer: on a new peer connection if ``fresh``, else renegotiating."""
        if offer["fresh"] or self.pc is None:
            self.pc = self._new()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    def frames(self, kind: str, since: float = 0.0) -> list[tuple[float, str, tuple[int, ...]]]:
        return [g for g in self.got if g[1] == kind and g[0] >= since]

    def colours_seen(self) -> set[int]:
        """Which palette colours the video frames showed (within a VP8 margin)."""
        seen = set()
        for _, _, colour in self.frames("video"):
            for n, want in enumerate(PALETTE):
                if all(abs(a - b) < 40 for a, b in zip(colour, want, strict=True)):
                    seen.add(n)
        return seen


async def test_a_floor_speaker_s_video_reaches_who_asked_for_it_and_stops_with_the_floor(
    peers: Peers, world: World, server: LiveServer, engine: str
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    speaker = await peers.joined("delegate", sid)
    watching = await peers.joined("expert", sid)
    hearing = await peers.joined("observer", sid)
    offers = pushes(watching, "media.offer")
    assert (await speaker.send("floor.request"))["ok"]
    assert (await chair.send("floor.give", membership_id=speaker.membership_id))["ok"]
    said = await publish_with_video(speaker, "floor")
    assert said["ok"] and said["forwarded"] is True and said["video"] is True, said
    await eventually(lambda: "floor" in chair.state.channels, "the speaker's media up")

    # Audio only (the default): one audio track, no video.
    ear, viewer = Viewer(), Viewer()
    heard = await hearing.send("media.listen", channel="floor")
    assert heard["ok"] and heard["video"] is False and list(heard["tracks"].values()) == ["floor"], heard
    assert (await hearing.send("media.answer", sub=heard["sub"], sdp=await ear.answer(heard)))["ok"]
    first = await watching.send("media.listen", channel="floor", video=False)
    assert list(first["tracks"].values()) == ["floor"], first
    assert (await watching.send("media.answer", sub=first["sub"], sdp=await viewer.answer(first)))["ok"]

    # With video: the same channel again renegotiates, every mid labelled with its channel.
    seen = await watching.send("media.listen", channel="floor", video=True)
    assert seen["ok"] and seen["video"] is True and list(seen["tracks"].values()) == ["floor", "floor"], seen
    assert seen["fresh"] is (engine == "embedded"), seen
    assert "m=video" in seen["sdp"]
    assert (await watching.send("media.answer", sub=seen["sub"], sdp=await viewer.answer(seen)))["ok"]
    await eventually(lambda: len(viewer.frames("video")) >= 20 and len(viewer.frames("audio")) >= 20,
                     "video and audio frames at the viewer", timeout=20)
    await eventually(lambda: len(viewer.colours_seen()) >= 2, "the camera's colours, changing", timeout=10)
    assert offers == []  # nothing changed meanwhile: no pushed offer

    # A cough cuts the video with the audio; the picture comes back after it.
    assert (await speaker.send("media.cough", on=True))["ok"]
    await eventually(lambda: engine_forwarding(server, sid)[key_of(peers, speaker)] is False, "coughing")
    assert (await speaker.send("media.cough", on=False))["ok"]
    await eventually(lambda: engine_forwarding(server, sid)[key_of(peers, speaker)] is True, "back")
    back = asyncio.get_running_loop().time()
    await eventually(lambda: len(viewer.frames("video", back)) >= 10, "the picture back", timeout=10)

    # Ending the floor stops the video at the engine: no frame arrives a second later.
    assert (await chair.send("floor.end"))["ok"]
    await eventually(lambda: engine_forwarding(server, sid)[key_of(peers, speaker)] is False, "the cut")
    cut = asyncio.get_running_loop().time()
    await asyncio.sleep(2.5)
    assert viewer.frames("video", cut + 1.0) == [], f"{len(viewer.frames('video', cut + 1.0))} frames after the cut"
    assert "video" in viewer.kinds
    assert ear.kinds == ["audio"] and ear.frames("audio") and not ear.frames("video"), ear.kinds


async def test_booth_channels_and_talk_back_are_audio_only(peers: Peers, world: World, server: LiveServer) -> None:
    sid = world.sessions["open"]
    interpreter = await peers.joined("interpreter", sid)
    for channel in ("es", "talkback"):
        refused = await publish_with_video(interpreter, channel, 660.0)
        assert refused["error"]["code"] == "invalid" and "audio only" in refused["error"]["message"], refused
    assert engine_forwarding(server, sid) == {}  # nothing reached the engine
    said = await publish(interpreter, "es", 660.0)  # the same, audio only: fine
    assert said["ok"] and said["video"] is False, said


async def test_a_flood_of_negotiations_is_limited_and_the_room_keeps_serving(peers: Peers, world: World) -> None:
    sid = world.sessions["open"]
    flooder = await peers.joined("delegate", sid)
    other = await peers.joined("expert", sid)
    acks = await asyncio.gather(*(flooder.send("media.listen", channel="floor") for _ in range(40)))
    limited = [a for a in acks if a.get("error", {}).get("code") == "rate_limited"]
    assert len(limited) >= 20 and all(a["error"]["retry_after"] > 0 for a in limited), acks
    candidates = await asyncio.gather(*(flooder.send("media.candidate", pc="listen", candidate=None)
                                        for _ in range(100)))
    assert any(a.get("error", {}).get("code") == "rate_limited" for a in candidates)
    assert (await other.send("media.listen", channel="floor"))["ok"]  # others are not held up
