"""The lean Engine.IO socket (server/realtime/engine.py): the protocol's handshake and
pings, a silent client closed in time, a close the client sees at once, no task per
socket, and the python-engineio internals it relies on."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import engineio
import pytest
import socketio
from aiohttp import web
from aiohttp.test_utils import TestServer
from engineio.base_socket import BaseSocket

from server.realtime.engine import LeanEngine, LeanServer, LeanSocket

PING_INTERVAL = 1
PING_TIMEOUT = 1


class Served:
    def __init__(self, sio: LeanServer, server: TestServer) -> None:
        self.sio = sio
        self.server = server
        self.disconnects: list[tuple[str, Any]] = []

    @property
    def url(self) -> str:
        return str(self.server.make_url(""))

    async def raw(self) -> aiohttp.ClientWebSocketResponse:
        """A hand-spoken client: Engine.IO over WebSocket, nothing answered by itself."""
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(f"{self.url}/socket.io/?EIO=4&transport=websocket", autoclose=False)
        ws._parley_http = http  # type: ignore[attr-defined]
        return ws


async def close_raw(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.close()
    await ws._parley_http.close()  # type: ignore[attr-defined]


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    sio = LeanServer(
        async_mode="aiohttp", logger=False, engineio_logger=False, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT
    )
    app = web.Application()
    sio.attach(app)
    server = TestServer(app, host="127.0.0.1")
    result = Served(sio, server)

    async def disconnect(sid: str, reason: Any = None) -> None:
        result.disconnects.append((sid, reason))

    sio.on("disconnect", disconnect)

    async def echo(sid: str, data: Any) -> Any:
        return data

    sio.on("echo", echo)
    await server.start_server()
    yield result
    await sio.eio.aclose()
    await server.close()


# ---- the internals it relies on ------------------------------------------------------------


def test_python_engineio_internals_have_the_expected_shape() -> None:
    """LeanSocket copies BaseSocket's state and LeanEngine replaces the WebSocket connect:
    an upgrade of python-engineio that changes either must fail here first."""
    plain = engineio.AsyncServer(async_mode="aiohttp")
    stock = BaseSocket(plain, "s1")
    lean = LeanSocket(LeanEngine(async_mode="aiohttp"), "s2")
    assert set(vars(stock)) - {"queue"} <= set(vars(lean)), set(vars(stock)) - set(vars(lean))
    params = list(inspect.signature(engineio.AsyncServer._handle_connect).parameters)
    assert params == ["self", "environ", "transport", "jsonp_index"]
    for name in ("generate_id", "_unauthorized", "_trigger_event", "ping_interval_grace_period", "start_service_task"):
        assert hasattr(plain, name), name
    assert plain.reason.TRANSPORT_CLOSE and plain.reason.SERVER_DISCONNECT
    for name in ("handle_get_request", "_upgrade_websocket", "receive", "check_ping_timeout", "schedule_ping"):
        assert inspect.isfunction(getattr(engineio.async_socket.AsyncSocket, name)), name
    assert "run_async" in inspect.getsource(engineio.AsyncServer._trigger_event)
    assert "_engineio_server_class" in vars(socketio.AsyncServer)
    assert isinstance(LeanServer(async_mode="aiohttp").eio, LeanEngine)
    assert LeanEngine(async_mode="aiohttp").start_service_task is False  # PollingMonitor replaces it


# ---- the protocol --------------------------------------------------------------------------


async def test_open_packet_then_pings_keep_an_answering_client(served: Served) -> None:
    ws = await served.raw()
    try:
        opened = await asyncio.wait_for(ws.receive_str(), 5)
        assert opened[0] == "0", opened
        info = json.loads(opened[1:])
        assert info["upgrades"] == [] and info["pingInterval"] == PING_INTERVAL * 1000
        assert info["pingTimeout"] == PING_TIMEOUT * 1000 and info["maxPayload"] > 0
        [eio] = served.sio.eio.sockets.values()
        assert isinstance(eio, LeanSocket) and eio.route is not None

        pings = 0
        deadline = time.monotonic() + 4 * (PING_INTERVAL + PING_TIMEOUT)
        while time.monotonic() < deadline:
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            if msg.data == "2":
                pings += 1
                await ws.send_str("3")
        # Answered, it is pinged every interval and kept.
        assert pings >= 3, pings
        assert not ws.closed and served.disconnects == []
    finally:
        await close_raw(ws)


async def test_a_client_that_stops_answering_pings_is_closed(served: Served) -> None:
    ws = await served.raw()
    try:
        await ws.receive_str()  # OPEN
        await ws.send_str("40")
        started = time.monotonic()
        while True:
            msg = await asyncio.wait_for(ws.receive(), 3 * (PING_INTERVAL + PING_TIMEOUT) + 3)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break  # never answering, it is closed
        waited = time.monotonic() - started
        # The read times out one ping interval plus the ping timeout after the last
        # thing the client sent.
        assert waited < 2 * (PING_INTERVAL + PING_TIMEOUT) + 2, waited
        await _until(lambda: served.disconnects != [] and not served.sio.eio.sockets)
    finally:
        await close_raw(ws)


async def test_a_server_side_close_reaches_the_client_at_once(served: Served) -> None:
    clients = []
    for _ in range(30):
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(served.url, transports=["websocket"])
        clients.append(client)
    gone: list[float] = []
    for client in clients:
        client.on("disconnect", lambda *_: gone.append(time.monotonic()))
    try:
        started = time.monotonic()
        await asyncio.wait_for(served.sio.eio.disconnect(), 2)
        await _until(lambda: len(gone) == len(clients), timeout=5)
        # aiohttp's own close would wait up to 10 s for each client's answering frame.
        assert max(gone) - started < 1.0, max(gone) - started
        assert len(served.disconnects) == len(clients)
    finally:
        for client in clients:
            if client.connected:
                await client.disconnect()


async def test_acknowledgements_and_order_over_the_direct_path(served: Served) -> None:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(served.url, transports=["websocket"])
    try:
        replies = await asyncio.gather(*(client.call("echo", {"n": n, "t": "é" * n}) for n in range(200)))
        assert [r["n"] for r in replies] == list(range(200))
        assert replies[199]["t"] == "é" * 199
    finally:
        await client.disconnect()


async def test_no_task_per_socket_at_rest(served: Served) -> None:
    clients = []
    try:
        for _ in range(20):
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(served.url, transports=["websocket"])
            clients.append(client)
        await asyncio.sleep(0.2)
        where = [_code_file(t) for t in asyncio.all_tasks()]
        # Per socket the server keeps only aiohttp's two (the connection's and its
        # request's, whose handler is the read loop) and one timer for the next ping.
        # python-engineio's socket kept a writer task, a task per read and a task per
        # ping cycle besides (all from async_socket.py).
        assert not [w for w in where if w.endswith("engineio/async_socket.py")]
        assert sum(w.endswith("aiohttp/web_protocol.py") for w in where) == 2 * 20, where
    finally:
        for client in clients:
            await client.disconnect()


async def test_an_oversized_message_closes_only_that_socket(served: Served) -> None:
    good = socketio.AsyncClient(reconnection=False)
    await good.connect(served.url, transports=["websocket"])
    ws = await served.raw()
    try:
        await ws.receive_str()
        await ws.send_str("40")
        await ws.send_str('42["echo","' + "x" * (served.sio.eio.max_http_buffer_size + 10) + '"]')
        msg = await asyncio.wait_for(_next_non_text(ws), 5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING), msg
        assert (await good.call("echo", "still here")) == "still here"
    finally:
        await close_raw(ws)
        await good.disconnect()


# ---- helpers --------------------------------------------------------------------------------


async def _next_non_text(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    while True:
        msg = await ws.receive()
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return msg


def _code_file(task: asyncio.Task[Any]) -> str:
    code = getattr(task.get_coro(), "cr_code", None)
    return code.co_filename if code is not None else ""


async def _until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_closing_every_socket_does_not_wait_for_an_abandoned_polling_handshake(served: Served) -> None:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(served.url, transports=["websocket"])
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{served.url}/socket.io/?EIO=4&transport=polling") as r:
            assert r.status == 200 and (await r.text()).startswith("0{")
    assert sorted(type(s).__name__ for s in served.sio.eio.sockets.values()) == ["AsyncSocket", "LeanSocket"]
    started = time.monotonic()
    await asyncio.wait_for(served.sio.eio.disconnect(), 5)
    assert time.monotonic() - started < 1.0
    assert served.sio.eio.sockets == {}
    await _until(lambda: not client.connected)
