"""Room fan-out: one encoded frame, written to every recipient's socket in one pass.

python-socketio's ``AsyncManager.emit`` makes an asyncio task per recipient, each of
which wakes that socket's Engine.IO writer task through ``asyncio.wait_for`` (one more
task per message on Python 3.11) before aiohttp frames the text again. For a 300-person
room that was about 50 us of server CPU per recipient. Here the Socket.IO packet is
encoded once, the WebSocket frame is built once (a server's frames are unmasked, so the
bytes are the same for every recipient) and written straight into each socket's
transport, without a task or an await.

Ordering: a socket's own Engine.IO writer still sends what goes through its queue
(acknowledgements, pings, the close packet). A frame is written directly only while that
writer is idle, i.e. parked on an empty queue; otherwise the packet joins the queue
behind what is already there. Polling sockets always use their queue.

Slow consumers: a socket whose transport buffer or queue passes ``Limits`` is dropped
(the TCP connection is aborted), so a client that stops reading cannot grow the server's
memory without bound. It reconnects and catches up by sequence number.

This relies on python-engineio internals (``AsyncSocket.queue``, ``upgraded``, the
``_async['websocket']`` driver); tests/realtime/test_fanout.py checks their shape.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web
from engineio import packet as eio_packet
from engineio.async_drivers.aiohttp import WebSocket as EioAiohttpWebSocket

log = logging.getLogger("parley.realtime.fanout")

WS_TEXT_FIN = 0x81


@dataclass(frozen=True)
class Limits:
    """How far one socket may fall behind before it is dropped. A socket that stops
    reading holds at most about the transport's high-water mark (64 KiB) in bytes plus
    ``max_queued`` references to packets shared with every other recipient."""

    # Bytes waiting in the socket's transport (written but not yet taken by the kernel).
    max_buffer_bytes: int = 1024 * 1024
    # Engine.IO packets waiting in the socket's queue (polling, or behind its writer).
    max_queued: int = 1000


def ws_text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (RFC 6455 5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", WS_TEXT_FIN, n)
    elif n < 65536:
        header = struct.pack("!BBH", WS_TEXT_FIN, 126, n)
    else:
        header = struct.pack("!BBQ", WS_TEXT_FIN, 127, n)
    return header + payload


class Route:
    """Where a WebSocket-transport socket's bytes go: its aiohttp response and transport."""

    __slots__ = ("transport", "ws")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport) -> None:
        self.ws = ws
        self.transport = transport


class FastWebSocket(EioAiohttpWebSocket):  # type: ignore[misc]
    """Engine.IO's aiohttp WebSocket driver, plus two changes.

    The response is made without permessage-deflate: a deflate context costs tens of
    KiB per socket, and room messages are small. And while the socket lives, its
    transport is registered in ``routes`` under its Engine.IO sid for ``Fanout``.
    """

    def __init__(self, routes: dict[str, Route], handler: Any, server: Any) -> None:
        super().__init__(handler, server)
        self._routes = routes

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request: web.Request = environ["aiohttp.request"]
        sock = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        self._sock = sock
        await sock.prepare(request)
        self.environ = environ
        # The handler is the Engine.IO socket's bound ``_websocket_handler``.
        sid = getattr(getattr(self.handler, "__self__", None), "sid", None)
        transport = request.transport
        route = Route(sock, transport) if isinstance(sid, str) and isinstance(transport, asyncio.Transport) else None
        if route is not None:
            self._routes[str(sid)] = route
        try:
            await self.handler(self)
        finally:
            if route is not None and self._routes.get(str(sid)) is route:
                del self._routes[str(sid)]
        return sock


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
        self.routes: dict[str, Route] = {}
        self.dropped = 0  # sockets dropped for falling behind, since start
        self._dropping: set[str] = set()  # dropped, not closed yet: skipped, not dropped again
        self._eio: Any = None

    def install(self, eio: Any) -> None:
        """Take over the Engine.IO server's WebSocket driver and turn off HTTP
        compression of polling responses (it is per response, and room messages are small)."""
        # The server itself, not its socket table: ``eio.disconnect()`` (all sockets)
        # replaces the table, and a kept reference would stop every later delivery.
        self._eio = eio
        eio._async = {**eio._async, "websocket": partial(FastWebSocket, self.routes)}
        eio.http_compression = False

    def deliver(self, eio_sids: Iterable[str], text: str, *, one_shot: bool = False) -> int:
        """Send the Engine.IO message ``text`` (Socket.IO packet, already encoded) to each
        sid; returns how many sockets it was written or queued to."""
        limits = self.limits
        frame: bytes | None = None
        pkt: Any = None
        sockets, routes = self._eio.sockets, self.routes
        sent = 0
        for eio_sid in eio_sids:
            s = sockets.get(eio_sid)
            if s is None or s.closed or s.closing or eio_sid in self._dropping:
                continue
            queue = s.queue
            route = routes.get(eio_sid)
            # Direct only while the socket's own writer is parked on an empty queue (so
            # nothing it already took can be overtaken) and the kernel is taking what we
            # write. Otherwise the shared packet joins the queue: a backlog held as one
            # object for all sockets costs a pointer each, where bytes left in a
            # transport are a copy per socket.
            if (
                route is not None
                and s.upgraded
                and not queue._queue
                and queue._getters
                and not route.transport.get_write_buffer_size()
            ):
                transport = route.transport
                if transport.is_closing() or route.ws.closed:
                    continue
                if frame is None:
                    frame = ws_text_frame(("4" + text).encode())
                # The buffer was empty, so at most this one frame can be left in it: the
                # byte bound is enforced on the queued path, where backlogs build up.
                transport.write(frame)
            else:
                if queue.qsize() >= limits.max_queued or (
                    route is not None and route.transport.get_write_buffer_size() > limits.max_buffer_bytes
                ):
                    self._drop(s, route, "queue")
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

    def _drop(self, s: Any, route: Route | None, why: str) -> None:
        self.dropped += 1
        if len(self._dropping) > 100:
            self._dropping = {sid for sid in self._dropping if sid in self._eio.sockets}
        self._dropping.add(s.sid)
        log.warning("dropping socket %s: it fell behind (%s limit)", s.sid, why)
        if route is not None:
            # Aborting the TCP connection ends Engine.IO's read loop, which closes the
            # socket through its usual path (disconnect handlers included).
            route.transport.abort()
            return
        # A polling socket has no connection to abort between requests: close it, and
        # wake a pending long-poll with the queue's end marker.
        task = asyncio.get_running_loop().create_task(s.close(wait=False, abort=True))
        s.queue.put_nowait(None)
        _background.add(task)
        task.add_done_callback(_background.discard)


_background: set[asyncio.Task[Any]] = set()
