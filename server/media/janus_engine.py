"""The Janus media engine: one private VideoRoom per session room, driven by Parley.

Every request to Janus is Parley's, with the deployment's API secret and, per room, a
secret and a PIN that only this process knows: a browser, which never reaches Janus's
API, can neither create, join nor moderate a room by itself. What a browser may send or
hear is decided by the server (``server.media`` policy) before it calls this engine.

* ``publish``: a participant's microphone (and, on the floor, optionally their camera:
  VP8) into one channel ("floor", or a booth's language). The publisher is a VideoRoom
  participant whose ``display`` is its channel; its streams (mid and type) are learnt
  from Janus's answer to ``publish``.
* ``set_forwarding``: whether Janus forwards a publisher at all (VideoRoom ``moderate``
  of each of its mids, which mutes a stream at Janus whatever the browser keeps
  sending). Ending the floor, a booth's hand-over and the "cough" button are this switch.
* ``subscribe``: a listener's feeds (the floor, and their chosen channel), as one
  multistream subscription: each feed's audio mid, and with ``video`` its video mid
  too; ``update`` changes it without a new negotiation.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from server.media.engine import Candidate, MediaError, MediaUnavailable, Subscription, offers_video
from server.media.janus import JanusClient, JanusError, JanusSession, JanusUnavailable

AUDIO_MID = "0"


@dataclass
class _Publisher:
    handle: int
    feed: int
    channel: str
    mids: dict[str, str] = field(default_factory=lambda: {AUDIO_MID: "audio"})  # mid -> "audio" | "video"
    forwarding: bool = True

    def streams(self, video: bool) -> list[tuple[int, str]]:
        """(feed, mid) of what a listener takes from it: its audio, and its video too."""
        kinds = ("audio", "video") if video else ("audio",)
        return [(self.feed, mid) for mid, kind in self.mids.items() if kind in kinds]


@dataclass
class _Listener:
    handle: int
    streams: list[tuple[int, str]]  # the (feed, mid) its subscription carries, in order


def _mids(answer: dict[str, Any]) -> dict[str, str]:
    """A publisher's active streams, mid -> type, from Janus's answer to ``publish``
    (its ``streams`` list); the audio mid alone if Janus listed none."""
    found: dict[str, str] = {}
    for stream in answer.get("streams") or []:
        if (isinstance(stream, dict) and stream.get("type") in ("audio", "video")
                and stream.get("mid") is not None and not stream.get("disabled")):
            found[str(stream["mid"])] = str(stream["type"])
    return found or {AUDIO_MID: "audio"}


@dataclass
class _Room:
    number: int
    secret: str
    pin: str
    publishers: dict[str, _Publisher] = field(default_factory=dict)  # publisher key -> publisher
    listeners: dict[str, _Listener] = field(default_factory=dict)  # listener key -> subscription


@asynccontextmanager
async def _refusals() -> AsyncIterator[None]:
    """Janus's refusals (bad SDP, a bad candidate) as ``MediaError``; an unreachable
    Janus as ``MediaUnavailable``."""
    try:
        yield
    except JanusError as exc:
        raise MediaError(f"The media engine refused the request: {exc.reason[:200]}") from exc
    except JanusUnavailable as exc:
        raise MediaUnavailable(str(exc)) from exc


class JanusEngine:
    name = "janus"

    def __init__(self, client: JanusClient, *, admin_key: str | None = None) -> None:
        self.client = client
        self.admin_key = admin_key
        self._session: JanusSession | None = None
        self._rooms: dict[str, _Room] = {}

    async def _janus(self) -> JanusSession:
        if self._session is None or self._session.closed:
            self._session = await self.client.create_session()
        return self._session

    def _room(self, room_key: str) -> _Room:
        room = self._rooms.get(room_key)
        if room is None:
            raise MediaError("no media room for this session")
        return room

    async def open_room(self, room_key: str) -> None:
        """Create the room's VideoRoom (once): private, with a secret and PIN of its own."""
        if room_key in self._rooms:
            return
        janus = await self._janus()
        handle = await janus.attach()
        room = _Room(secrets.randbelow(2**52) + 1, secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        request = {
            "request": "create", "room": room.number, "is_private": True, "secret": room.secret, "pin": room.pin,
            "audiocodec": "opus", "videocodec": "vp8", "publishers": 64, "description": room_key[:100],
        }
        if self.admin_key:
            request["admin_key"] = self.admin_key
        try:
            await janus.message(handle, request)
        finally:
            await janus.detach(handle)
        self._rooms[room_key] = room

    async def close_room(self, room_key: str) -> None:
        room = self._rooms.pop(room_key, None)
        if room is None:
            return
        janus = await self._janus()
        handle = await janus.attach()
        try:
            await janus.message(handle, {"request": "destroy", "room": room.number, "secret": room.secret})
        finally:
            await janus.detach(handle)

    async def publish(self, room_key: str, publisher: str, channel: str, offer: str) -> str:
        """Publish one participant's audio (and video, if the offer has it) into
        ``channel``; returns the SDP answer."""
        room = self._room(room_key)
        janus = await self._janus()
        if publisher in room.publishers:
            await self.unpublish(room_key, publisher)
        handle = await janus.attach()
        try:
            async with _refusals():
                joined = await janus.message(
                    handle, {"request": "join", "ptype": "publisher", "room": room.number, "pin": room.pin,
                             "display": channel},
                )
                answer = await janus.message(
                    handle, {"request": "publish", "audio": True, "video": offers_video(offer)},
                    jsep={"type": "offer", "sdp": offer},
                )
        except Exception:
            await janus.detach(handle)
            raise
        room.publishers[publisher] = _Publisher(handle, int(joined["id"]), channel, _mids(answer))
        return str(answer["jsep"]["sdp"])

    async def unpublish(self, room_key: str, publisher: str) -> None:
        room = self._room(room_key)
        found = room.publishers.pop(publisher, None)
        if found is not None:
            await (await self._janus()).detach(found.handle)

    async def set_forwarding(self, room_key: str, publisher: str, forwarding: bool) -> None:
        """Forward a publisher's audio and video, or stop them at Janus (whatever the
        browser sends): one ``moderate`` per mid."""
        room = self._room(room_key)
        found = room.publishers.get(publisher)
        if found is None:
            raise MediaError("no such publisher")
        janus = await self._janus()
        async with _refusals():
            for mid in found.mids:
                await janus.message(
                    found.handle,
                    {"request": "moderate", "room": room.number, "secret": room.secret, "id": found.feed,
                     "mid": mid, "mute": not forwarding},
                )
        found.forwarding = forwarding

    async def live(self, room_key: str) -> set[str]:
        """The publishers whose media is up (Janus lists them as publishing)."""
        room = self._room(room_key)
        if not room.publishers:
            return set()
        janus = await self._janus()
        any_handle = next(iter(room.publishers.values())).handle
        listed = await janus.message(any_handle, {"request": "listparticipants", "room": room.number})
        up = {int(p["id"]) for p in listed.get("participants", []) if p.get("publisher")}
        return {key for key, p in room.publishers.items() if p.feed in up}

    async def subscribe(
        self, room_key: str, listener: str, publishers: Sequence[str], *, video: bool = False
    ) -> Subscription:
        """Subscribe a listener to exactly these publishers' audio (and, with ``video``,
        the video of those that publish some); returns Janus's SDP offer (the listener
        answers with ``start``). A listener that already has a subscription keeps its
        peer connection: Janus's multistream ``update`` adds and removes streams and
        renegotiates, so the streams it keeps play on."""
        room = self._room(room_key)
        janus = await self._janus()
        streams = [s for p in dict.fromkeys(publishers) if p in room.publishers
                   for s in room.publishers[p].streams(video)]
        if not streams:
            raise MediaError("nothing to listen to")
        old = room.listeners.get(listener)
        if old is not None:
            added = [s for s in streams if s not in old.streams]
            removed = [s for s in old.streams if s not in streams]
            if added or removed:
                request: dict[str, object] = {"request": "update"}
                if added:
                    request["subscribe"] = [{"feed": f, "mid": mid} for f, mid in added]
                if removed:
                    request["unsubscribe"] = [{"feed": f, "mid": mid} for f, mid in removed]
                try:
                    async with _refusals():
                        updated = await janus.message(old.handle, request)
                except MediaError:
                    updated = {}
                if "jsep" in updated:
                    old.streams = [s for s in old.streams if s not in removed] + added
                    return Subscription(str(updated["jsep"]["sdp"]), False, self._tracks(room, updated))
            # Nothing to change, or Janus could not update it: a new subscription.
            room.listeners.pop(listener, None)
            await janus.detach(old.handle)
        handle = await janus.attach()
        try:
            async with _refusals():
                offered = await janus.message(
                    handle, {"request": "join", "ptype": "subscriber", "room": room.number, "pin": room.pin,
                             "streams": [{"feed": f, "mid": mid} for f, mid in streams]},
                )
        except Exception:
            await janus.detach(handle)
            raise
        room.listeners[listener] = _Listener(handle, streams)
        return Subscription(str(offered["jsep"]["sdp"]), True, self._tracks(room, offered))

    @staticmethod
    def _tracks(room: _Room, answer: dict[str, Any]) -> dict[str, str]:
        """The subscription's audio and video mids and the publisher each carries (Janus
        lists its streams, with their feed, in the ``attached`` and ``updated`` events)."""
        by_feed = {p.feed: key for key, p in room.publishers.items()}
        out: dict[str, str] = {}
        for stream in answer.get("streams") or []:
            if (isinstance(stream, dict) and stream.get("type") in ("audio", "video")
                    and stream.get("active", True)):
                key = by_feed.get(stream.get("feed_id"))  # type: ignore[arg-type]
                if key is not None and stream.get("mid") is not None:
                    out[str(stream["mid"])] = key
        return out

    async def start(self, room_key: str, listener: str, answer: str) -> None:
        room = self._room(room_key)
        found = room.listeners.get(listener)
        if found is None:
            raise MediaError("no such listener")
        async with _refusals():
            await (await self._janus()).message(
                found.handle, {"request": "start"}, jsep={"type": "answer", "sdp": answer}
            )

    async def unsubscribe(self, room_key: str, listener: str) -> None:
        room = self._room(room_key)
        found = room.listeners.pop(listener, None)
        if found is not None:
            await (await self._janus()).detach(found.handle)

    async def trickle(self, room_key: str, peer: str, candidate: Candidate | None) -> None:
        room = self._room(room_key)
        publisher = room.publishers.get(peer)
        listener = room.listeners.get(peer)
        handle = publisher.handle if publisher else listener.handle if listener else None
        if handle is None:
            raise MediaError("no such peer connection")
        async with _refusals():
            await (await self._janus()).trickle(handle, candidate)

    async def aclose(self) -> None:
        for room_key in list(self._rooms):
            try:
                await self.close_room(room_key)
            except Exception:  # Janus may be gone already
                self._rooms.pop(room_key, None)
        try:
            if self._session is not None and not self._session.closed:
                await self._session.destroy()
        except (JanusError, JanusUnavailable, OSError):
            pass  # Janus is gone: its sessions went with it
        finally:
            await self.client.close()  # the HTTP connections to Janus
