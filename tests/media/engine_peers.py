"""Run inside a media test's network namespace: a media engine (Janus, or the embedded
one) serves a floor speaker (one tone), a booth interpreter (another tone) and two
listeners, one on the floor and one on the booth; then the floor's forwarding is
switched off. Prints what each listener heard as JSON.

    python -m tests.media.engine_peers janus JANUS_URL API_SECRET ADMIN_KEY [SCENARIO]
    python -m tests.media.engine_peers embedded [SCENARIO]

SCENARIO: ``main`` (the default), ``handover`` (a booth's interpreters swap) or
``refusals`` (malformed SDP and candidates while a listener listens).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from server.media.embedded import EmbeddedEngine
from server.media.engine import MediaEngine, MediaError
from server.media.janus import JanusClient
from server.media.janus_engine import JanusEngine
from tests.media.janus_peers import RATE, Tone, dominant_frequency

FLOOR_HZ, BOOTH_HZ = 440.0, 660.0


class Ear:
    """A listener's peer connection; keeps (time, samples) of what it hears."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection()
        self.heard: list[tuple[float, np.ndarray[Any, Any]]] = []
        self._readers: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        async def read() -> None:
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                pcm = frame.to_ndarray().astype(np.float64).reshape(-1, len(frame.layout.channels))[:, 0]
                self.heard.append((time.monotonic(), pcm))

        self._readers.append(asyncio.ensure_future(read()))

    def window(self, start: float, end: float) -> np.ndarray[Any, Any]:
        parts = [pcm for at, pcm in self.heard if start <= at < end]
        return np.concatenate(parts) if parts else np.zeros(0)


def energy_at(samples: np.ndarray[Any, Any], hz: float) -> float:
    """Spectral magnitude within 20 Hz of ``hz`` (normalised by length)."""
    if not len(samples):
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) / len(samples)
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    return float(spectrum[(freqs > hz - 20) & (freqs < hz + 20)].max())


def level(samples: np.ndarray[Any, Any]) -> float:
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


async def speaker(engine: MediaEngine, room: str, key: str, channel: str, hz: float) -> RTCPeerConnection:
    pc = RTCPeerConnection()
    pc.addTrack(Tone(hz))
    await pc.setLocalDescription(await pc.createOffer())
    answer = await engine.publish(room, key, channel, pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return pc


async def listener(engine: MediaEngine, room: str, key: str, publishers: list[str]) -> Ear:
    ear = Ear()
    offered = await engine.subscribe(room, key, publishers)
    await ear.pc.setRemoteDescription(RTCSessionDescription(sdp=offered.offer, type="offer"))
    await ear.pc.setLocalDescription(await ear.pc.createAnswer())
    await engine.start(room, key, ear.pc.localDescription.sdp)
    return ear


async def until_live(engine: MediaEngine, room: str, publishers: set[str], timeout: float = 15.0) -> None:
    """Wait until these publishers' media is up (their feeds exist for subscribers)."""
    deadline = time.monotonic() + timeout
    while await engine.live(room) != publishers:
        if time.monotonic() > deadline:
            raise RuntimeError("publishers never came up")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def engine_room(
    engine_spec: list[str], room: str, *, cpus: set[int] | None = None
) -> AsyncIterator[tuple[MediaEngine, list[RTCPeerConnection]]]:
    """An engine (``["janus", URL, SECRET, ADMIN_KEY]`` or ``["embedded"]``, whose child
    runs on ``cpus``) with ``room`` open; the peer connections put in the list are
    closed, and the engine closed, on the way out."""
    async with AsyncExitStack() as stack:
        engine: MediaEngine
        if engine_spec[0] == "janus":
            client = await stack.enter_async_context(JanusClient(engine_spec[1], engine_spec[2]))
            engine = JanusEngine(client, admin_key=engine_spec[3])
        elif engine_spec[0] == "embedded":
            engine = EmbeddedEngine(cpus=cpus)
        else:
            raise SystemExit(f"unknown engine {engine_spec[0]!r}")
        peers: list[RTCPeerConnection] = []
        try:
            await engine.open_room(room)
            yield engine, peers
        finally:
            for pc in peers:
                await pc.close()
            await engine.aclose()


async def main(engine_spec: list[str]) -> dict[str, Any]:
    room = "session-1"
    async with engine_room(engine_spec, room) as (engine, peers):
        peers.append(await speaker(engine, room, "delegate", "floor", FLOOR_HZ))
        peers.append(await speaker(engine, room, "interpreter-es", "es", BOOTH_HZ))
        await until_live(engine, room, {"delegate", "interpreter-es"})
        on_floor = await listener(engine, room, "listener-floor", ["delegate"])
        on_booth = await listener(engine, room, "listener-es", ["interpreter-es"])
        peers += [on_floor.pc, on_booth.pc]
        await asyncio.sleep(3.0)
        t_on = time.monotonic()
        await engine.set_forwarding(room, "delegate", False)  # the floor ends
        cut = time.monotonic()
        await asyncio.sleep(2.5)
        end = time.monotonic()
        return {
            "floor_hz": dominant_frequency(on_floor.window(t_on - 2.0, t_on), RATE),
            "booth_hz": dominant_frequency(on_booth.window(t_on - 2.0, t_on), RATE),
            "floor_level_before": level(on_floor.window(t_on - 2.0, t_on)),
            "floor_level_after": level(on_floor.window(cut + 1.0, end)),
            "booth_level_after": level(on_booth.window(cut + 1.0, end)),
        }


ACTIVE_HZ, STANDBY_HZ = 660.0, 880.0


async def handover(engine_spec: list[str]) -> dict[str, Any]:
    """A booth with two interpreters, the standby connected but not forwarded; the
    listener subscribes to both; the hand-over switches forwarding only."""
    room = "session-2"
    async with engine_room(engine_spec, room) as (engine, peers):
        peers.append(await speaker(engine, room, "interpreter-1", "es", ACTIVE_HZ))
        peers.append(await speaker(engine, room, "interpreter-2", "es", STANDBY_HZ))
        await until_live(engine, room, {"interpreter-1", "interpreter-2"})
        await engine.set_forwarding(room, "interpreter-2", False)  # the standby
        ear = await listener(engine, room, "listener-es", ["interpreter-1", "interpreter-2"])
        peers.append(ear.pc)
        await asyncio.sleep(3.0)
        switched = time.monotonic()
        await engine.set_forwarding(room, "interpreter-2", True)
        await engine.set_forwarding(room, "interpreter-1", False)
        took = time.monotonic() - switched
        await asyncio.sleep(2.5)
        end = time.monotonic()
        before, after = ear.window(switched - 2.0, switched), ear.window(switched + 1.0, end)
        return {
            "switch_seconds": took,
            "before": {"active": energy_at(before, ACTIVE_HZ), "standby": energy_at(before, STANDBY_HZ)},
            "after": {"active": energy_at(after, ACTIVE_HZ), "standby": energy_at(after, STANDBY_HZ)},
        }


async def refusals(engine_spec: list[str]) -> dict[str, Any]:
    """A floor speaker and a listener; meanwhile malformed offers, answers and
    candidates are sent. Each is refused (MediaError), and the listener hears on."""
    room = "session-3"
    async with engine_room(engine_spec, room) as (engine, peers):
        peers.append(await speaker(engine, room, "delegate", "floor", FLOOR_HZ))
        await until_live(engine, room, {"delegate"})
        ear = await listener(engine, room, "listener-floor", ["delegate"])
        peers.append(ear.pc)
        await asyncio.sleep(1.0)
        started = time.monotonic()
        garbage_sdp = "v=0\r\no=- garbage\r\nm=audio nonsense\r\n"
        bad_candidates: list[dict[str, Any]] = [
            {"candidate": "candidate:garbage", "sdpMid": "0", "sdpMLineIndex": 0},
            {"candidate": "candidate:1 one udp many 10.0.0.1 port typ host", "sdpMid": "0", "sdpMLineIndex": 0},
            {"candidate": 42, "sdpMid": "0"},
        ]
        attempts: list[tuple[str, Any]] = [
            ("publish", engine.publish(room, "intruder", "es", garbage_sdp)),
            ("publish_empty", engine.publish(room, "intruder", "es", "")),
        ]
        refused: dict[str, str] = {}
        for name, attempt in attempts:
            try:
                await attempt
                refused[name] = ""
            except MediaError as exc:
                refused[name] = str(exc)
        # A second listener whose answer is garbage.
        await engine.subscribe(room, "listener-2", ["delegate"])
        try:
            await engine.start(room, "listener-2", garbage_sdp)
            refused["start"] = ""
        except MediaError as exc:
            refused["start"] = str(exc)
        for n, candidate in enumerate(bad_candidates):
            try:
                await engine.trickle(room, "listener-floor", candidate)
                refused[f"candidate_{n}"] = ""
            except MediaError as exc:
                refused[f"candidate_{n}"] = str(exc)
        await engine.trickle(room, "listener-floor", None)  # the end of candidates: fine
        await asyncio.sleep(2.0)
        end = time.monotonic()
        heard = ear.window(started + 0.5, end)
        return {
            "refused": refused,
            "floor_hz": dominant_frequency(heard, RATE) if len(heard) else 0.0,
            "level_after": level(heard),
            "seconds_heard": len(heard) / RATE,
            "window_seconds": end - (started + 0.5),
        }


SCENARIOS = {"main": main, "handover": handover, "refusals": refusals}

if __name__ == "__main__":
    args = sys.argv[1:]
    spec = args[:4] if args[:1] == ["janus"] else args[:1]
    scenario = SCENARIOS[args[len(spec)] if len(args) > len(spec) else "main"]
    print(json.dumps(asyncio.run(scenario(spec))))
