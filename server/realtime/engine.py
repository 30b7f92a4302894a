"""A lean Engine.IO server for WebSocket clients.

Parley's browsers connect over WebSocket directly (``transports: ["websocket"]``). For
such a socket, python-engineio keeps a writer task and an ``asyncio.Queue``, starts one
more task for every message it reads (``ensure_future`` + ``wait_for``), one task per
ping cycle, and a monitoring task that wakes ``N / ping_timeout`` times a second. Its
close waits up to aiohttp's 10 s close handshake. For a room of hundreds that is
kilobytes and tens of microseconds per socket, and a graceful stop that takes 10 s.

Here a socket that connects over WebSocket is a ``LeanSocket``:

* what it sends is written straight into its TCP transport, in order, without a task
  or a queue (the transport buffers; ``Fanout`` drops a socket whose buffer passes its
  limit, so a reader that stops cannot grow memory without end);
* its read loop is the aiohttp request's own task, with aiohttp's receive timeout;
* its pings are a timer each (python-engineio starts a task per ping cycle);
* closing writes the Engine.IO close packet and a WebSocket close frame and closes
  the transport: the client sees the close at once, and a graceful stop is quick.

Polling clients, and a polling client that upgrades, keep python-engineio's own socket
(the library's path, which Parley's browser never takes). No library offers this, and
python-engineio has no hook for the socket class, so the WebSocket connect is written
here; it relies on python-engineio internals (pinned in pyproject.toml), which
tests/realtime/test_engine.py checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from typing import Any

import engineio
import socketio
from aiohttp import WSMsgType, web
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_drivers.aiohttp import WebSocket as EioAiohttpWebSocket
from engineio.async_socket import AsyncSocket

log = logging.getLogger("parley.realtime.engine")

WS_TEXT_FIN = 0x81
WS_BINARY_FIN = 0x82
WS_CLOSE_NORMAL = b"\x88\x02" + struct.pack("!H", 1000)
# Polling sockets (python-engineio's own) are checked for a missed pong this often.
POLLING_CHECK_SECONDS = 5.0


def ws_frame(payload: bytes, opcode: int = WS_TEXT_FIN) -> bytes:
    """An unmasked, final WebSocket frame (RFC 6455 5.2), as a server sends it."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", opcode, n)
    elif n < 65536:
        header = struct.pack("!BBH", opcode, 126, n)
    else:
        header = struct.pack("!BBQ", opcode, 127, n)
    return header + payload


def ws_text_frame(payload: bytes) -> bytes:
    return ws_frame(payload, WS_TEXT_FIN)


class Route:
    """Where a WebSocket socket's bytes go: its aiohttp response and TCP transport."""

    __slots__ = ("transport", "ws")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport) -> None:
        self.ws = ws
        self.transport = transport


class FastWebSocket(EioAiohttpWebSocket):  # type: ignore[misc]
    """Engine.IO's aiohttp WebSocket driver, made without permessage-deflate: a deflate
    context costs tens of KiB per socket, and room messages are small."""

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request: web.Request = environ["aiohttp.request"]
        sock = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        self._sock = sock
        await sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return sock


class LeanSocket(AsyncSocket):  # type: ignore[misc]
    """An Engine.IO socket that connected over WebSocket (see the module's docstring)."""

    def __init__(self, server: LeanEngine, sid: str) -> None:
        # python-engineio's BaseSocket state, without the queue: it is made only if a
        # packet must wait for the WebSocket (the OPEN packet, before the handshake).
        self.server = server
        self.sid = sid
        self._queue: asyncio.Queue[Any] | None = None
        self.last_ping: float | None = time.time()
        self.connected = False
        self.upgrading = False
        self.upgraded = False
        self.closing = False
        self.closed = False
        self.session: dict[str, Any] = {}
        self.route: Route | None = None
        self._ping_timer: asyncio.TimerHandle | None = None

    @property
    def queue(self) -> asyncio.Queue[Any]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        return self._queue

    @queue.setter
    def queue(self, value: asyncio.Queue[Any]) -> None:
        self._queue = value

    # ---- sending ----------------------------------------------------------------------

    def write(self, frame: bytes) -> bool:
        """Write one whole WebSocket frame; False when the connection is going away."""
        route = self.route
        if route is None or route.transport.is_closing():
            return False
        route.transport.write(frame)
        return True

    def send_now(self, pkt: Any) -> None:
        if self.closed:
            return
        if self.route is None:
            self.queue.put_nowait(pkt)  # sent as soon as the WebSocket is open
            return
        encoded = pkt.encode()
        if isinstance(encoded, str):
            self.write(ws_frame(encoded.encode(), WS_TEXT_FIN))
        else:
            self.write(ws_frame(bytes(encoded), WS_BINARY_FIN))

    async def send(self, pkt: Any) -> None:
        self.send_now(pkt)

    # ---- pings ------------------------------------------------------------------------

    def schedule_ping(self) -> None:
        # As python-engineio: the next ping is scheduled when the last one was answered,
        # here as a timer (no task per ping cycle).
        if self.last_ping:
            self.last_ping = None
            self._ping_timer = asyncio.get_running_loop().call_later(self.server.ping_interval, self.ping)

    def ping(self) -> None:
        self._ping_timer = None
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            self.send_now(eio_packet.Packet(eio_packet.PING))

    # ---- the connection ---------------------------------------------------------------

    async def _websocket_handler(self, ws: Any) -> None:
        if self.connected:  # an upgrade from polling: never for a LeanSocket
            await super()._websocket_handler(ws)
            return
        response: web.WebSocketResponse = ws._sock
        transport = ws.environ["aiohttp.request"].transport
        if not isinstance(transport, asyncio.Transport):
            return
        self.connected = self.upgraded = True
        self.route = Route(response, transport)
        self._flush_queued()
        limit = self.server.max_http_buffer_size
        timeout = self.server.ping_interval + self.server.ping_timeout
        try:
            while not self.closed:
                try:
                    msg = await response.receive(timeout=timeout)
                except TimeoutError:
                    break  # nothing, not even a pong, for a ping cycle and its timeout
                if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                    data = msg.data
                else:
                    break  # closed by the client, or an error
                if len(data) > limit:
                    break
                try:
                    await self.receive(eio_packet.Packet(encoded_packet=data))
                except eio_exceptions.UnknownPacketError:
                    pass
                except eio_exceptions.SocketIsClosedError:
                    break
                except Exception:
                    log.exception("socket %s: could not handle a packet", self.sid)
        finally:
            await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)

    def _flush_queued(self) -> None:
        # In a method of its own: a local of the read loop would keep the queue alive
        # for the whole connection.
        queued, self._queue = self._queue, None
        while queued is not None and not queued.empty():
            pkt = queued.get_nowait()
            if pkt is not None:
                self.send_now(pkt)

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        if self.closed or self.closing:
            return
        self.closing = True
        await self.server._trigger_event(
            "disconnect", self.sid, reason or self.server.reason.SERVER_DISCONNECT, run_async=False
        )
        if not abort:
            self.send_now(eio_packet.Packet(eio_packet.CLOSE))
        self.closed = True
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        route, self.route = self.route, None
        if route is not None and not route.transport.is_closing():
            # The close frame, then the connection: closing the transport ends the read
            # loop (and writes out what is buffered first). aiohttp's own close would
            # wait for the client's answering frame, up to 10 s.
            route.transport.write(WS_CLOSE_NORMAL)
            route.transport.close()
        self.server.sockets.pop(self.sid, None)

    def abort(self) -> None:
        """Drop the connection at once (a reader that fell too far behind)."""
        route = self.route
        if route is not None:
            route.transport.abort()


class PollingMonitor:
    """python-engineio's check for polling sockets whose client went silent, every few
    seconds from one task. The library's own monitor is off: it wakes ``N /
    ping_timeout`` times a second for every socket, and LeanSockets need none of it
    (their read loop times out instead)."""

    def __init__(self, server: LeanEngine) -> None:
        self.server = server
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="engineio-polling-monitor")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(POLLING_CHECK_SECONDS)
            for s in list(self.server.sockets.values()):
                if isinstance(s, LeanSocket):
                    continue
                if s.closed:
                    self.server.sockets.pop(s.sid, None)
                elif not s.closing:
                    with contextlib.suppress(Exception):
                        await s.check_ping_timeout()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class LeanEngine(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server, with WebSocket connects served by ``LeanSocket``."""

    sockets: dict[str, Any]  # python-engineio's socket table (sid -> socket)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["monitor_clients"] = False  # see PollingMonitor
        super().__init__(*args, **kwargs)
        self.monitor = PollingMonitor(self)
        self._async: dict[str, Any] = {**self._async, "websocket": FastWebSocket}
        # Polling responses are not compressed either (per response; messages are small).
        self.http_compression = False

    async def _handle_connect(self, environ: dict[str, Any], transport: str, jsonp_index: Any = None) -> Any:
        if transport != "websocket":
            self.monitor.start()
            return await super()._handle_connect(environ, transport, jsonp_index)
        sid = self.generate_id()
        s = LeanSocket(self, sid)
        self.sockets[sid] = s
        s.send_now(
            eio_packet.Packet(
                eio_packet.OPEN,
                {
                    "sid": sid,
                    "upgrades": [],
                    "pingTimeout": int(self.ping_timeout * 1000),
                    "pingInterval": int(self.ping_interval + self.ping_interval_grace_period) * 1000,
                    "maxPayload": self.max_http_buffer_size,
                },
            )
        )
        ret = await self._trigger_event("connect", sid, environ, run_async=False)
        if ret is not None and ret is not True:
            self.sockets.pop(sid, None)
            return self._unauthorized(ret or None)
        s.schedule_ping()
        try:
            return await s.handle_get_request(environ)
        finally:
            if s.closed:
                self.sockets.pop(sid, None)

    async def disconnect(self, sid: str | None = None) -> None:
        """As python-engineio's, except that closing every socket (a graceful stop) does
        not wait for polling clients to collect their close packet: an abandoned polling
        handshake would hold the stop for the caller's whole time-out."""
        if sid is not None:
            await super().disconnect(sid)
            return
        await asyncio.gather(
            *(s.close(wait=False, reason=self.reason.SERVER_DISCONNECT) for s in list(self.sockets.values())),
            return_exceptions=True,
        )
        self.sockets = {}

    async def aclose(self) -> None:
        await self.monitor.aclose()


class LeanServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server on a ``LeanEngine``."""

    def _engineio_server_class(self) -> type[LeanEngine]:
        return LeanEngine
