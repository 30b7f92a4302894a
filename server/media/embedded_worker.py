"""The embedded media engine's child process: a small audio SFU on aiortc.

    python -m server.media.embedded_worker [--cpus 0,1]

Started and driven by ``server.media.embedded.EmbeddedEngine``, never by hand. It reads
requests on stdin and writes responses on stdout, one JSON object a line:

    -> {"id": 7, "op": "publish", "args": {"room": ..., "publisher": ..., ...}}
    <- {"id": 7, "result": "v=0 ..."}          or  {"id": 7, "error": "message"}

Requests are served concurrently (one task each; one lock per room keeps a room's
changes in order). A request that fails answers with an error and changes nothing else:
a malformed SDP or candidate never stops the process. End of stdin (the server went
away) or ``shutdown`` closes every peer connection and ends the process. Anything a
library prints goes to stderr: stdout carries only the protocol.

The SFU: a publisher is a peer connection receiving one Opus track; a listener is a peer
connection the engine offers to, with one send-only audio transceiver per publisher it
hears. Audio is forwarded as it arrives, without decoding or re-encoding: each Opus
payload the publisher's receiver gets is handed (as one shared ``av.Packet``) to a small
queue per listener stream, which that listener's RTP sender packs, encrypts and sends.
Forwarding off drops a publisher's payloads at the receiver, so nothing of it leaves the
engine whatever the browser sends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import logging
import os
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from aiortc.sdp import candidate_from_sdp
from av.packet import Packet
from av.stream import Stream

from server.media.engine import MediaError

log = logging.getLogger("parley.media.embedded")

OPUS_RATE = 48000
TIME_BASE = fractions.Fraction(1, OPUS_RATE)
QUEUE_PACKETS = 10  # per listener stream: 200 ms of audio; older packets are dropped
MAX_LINE = 4 * 1024 * 1024


def _configuration() -> RTCConfiguration:
    # No STUN or TURN: aiortc's default would ask Google's STUN server for our address.
    # The engine answers with its host candidates; browsers behind NAT reach it through
    # their own TURN relay.
    return RTCConfiguration(iceServers=[])


def _opus_only(transceiver: RTCRtpTransceiver) -> None:
    opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"]
    transceiver.setCodecPreferences(opus)


class Feed(MediaStreamTrack):
    """One listener's stream of one publisher: the Opus packets to send, newest last."""

    kind = "audio"

    def __init__(self, publisher: Publisher) -> None:
        super().__init__()
        self.publisher = publisher
        self._packets: deque[Packet[Stream]] = deque(maxlen=QUEUE_PACKETS)
        self._ready = asyncio.Event()

    def push(self, packet: Packet[Stream]) -> None:
        self._packets.append(packet)
        self._ready.set()

    def flush(self) -> None:
        self._packets.clear()

    async def recv(self) -> Packet[Stream]:
        while not self._packets:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        return self._packets.popleft()

    def stop(self) -> None:
        super().stop()
        self._ready.set()


@dataclass
class Publisher:
    pc: RTCPeerConnection
    channel: str
    forwarding: bool = True
    live: bool = False  # a first packet has arrived
    opus: int | None = None  # the negotiated Opus payload type
    feeds: set[Feed] = field(default_factory=set)
    _origin: int | None = None
    _last: int = 0
    _wraps: int = 0

    def on_rtp(self, packet: RtpPacket) -> None:
        """One RTP packet from the browser (decrypted): fan its Opus payload out."""
        if packet.payload_type != self.opus or not packet.payload:
            return
        self.live = True
        if not self.forwarding or not self.feeds:
            return
        ts = packet.timestamp
        if self._origin is None:
            self._origin = self._last = ts
        elif ts < self._last and self._last - ts > 1 << 31:
            self._wraps += 1 << 32
        elif ts > self._last and ts - self._last > 1 << 31:  # a late packet from before a wrap
            ts -= 1 << 32
        self._last = ts & 0xFFFFFFFF
        pts = self._wraps + ts - self._origin
        if pts < 0:
            return
        out = Packet(packet.payload)
        out.pts = pts
        out.time_base = TIME_BASE
        for feed in self.feeds:
            feed.push(out)

    def set_forwarding(self, forwarding: bool) -> None:
        self.forwarding = forwarding
        if not forwarding:
            for feed in self.feeds:
                feed.flush()


@dataclass
class Listener:
    pc: RTCPeerConnection
    feeds: list[Feed]


@dataclass
class Room:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    publishers: dict[str, Publisher] = field(default_factory=dict)
    listeners: dict[str, Listener] = field(default_factory=dict)


def _refused(what: str, exc: Exception) -> MediaError:
    text = str(exc).strip()
    if isinstance(exc, AssertionError) or not text:  # aiortc's parser asserts without a message
        return MediaError(what)
    return MediaError(f"{what}: {text.splitlines()[0][:160]}")


def _candidate(candidate: dict[str, Any]) -> Any:
    """A browser's candidate as aiortc's RTCIceCandidate (MediaError if malformed)."""
    line = candidate.get("candidate")
    if not isinstance(line, str):
        raise MediaError("malformed ICE candidate: no candidate line")
    line = line.strip()
    if line.startswith("a="):
        line = line[2:]
    if line.startswith("candidate:"):
        line = line[len("candidate:"):]
    if len(line.split()) < 8:
        raise MediaError("malformed ICE candidate: too few fields")
    try:
        parsed = candidate_from_sdp(line)
    except (ValueError, IndexError) as exc:
        raise _refused("malformed ICE candidate", exc) from exc
    mid, index = candidate.get("sdpMid"), candidate.get("sdpMLineIndex")
    parsed.sdpMid = str(mid) if mid is not None else None
    parsed.sdpMLineIndex = index if isinstance(index, int) else None
    if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
        parsed.sdpMid = "0"
    return parsed


class Sfu:
    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}

    def _room(self, room: str) -> Room:
        found = self.rooms.get(room)
        if found is None:
            raise MediaError("no media room for this session")
        return found

    async def open_room(self, room: str) -> None:
        self.rooms.setdefault(room, Room())

    async def close_room(self, room: str) -> None:
        found = self.rooms.pop(room, None)
        if found is None:
            return
        async with found.lock:
            for key in list(found.listeners):
                await self._drop_listener(found, key)
            for key in list(found.publishers):
                await self._drop_publisher(found, key)

    async def publish(self, room: str, publisher: str, channel: str, offer: str) -> str:
        found = self._room(room)
        async with found.lock:
            await self._drop_publisher(found, publisher)
            pc = RTCPeerConnection(_configuration())
            try:
                return await self._answer(found, pc, publisher, channel, offer)
            except BaseException:
                await pc.close()
                raise

    async def _answer(self, room: Room, pc: RTCPeerConnection, key: str, channel: str, offer: str) -> str:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except Exception as exc:
            raise _refused("malformed SDP offer", exc) from exc
        audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
        if not audio:
            raise MediaError("the SDP offer has no audio")
        for t in pc.getTransceivers():
            if t is not audio[0]:
                t.direction = "inactive"
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        receiver = audio[0].receiver
        opus = [c.payloadType for c in audio[0]._codecs if c.mimeType.lower() == "audio/opus"]
        if not opus:
            raise MediaError("the SDP offer has no Opus audio")
        found = Publisher(pc, channel, opus=opus[0])

        async def tap(packet: RtpPacket, arrival_time_ms: int) -> None:
            # In place of aiortc's receiver path (jitter buffer, decoder thread): the
            # payload is forwarded as it is.
            found.on_rtp(packet)

        receiver._handle_rtp_packet = tap  # type: ignore[method-assign]
        room.publishers[key] = found
        return str(pc.localDescription.sdp)

    async def _drop_publisher(self, room: Room, key: str) -> None:
        found = room.publishers.pop(key, None)
        if found is None:
            return
        found.forwarding = False
        for feed in list(found.feeds):
            feed.stop()
        found.feeds.clear()
        await found.pc.close()

    async def unpublish(self, room: str, publisher: str) -> None:
        found = self._room(room)
        async with found.lock:
            await self._drop_publisher(found, publisher)

    async def set_forwarding(self, room: str, publisher: str, forwarding: bool) -> None:
        found = self._room(room).publishers.get(publisher)
        if found is None:
            raise MediaError("no such publisher")
        found.set_forwarding(forwarding)

    async def subscribe(self, room: str, listener: str, publishers: list[str]) -> dict[str, Any]:
        """A new peer connection for the listener (its old one, if any, is closed), with
        one audio stream per known publisher, in order; returns the engine's offer."""
        found = self._room(room)
        async with found.lock:
            sources = [found.publishers[p] for p in dict.fromkeys(publishers) if p in found.publishers]
            if not sources:
                raise MediaError("nothing to listen to")
            await self._drop_listener(found, listener)
            pc = RTCPeerConnection(_configuration())
            feeds: list[Feed] = []
            try:
                for source in sources:
                    feed = Feed(source)
                    _opus_only(pc.addTransceiver(feed, direction="sendonly"))
                    feeds.append(feed)
                await pc.setLocalDescription(await pc.createOffer())
            except BaseException:
                for feed in feeds:
                    feed.stop()
                await pc.close()
                raise
            for feed in feeds:
                feed.publisher.feeds.add(feed)
            found.listeners[listener] = Listener(pc, feeds)
            return {"offer": str(pc.localDescription.sdp), "fresh": True}

    async def start(self, room: str, listener: str, answer: str) -> None:
        found = self._room(room)
        async with found.lock:
            subscribed = found.listeners.get(listener)
            if subscribed is None:
                raise MediaError("no such listener")
            if subscribed.pc.signalingState != "have-local-offer":
                raise MediaError("this listener has no offer to answer")
            try:
                await subscribed.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            except Exception as exc:
                raise _refused("malformed SDP answer", exc) from exc

    async def _drop_listener(self, room: Room, key: str) -> None:
        found = room.listeners.pop(key, None)
        if found is None:
            return
        for feed in found.feeds:
            feed.publisher.feeds.discard(feed)
            feed.stop()
        await found.pc.close()

    async def unsubscribe(self, room: str, listener: str) -> None:
        found = self._room(room)
        async with found.lock:
            await self._drop_listener(found, listener)

    async def trickle(self, room: str, peer: str, candidate: dict[str, Any] | None) -> None:
        found = self._room(room)
        publisher, listener = found.publishers.get(peer), found.listeners.get(peer)
        pc = publisher.pc if publisher else listener.pc if listener else None
        if pc is None:
            raise MediaError("no such peer connection")
        if candidate is None:
            return
        if not isinstance(candidate, dict):
            raise MediaError("malformed ICE candidate")
        if candidate.get("candidate") == "":
            return  # the end of the browser's candidates
        parsed = _candidate(candidate)
        try:
            await pc.addIceCandidate(parsed)
        except Exception as exc:
            raise _refused("the ICE candidate was refused", exc) from exc

    async def live(self, room: str) -> list[str]:
        return sorted(key for key, p in self._room(room).publishers.items() if p.live)

    async def aclose(self) -> None:
        for room in list(self.rooms):
            await self.close_room(room)


def _handlers(sfu: Sfu) -> dict[str, Callable[..., Awaitable[Any]]]:
    return {
        "open_room": sfu.open_room, "close_room": sfu.close_room, "publish": sfu.publish,
        "unpublish": sfu.unpublish, "set_forwarding": sfu.set_forwarding, "subscribe": sfu.subscribe,
        "start": sfu.start, "unsubscribe": sfu.unsubscribe, "trickle": sfu.trickle, "live": sfu.live,
        "ping": _ping,
    }


async def _ping() -> int:
    return os.getpid()


class Responder:
    """Writes whole response lines to the protocol's file descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            written = os.write(self.fd, data)
            data = data[written:]


async def _serve_one(handlers: dict[str, Callable[..., Awaitable[Any]]], request: dict[str, Any],
                     out: Responder) -> None:
    rid = request.get("id")
    try:
        handler = handlers.get(str(request.get("op")))
        if handler is None:
            raise MediaError("unknown request")
        result = await handler(**(request.get("args") or {}))
        response: dict[str, Any] = {"id": rid, "result": result}
    except MediaError as exc:
        response = {"id": rid, "error": str(exc)}
    except Exception:
        log.exception("embedded media engine: %s failed", request.get("op"))
        response = {"id": rid, "error": "The media engine could not serve this request."}
    try:
        out.send(response)
    except OSError:  # the server is gone; the read loop ends on its own
        pass


async def serve(out: Responder) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sfu = Sfu()
    handlers = _handlers(sfu)
    tasks: set[asyncio.Task[None]] = set()
    try:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # a line over the limit: skip it
                continue
            if not line:
                break
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except ValueError:
                log.warning("embedded media engine: unreadable request line")
                continue
            if request.get("op") == "shutdown":
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sfu.aclose(), 1.5)
                out.send({"id": request.get("id"), "result": None})
                break
            task = asyncio.ensure_future(_serve_one(handlers, request, out))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        for task in list(tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sfu.aclose(), 1.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="server.media.embedded_worker")
    parser.add_argument("--cpus", default="", help="CPUs to run on, comma-separated")
    args = parser.parse_args(argv)
    if args.cpus:  # before any thread exists, so every thread inherits it
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    # The protocol keeps the real stdout; anything else printed goes to stderr.
    out = Responder(os.dup(1))
    os.dup2(2, 1)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
