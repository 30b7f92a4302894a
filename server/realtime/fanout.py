"""Room fan-out: one encoded frame, written to every recipient's socket in one pass.

python-socketio's ``AsyncManager.emit`` makes an asyncio task per recipient, each of
which wakes that socket's Engine.IO writer task through ``asyncio.wait_for`` (one more
task per message on Python 3.11) before aiohttp frames the text again. For a 300-person
room that was about 50 us of server CPU per recipient. Here the Socket.IO packet is
encoded once, the WebSocket frame is built once (a server's frames are unmasked, so the
bytes are the same for every recipient) and written straight into each socket's
transport, without a task or an await.

WebSocket sockets are ``LeanSocket``s (server/realtime/engine.py), which write
everything they send straight into their transport, so a direct write keeps the order.
Polling sockets, and sockets of a plain python-engineio server, get the packet through
their own queue.

Slow consumers: a socket whose transport buffer or queue passes ``Limits`` is dropped
(the TCP connection is aborted), so a client that stops reading cannot grow the server's
memory without bound. It reconnects and catches up by sequence number.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engineio import packet as eio_packet

from server.realtime.engine import LeanSocket, ws_text_frame

log = logging.getLogger("parley.realtime.fanout")

__all__ = ["Fanout", "Limits", "OneShotPacket", "ws_text_frame"]


@dataclass(frozen=True)
class Limits:
    """How far one socket may fall behind before it is dropped. A socket that stops
    reading holds at most about ``max_buffer_bytes`` plus one message in its transport,
    or ``max_queued`` references to packets shared with every other recipient."""

    # Bytes waiting in the socket's transport (written but not yet taken by the kernel).
    max_buffer_bytes: int = 1024 * 1024
    # Engine.IO packets waiting in the socket's queue (polling sockets).
    max_queued: int = 1000


class OneShotPacket(eio_packet.Packet):  # type: ignore[misc]
    """A packet for one socket that lets go of its payload once encoded.

    Engine.IO's writer keeps its last packet bound until the next one arrives; for a
    join acknowledgement carrying the room's whole state that is O(room) bytes held
    per socket, O(room²) in all. Encoded once, this packet drops its data."""

    def encode(self, b64: bool = False) -> Any:
        encoded = super().encode(b64)
        self.data = None
        self.encode_cache = None
        return encoded


class Fanout:
    """Delivers one encoded Engine.IO message to many sockets of one Engine.IO server."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.dropped = 0  # sockets dropped for falling behind, since start
        self._dropping: set[str] = set()  # dropped, not closed yet: skipped, not dropped again
        self._eio: Any = None

    def install(self, eio: Any) -> None:
        # The server itself, not its socket table: ``eio.disconnect()`` (all sockets)
        # replaces the table, and a kept reference would stop every later delivery.
        self._eio = eio

    def deliver(self, eio_sids: Iterable[str], text: str, *, one_shot: bool = False) -> int:
        """Send the Engine.IO message ``text`` (Socket.IO packet, already encoded) to each
        sid; returns how many sockets it was written or queued to."""
        max_bytes = self.limits.max_buffer_bytes
        frame: bytes | None = None
        pkt: Any = None
        sockets = self._eio.sockets
        sent = 0
        for eio_sid in eio_sids:
            s = sockets.get(eio_sid)
            if s is None or s.closed or s.closing or eio_sid in self._dropping:
                continue
            if type(s) is LeanSocket:
                route = s.route
                if route is None:
                    continue  # its WebSocket is not open yet, or already closed
                transport = route.transport
                if transport.is_closing():
                    continue
                if transport.get_write_buffer_size() > max_bytes:
                    self._drop(s, "buffer")
                    continue
                if frame is None:
                    frame = ws_text_frame(("4" + text).encode())
                transport.write(frame)
            else:
                queue = s.queue
                if queue.qsize() >= self.limits.max_queued:
                    self._drop(s, "queue")
                    continue
                if one_shot:
                    queue.put_nowait(OneShotPacket(eio_packet.MESSAGE, text))
                else:
                    if pkt is None:
                        # One packet object for all: it caches its encoding.
                        pkt = eio_packet.Packet(eio_packet.MESSAGE, text)
                    queue.put_nowait(pkt)
            sent += 1
        return sent

    def _drop(self, s: Any, why: str) -> None:
        self.dropped += 1
        if len(self._dropping) > 100:
            self._dropping = {sid for sid in self._dropping if sid in self._eio.sockets}
        self._dropping.add(s.sid)
        log.warning("dropping socket %s: it fell behind (%s limit)", s.sid, why)
        if isinstance(s, LeanSocket):
            # Aborting the TCP connection ends the socket's read loop, which closes it
            # through the usual path (disconnect handlers included).
            s.abort()
            return
        # A polling socket has no connection to abort between requests: close it, and
        # wake a pending long-poll with the queue's end marker.
        task = asyncio.get_running_loop().create_task(s.close(wait=False, abort=True))
        s.queue.put_nowait(None)
        _background.add(task)
        task.add_done_callback(_background.discard)


_background: set[asyncio.Task[Any]] = set()
