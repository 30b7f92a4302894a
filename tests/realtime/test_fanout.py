"""Room fan-out (server/realtime/fanout.py, manager.py): delivery through the fast path
and the polling fallback, dropping a client that stops reading, the Redis manager's gap
signal, and the python-engineio/python-socketio internals the fast path relies on."""

from __future__ import annotations

import asyncio
import base64
import inspect
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import engineio
import pytest
import socketio
from aiohttp import web
from aiohttp.test_utils import TestServer
from socketio.async_pubsub_manager import AsyncPubSubManager

from server.realtime.engine import LeanServer, LeanSocket
from server.realtime.fanout import Limits, ws_text_frame
from server.realtime.manager import GAP_PUBLISH_FAILED, GAP_RESUBSCRIBED, FanoutManager, FanoutRedisManager

ROOM = "r"


async def _server(manager: FanoutManager, **eio: Any) -> tuple[socketio.AsyncServer, TestServer]:
    sio = LeanServer(async_mode="aiohttp", client_manager=manager, logger=False, engineio_logger=False, **eio)

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await sio.enter_room(sid, ROOM)

    sio.on("connect", connect)
    app = web.Application()
    sio.attach(app)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return sio, server


@pytest.fixture
async def served() -> AsyncIterator[tuple[socketio.AsyncServer, TestServer, FanoutManager]]:
    manager = FanoutManager(Limits(max_buffer_bytes=256 * 1024, max_queued=50))
    sio, server = await _server(manager, ping_interval=1, ping_timeout=5)
    yield sio, server, manager
    await server.close()


async def _client(url: str, transport: str) -> tuple[socketio.AsyncClient, list[Any]]:
    got: list[Any] = []
    client = socketio.AsyncClient(reconnection=False)
    client.on("news", got.append)
    await client.connect(url, transports=[transport])
    return client, got


async def _until(check: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# ---- the internals the fast path relies on -------------------------------------------------


def test_socketio_internals_have_the_expected_shape() -> None:
    manager = FanoutManager()
    sio = LeanServer(async_mode="aiohttp", client_manager=manager)
    assert manager.server is sio
    assert sio.packet_class(2, namespace="/", data=["e", {"a": 1}]).encode() == '2["e",{"a":1}]'
    assert inspect.isgeneratorfunction(socketio.AsyncManager.get_participants)
    redis_mgr = FanoutRedisManager("redis://127.0.0.1:1/0", channel="c")
    mro = type(redis_mgr).__mro__
    assert mro.index(AsyncPubSubManager) < mro.index(FanoutManager) < mro.index(socketio.AsyncManager)
    for name in ("_publish", "_listen", "_handle_emit", "_thread"):
        assert hasattr(AsyncPubSubManager, name), name
    stock = engineio.async_socket.AsyncSocket(sio.eio, "sid1")
    assert isinstance(stock.queue, asyncio.Queue)


def test_frame_encoding() -> None:
    assert ws_text_frame(b"hi") == b"\x81\x02hi"
    assert ws_text_frame(b"x" * 200)[:4] == b"\x81\x7e\x00\xc8"
    assert ws_text_frame(b"x" * 70000)[:2] == b"\x81\x7f"


# ---- delivery -----------------------------------------------------------------------------


async def test_websocket_and_polling_clients_get_every_message_in_order(
    served: tuple[socketio.AsyncServer, TestServer, FanoutManager],
) -> None:
    sio, server, manager = served
    url = str(server.make_url(""))
    ws_client, ws_got = await _client(url, "websocket")
    poll_client, poll_got = await _client(url, "polling")
    try:
        kinds = sorted(type(s).__name__ for s in sio.eio.sockets.values())
        assert kinds == ["AsyncSocket", "LeanSocket"]  # polling keeps python-engineio's socket
        for i in range(100):
            await sio.emit("news", {"i": i}, room=ROOM)
            if i % 10 == 9:
                await asyncio.sleep(0.05)  # a long-poll needs a turn to collect
        await _until(lambda: len(ws_got) == 100 and len(poll_got) == 100)
        assert [m["i"] for m in ws_got] == list(range(100))
        assert [m["i"] for m in poll_got] == list(range(100))
        assert manager.fanout.dropped == 0
    finally:
        await ws_client.disconnect()
        await poll_client.disconnect()


async def test_skip_sid_and_to_are_honoured(served: tuple[socketio.AsyncServer, TestServer, FanoutManager]) -> None:
    sio, server, _ = served
    url = str(server.make_url(""))
    a, a_got = await _client(url, "websocket")
    b, b_got = await _client(url, "websocket")
    try:
        await sio.emit("news", 1, room=ROOM, skip_sid=a.get_sid())
        await sio.emit("news", 2, to=a.get_sid())
        await _until(lambda: b_got == [1] and a_got == [2])
    finally:
        await a.disconnect()
        await b.disconnect()


# ---- slow consumers -----------------------------------------------------------------------


class StalledClient:
    """A raw Engine.IO WebSocket client that stops reading after connecting but keeps
    sending pongs, as a frozen browser tab whose network stack still works would."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    async def connect(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills fast
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await self.reader.readuntil(b"\r\n\r\n")
        assert (await self._frame()).startswith(b"0")
        self.send("40")
        assert (await self._frame()).startswith(b"40")

    async def _frame(self) -> bytes:
        head = await self.reader.readexactly(2)
        n = head[1] & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await self.reader.readexactly(8), "big")
        return await self.reader.readexactly(n)

    def send(self, text: str) -> None:
        data = text.encode()
        mask = os.urandom(4)
        assert len(data) < 126
        self.writer.write(bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def close(self) -> None:
        self.writer.transport.abort()


def _server_backlog(sio: socketio.AsyncServer, manager: FanoutManager) -> int:
    """Bytes and packets this server holds for its sockets (packets counted as 1 KiB)."""
    held = 0
    for s in sio.eio.sockets.values():
        if isinstance(s, LeanSocket):
            held += s.route.transport.get_write_buffer_size() if s.route else 0
        else:
            held += 1024 * s.queue.qsize()
    return held


async def test_a_client_that_stops_reading_is_dropped_and_memory_stays_bounded(
    served: tuple[socketio.AsyncServer, TestServer, FanoutManager],
) -> None:
    sio, server, manager = served
    url = str(server.make_url(""))
    normal, got = await _client(url, "websocket")
    stalled = StalledClient(server.host, int(server.port or 0))
    await stalled.connect()
    try:
        await _until(lambda: len(sio.eio.sockets) == 2)
        # The kernel's socket buffers take a few MB first; send until the server gives up.
        payload = "x" * 16000
        peak = sent = 0
        while manager.fanout.dropped == 0 and sent < 2000:
            if sent % 20 == 0:
                stalled.send("3")  # an unsolicited pong keeps Engine.IO's ping check happy
            await sio.emit("news", {"i": sent, "p": payload}, room=ROOM)
            sent += 1
            peak = max(peak, _server_backlog(sio, manager))
            await asyncio.sleep(0.001)
        assert manager.fanout.dropped == 1
        await _until(lambda: len(sio.eio.sockets) == 1)
        await _until(lambda: len(got) == sent)
        assert [m["i"] for m in got] == list(range(sent))
        assert peak < 256 * 1024 + 64 * 1024 + 50 * 1024 + 8 * 1024
        assert normal.connected
    finally:
        stalled.close()
        await normal.disconnect()


# ---- Redis ---------------------------------------------------------------------------------


async def test_a_failed_publish_is_logged_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    gaps: list[str] = []
    manager = FanoutRedisManager("redis://127.0.0.1:1/0", channel="parley-test", on_gap=gaps.append)
    await manager._publish({"method": "emit", "event": "x"})
    assert gaps == [GAP_PUBLISH_FAILED]
    assert any("redis publish" in r.getMessage() for r in caplog.records)
    caplog.clear()  # logged at ERROR on purpose


@pytest.mark.postgres
async def test_listener_reports_a_gap_after_resubscribing_and_delivers_across_processes() -> None:
    import redis.asyncio as aioredis

    channel = f"parley-test-{os.getpid()}"
    gaps: list[str] = []
    one = FanoutRedisManager("redis://127.0.0.1:6379/0", channel=channel, on_gap=gaps.append)
    two = FanoutRedisManager("redis://127.0.0.1:6379/0", channel=channel)
    sio1, srv1 = await _server(one)
    sio2, srv2 = await _server(two)
    admin = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    for sio, manager in ((sio1, one), (sio2, two)):
        # python-socketio starts the listener at the first connection; process two has none.
        sio.manager_initialized = True
        manager.initialize()
    client, got = await _client(str(srv1.make_url("")), "websocket")
    try:
        await _until(lambda: one.listening and two.listening)
        await sio2.emit("news", "from two", room=ROOM)  # reaches process one's socket
        await _until(lambda: got == ["from two"])
        # Drop process one's subscription: it must subscribe again quickly and say so.
        for entry in await admin.client_list(_type="pubsub"):
            await admin.client_kill_filter(_id=entry["id"])
        await _until(lambda: GAP_RESUBSCRIBED in gaps, timeout=5)
        await _until(lambda: one.listening and two.listening, timeout=5)
        await sio2.emit("news", "after", room=ROOM)
        await _until(lambda: got == ["from two", "after"], timeout=5)
    finally:
        await client.disconnect()
        await srv1.close()
        await srv2.close()
        await one.aclose()
        await two.aclose()
        await admin.aclose()
