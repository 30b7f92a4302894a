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

The SFU: a publisher is a peer connection receiving one Opus track, and optionally one
VP8 video track (a floor speaker's camera); a listener is a peer connection the engine
offers to, with one send-only audio transceiver per publisher it hears, and with video
one send-only video transceiver per publisher that sends video. Audio is forwarded as it
arrives, without decoding or re-encoding: each Opus payload the publisher's receiver gets
is handed (as one shared ``av.Packet``) to a small queue per listener stream, which that
listener's RTP sender packs, encrypts and sends.

Video is forwarded without decoding either, a whole frame at a time: aiortc's receiver
keeps its own work (NACKs and retransmissions, reassembling a frame from its RTP
packets, a PLI when packets are lost) but its jitter buffer hands each complete VP8
frame to the publisher's listeners instead of to the decoder; each listener's sender
packs it afresh (its own VP8 payload descriptor, sequence numbers and timestamps). A
listener stream starts at a keyframe and, after a frame it had to drop, waits for the
next one; the engine asks the publisher for one (an RTCP PLI, at most every
``KEYFRAME_INTERVAL`` seconds) whenever a stream waits, and whenever a listener's
browser asks for one.

Forwarding off drops a publisher's payloads (audio and video) at the receiver, so
nothing of it leaves the engine whatever the browser sends.
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
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket
from aiortc.sdp import candidate_from_sdp
from av.packet import Packet
from av.stream import Stream

from server.media.engine import MediaError

log = logging.getLogger("parley.media.embedded")

OPUS_RATE = 48000
TIME_BASE = fractions.Fraction(1, OPUS_RATE)
VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
QUEUE_PACKETS = 10  # per listener stream: 200 ms of audio; older packets are dropped
QUEUE_FRAMES = 15  # per listener video stream: beyond it the stream waits for a keyframe
KEYFRAME_INTERVAL = 0.5  # seconds: the least time between two keyframe requests to a publisher
VIDEO_JITTER_PACKETS = 512  # aiortc's own capacity for a video receiver
MAX_LINE = 4 * 1024 * 1024


def _configuration() -> RTCConfiguration:
    # No STUN or TURN: aiortc's default would ask Google's STUN server for our address.
    # The engine answers with its host candidates; browsers behind NAT reach it through
    # their own TURN relay.
    return RTCConfiguration(iceServers=[])


def _opus_only(transceiver: RTCRtpTransceiver) -> None:
    opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"]
    transceiver.setCodecPreferences(opus)


def _vp8_only(transceiver: RTCRtpTransceiver) -> None:
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() in ("video/vp8", "video/rtx")]
    transceiver.setCodecPreferences(vp8)


class Unwrap:
    """RTP timestamps (32 bits, wrapping) as a count from the first one."""

    def __init__(self) -> None:
        self._origin: int | None = None
        self._last = 0
        self._wraps = 0

    def __call__(self, ts: int) -> int:
        if self._origin is None:
            self._origin = self._last = ts
        elif ts < self._last and self._last - ts > 1 << 31:
            self._wraps += 1 << 32
        elif ts > self._last and ts - self._last > 1 << 31:  # a late packet from before a wrap
            ts -= 1 << 32
        self._last = ts & 0xFFFFFFFF
        return self._wraps + ts - self._origin


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


class VideoFeed(MediaStreamTrack):
    """One listener's video stream of one publisher: whole VP8 frames to send, newest
    last. It starts at a keyframe, and after a frame it had to drop (its queue full, or
    forwarding switched off and on) it waits for the next keyframe."""

    kind = "video"

    def __init__(self, publisher: Publisher) -> None:
        super().__init__()
        self.publisher = publisher
        self.waiting = True  # for a keyframe
        self._frames: deque[Packet[Stream]] = deque()
        self._ready = asyncio.Event()

    def push(self, frame: Packet[Stream], keyframe: bool) -> bool:
        """Queue a frame; False when this stream waits for a keyframe."""
        if self.waiting and not keyframe:
            return False
        if len(self._frames) >= QUEUE_FRAMES:  # a slow listener: start again at a keyframe
            self.flush()
            if not keyframe:
                return False
        self.waiting = False
        self._frames.append(frame)
        self._ready.set()
        return True

    def flush(self) -> None:
        self._frames.clear()
        self.waiting = True

    async def recv(self) -> Packet[Stream]:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        return self._frames.popleft()

    def stop(self) -> None:
        super().stop()
        self._ready.set()


class FrameTap(JitterBuffer):
    """A video receiver's jitter buffer that hands each complete frame to the publisher
    instead of to aiortc's decoder (which then never decodes anything)."""

    def __init__(self, publisher: Publisher) -> None:
        super().__init__(capacity=VIDEO_JITTER_PACKETS, is_video=True)
        self.publisher = publisher

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        self.publisher.video_ssrc = packet.ssrc
        lost, frame = super().add(packet)
        if lost:  # frames were dropped: every stream waits for a keyframe (aiortc asks for one)
            for feed in self.publisher.video_feeds:
                feed.flush()
        if frame is not None:
            self.publisher.on_frame(frame)
        return lost, None


@dataclass
class Publisher:
    pc: RTCPeerConnection
    channel: str
    forwarding: bool = True
    live: bool = False  # a first packet has arrived
    opus: int | None = None  # the negotiated Opus payload type
    feeds: set[Feed] = field(default_factory=set)
    video: RTCRtpTransceiver | None = None  # its camera, if it sends one
    video_feeds: set[VideoFeed] = field(default_factory=set)
    video_ssrc: int | None = None
    _clock: Unwrap = field(default_factory=Unwrap)
    _video_clock: Unwrap = field(default_factory=Unwrap)
    _asked: float = 0.0  # when a keyframe was last asked for

    def on_rtp(self, packet: RtpPacket) -> None:
        """One RTP packet from the browser (decrypted): fan its Opus payload out."""
        if packet.payload_type != self.opus or not packet.payload:
            return
        self.live = True
        if not self.forwarding or not self.feeds:
            return
        pts = self._clock(packet.timestamp)
        if pts < 0:
            return
        out = Packet(packet.payload)
        out.pts = pts
        out.time_base = TIME_BASE
        for feed in self.feeds:
            feed.push(out)

    def on_frame(self, frame: JitterFrame) -> None:
        """One whole VP8 frame from the browser: fan it out as it is."""
        if not self.forwarding or not self.video_feeds or not frame.data:
            return
        pts = self._video_clock(frame.timestamp)
        if pts < 0:
            return
        keyframe = not frame.data[0] & 0x01  # the VP8 frame tag's P bit: 0 for a keyframe
        out = Packet(frame.data)
        out.pts = pts
        out.time_base = VIDEO_TIME_BASE
        waiting = False
        for feed in self.video_feeds:
            if not feed.push(out, keyframe):
                waiting = True
        if waiting:
            self.ask_keyframe()

    def ask_keyframe(self) -> None:
        """Ask the browser for a keyframe (an RTCP PLI), at most every KEYFRAME_INTERVAL."""
        if self.video is None or self.video_ssrc is None or not self.forwarding:
            return
        now = asyncio.get_running_loop().time()
        if now - self._asked < KEYFRAME_INTERVAL:
            return
        self._asked = now
        task = asyncio.ensure_future(self.video.receiver._send_rtcp_pli(self.video_ssrc))
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    def set_forwarding(self, forwarding: bool) -> None:
        self.forwarding = forwarding
        if not forwarding:
            for feed in self.feeds:
                feed.flush()
        for vfeed in self.video_feeds:  # off: nothing more; on: start again at a keyframe
            vfeed.flush()
        if forwarding and self.video_feeds:
            self._asked = 0.0
            self.ask_keyframe()


_BACKGROUND: set[asyncio.Task[Any]] = set()


@dataclass
class Listener:
    pc: RTCPeerConnection
    feeds: list[Feed | VideoFeed]


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
        # Its camera: the first video m-line that offers VP8 (and only VP8 is taken).
        video = next((t for t in pc.getTransceivers() if t.kind == "video"
                      and any(c.mimeType.lower() == "video/vp8" for c in t._codecs)), None)
        if video is not None:
            vp8 = [c for c in video._codecs if c.mimeType.lower() == "video/vp8"][:1]
            video._codecs = vp8 + [c for c in video._codecs if c.mimeType.lower() == "video/rtx"
                                   and c.parameters.get("apt") == vp8[0].payloadType]
        for t in pc.getTransceivers():
            if t is not audio[0] and t is not video:
                t.direction = "inactive"
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        receiver = audio[0].receiver
        opus = [c.payloadType for c in audio[0]._codecs if c.mimeType.lower() == "audio/opus"]
        if not opus:
            raise MediaError("the SDP offer has no Opus audio")
        found = Publisher(pc, channel, opus=opus[0], video=video)

        async def tap(packet: RtpPacket, arrival_time_ms: int) -> None:
            # In place of aiortc's receiver path (jitter buffer, decoder thread): the
            # payload is forwarded as it is.
            found.on_rtp(packet)

        receiver._handle_rtp_packet = tap  # type: ignore[method-assign]
        if video is not None:
            # aiortc's receiver keeps its NACKs and PLIs; its jitter buffer forwards
            # whole frames instead of decoding them.
            setattr(video.receiver, "_RTCRtpReceiver__jitter_buffer", FrameTap(found))  # noqa: B010
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
        for vfeed in list(found.video_feeds):
            vfeed.stop()
        found.video_feeds.clear()
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

    async def subscribe(self, room: str, listener: str, publishers: list[str],
                        video: bool = False) -> dict[str, Any]:
        """A new peer connection for the listener (its old one, if any, is closed), with
        one audio stream per known publisher, in order, and with ``video`` one video
        stream per publisher that sends video; returns the engine's offer."""
        found = self._room(room)
        async with found.lock:
            keys = [p for p in dict.fromkeys(publishers) if p in found.publishers]
            if not keys:
                raise MediaError("nothing to listen to")
            await self._drop_listener(found, listener)
            pc = RTCPeerConnection(_configuration())
            feeds: list[Feed | VideoFeed] = []
            streams: list[tuple[RTCRtpTransceiver, str]] = []
            try:
                for key in keys:
                    source = found.publishers[key]
                    feed = Feed(source)
                    sending = pc.addTransceiver(feed, direction="sendonly")
                    _opus_only(sending)
                    feeds.append(feed)
                    streams.append((sending, key))
                    if video and source.video is not None:
                        vfeed = VideoFeed(source)
                        sending = pc.addTransceiver(vfeed, direction="sendonly")
                        _vp8_only(sending)
                        self._keyframes_asked(sending.sender, source)
                        feeds.append(vfeed)
                        streams.append((sending, key))
                await pc.setLocalDescription(await pc.createOffer())
            except BaseException:
                for each in feeds:
                    each.stop()
                await pc.close()
                raise
            for each in feeds:
                if isinstance(each, VideoFeed):
                    each.publisher.video_feeds.add(each)
                else:
                    each.publisher.feeds.add(each)
            found.listeners[listener] = Listener(pc, feeds)
            tracks = {str(t.mid): key for t, key in streams}
            return {"offer": str(pc.localDescription.sdp), "fresh": True, "tracks": tracks}

    @staticmethod
    def _keyframes_asked(sender: RTCRtpSender, source: Publisher) -> None:
        """A listener's browser asking for a keyframe (PLI, FIR) asks the publisher:
        the engine has no encoder of its own."""
        sender._send_keyframe = source.ask_keyframe  # type: ignore[method-assign]

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
            if isinstance(feed, VideoFeed):
                feed.publisher.video_feeds.discard(feed)
            else:
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
