"""Run inside a media test's network namespace: one WebRTC peer (aiortc) publishes a
sine tone into a Janus VideoRoom through Parley's Janus client, another subscribes to it,
and the dominant frequency of what the subscriber hears is printed as JSON.

    python -m tests.media.janus_peers JANUS_URL API_SECRET ADMIN_KEY FREQUENCY
"""

from __future__ import annotations

import asyncio
import fractions
import json
import sys
import time
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from server.media.janus import JanusClient

RATE = 48000
FRAME = 960  # 20 ms


class Tone(MediaStreamTrack):  # type: ignore[misc]
    """A microphone that hums one sine tone."""

    kind = "audio"

    def __init__(self, frequency: float) -> None:
        super().__init__()
        self.frequency = frequency
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._pts / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(FRAME) + self._pts) / RATE
        samples = (0.5 * 32767 * np.sin(2 * np.pi * self.frequency * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME
        return frame


def dominant_frequency(samples: np.ndarray[Any, Any], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum[1:])) + 1])


async def main(url: str, secret: str, admin_key: str, frequency: float) -> dict[str, Any]:
    async with JanusClient(url, secret) as client:
        session = await client.create_session()
        room = 5150
        try:
            pub = await session.attach()
            await session.message(pub, {"request": "create", "admin_key": admin_key, "room": room, "pin": "p",
                                        "secret": "s", "audiocodec": "opus", "publishers": 4, "is_private": True})
            joined = await session.message(pub, {"request": "join", "ptype": "publisher", "room": room, "pin": "p",
                                                 "display": "floor"})
            publisher_id = joined["id"]
            speaker = RTCPeerConnection()
            speaker.addTrack(Tone(frequency))
            await speaker.setLocalDescription(await speaker.createOffer())
            published = await session.message(
                pub, {"request": "publish", "audio": True, "video": False},
                jsep={"type": "offer", "sdp": speaker.localDescription.sdp},
            )
            await speaker.setRemoteDescription(RTCSessionDescription(**published["jsep"]))

            # The feed exists for subscribers once the publisher's media is up (ICE, DTLS).
            deadline = time.monotonic() + 15
            while True:
                listed = await session.message(pub, {"request": "listparticipants", "room": room})
                if any(p.get("id") == publisher_id and p.get("publisher") for p in listed["participants"]):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the publisher's media never came up: {listed}")
                await asyncio.sleep(0.1)

            sub = await session.attach()
            offered = await session.message(sub, {"request": "join", "ptype": "subscriber", "room": room, "pin": "p",
                                                  "streams": [{"feed": publisher_id}]})
            listener = RTCPeerConnection()
            heard: list[np.ndarray[Any, Any]] = []
            done = asyncio.Event()
            readers: list[asyncio.Task[None]] = []

            @listener.on("track")  # type: ignore[misc]
            def on_track(track: MediaStreamTrack) -> None:
                async def read() -> None:
                    got = 0
                    while got < RATE * 2:  # two seconds
                        frame = await track.recv()
                        pcm = frame.to_ndarray().astype(np.float64).reshape(-1, len(frame.layout.channels))[:, 0]
                        heard.append(pcm)
                        got += len(pcm)
                    done.set()

                readers.append(asyncio.ensure_future(read()))

            await listener.setRemoteDescription(RTCSessionDescription(**offered["jsep"]))
            await listener.setLocalDescription(await listener.createAnswer())
            await session.message(sub, {"request": "start"}, jsep={"type": "answer", "sdp": listener.localDescription.sdp})
            await asyncio.wait_for(done.wait(), 20)
            samples = np.concatenate(heard)[RATE // 2:]  # past the decoder's start
            result = {"frequency": dominant_frequency(samples, RATE), "samples": len(samples)}
            await speaker.close()
            await listener.close()
            await session.message(pub, {"request": "destroy", "room": room, "secret": "s"})
            return result
        finally:
            await session.destroy()


if __name__ == "__main__":
    out = asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
    print(json.dumps(out))
