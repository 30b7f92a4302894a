"""The media-engine interface: what Parley asks of the engine that carries the audio.

Two implementations, chosen by ``PARLEY_MEDIA_ENGINE``:

* ``janus`` (``server.media.janus_engine.JanusEngine``): Debian's Janus, its VideoRoom
  plugin used as an SFU, for real meetings;
* ``embedded`` (``server.media.embedded.EmbeddedEngine``): an aiortc SFU in a child
  process, for small meetings with nothing to install beyond ``pip``.

The engine knows rooms, publishers and listeners by opaque keys, and channels by name;
it decides nothing. Who may publish, what is forwarded and what each listener hears are
decided by the server (``server.media.policy`` and ``server.media.hub``) before it asks
the engine. Every method may raise ``MediaError`` (a request the engine cannot serve:
unknown room, publisher or listener, malformed SDP or candidate) or ``MediaUnavailable``
(the engine cannot be reached or did not answer in time).

Keys: a room is a session id; a publisher or a listener is one browser connection's key
(a listener and a publisher of the same connection are distinct peer connections).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class MediaError(Exception):
    """A media request that cannot be served (unknown room, publisher or listener,
    malformed SDP or ICE candidate). Its message is safe to show to the browser."""


class MediaUnavailable(Exception):
    """The engine cannot be reached, or did not answer in time."""


@dataclass(frozen=True)
class Subscription:
    """The engine's offer for a listener's peer connection.

    ``fresh``: True when the browser must answer on a new peer connection (closing its
    old one); False when it renegotiates the one it has (same tracks keep playing).
    ``tracks``: the offer's media ids (audio, and video with ``video``) and the
    publisher each one carries."""

    offer: str
    fresh: bool
    tracks: dict[str, str] = field(default_factory=dict)  # mid -> publisher key


def offers_video(sdp: str) -> bool:
    """Does an SDP offer carry video (an ``m=video`` line with a port other than 0)?"""
    return any(line.startswith("m=video ") and not line.startswith("m=video 0 ") for line in sdp.splitlines())


# An ICE candidate as a browser's RTCIceCandidate.toJSON() gives it:
# {"candidate": "candidate:...", "sdpMid": "0", "sdpMLineIndex": 0}; None ends the trickle.
Candidate = dict[str, Any]


class MediaEngine(Protocol):
    name: str  # "janus" or "embedded"

    async def open_room(self, room: str) -> None:
        """Create the room (idempotent)."""

    async def close_room(self, room: str) -> None:
        """Destroy the room with all its publishers and listeners (idempotent)."""

    async def publish(self, room: str, publisher: str, channel: str, offer: str) -> str:
        """Take a browser's SDP offer (audio, optionally with VP8 video) into
        ``channel``; returns the SDP answer. A publisher starts forwarded; a second
        publish with the same key replaces it. Whether video is allowed into the channel
        is the server's decision, taken before (only the floor takes video)."""

    async def unpublish(self, room: str, publisher: str) -> None:
        """Drop a publisher (idempotent)."""

    async def set_forwarding(self, room: str, publisher: str, forwarding: bool) -> None:
        """Forward a publisher's audio and video to its listeners, or stop both at the
        engine, whatever the browser keeps sending."""

    async def subscribe(
        self, room: str, listener: str, publishers: Sequence[str], *, video: bool = False
    ) -> Subscription:
        """Make the listener's subscription exactly these publishers' audio, plus, with
        ``video``, the video of those that publish some (unknown keys are skipped; at
        least one must exist). The browser answers with ``start``."""

    async def start(self, room: str, listener: str, answer: str) -> None:
        """The listener's SDP answer to the latest ``subscribe`` offer."""

    async def unsubscribe(self, room: str, listener: str) -> None:
        """Drop a listener (idempotent)."""

    async def trickle(self, room: str, peer: str, candidate: Candidate | None) -> None:
        """A browser's ICE candidate for one of its peer connections (``peer`` is a
        publisher or a listener key)."""

    async def live(self, room: str) -> set[str]:
        """The publishers whose media is flowing."""

    async def aclose(self) -> None:
        """Close every room and release the engine."""
