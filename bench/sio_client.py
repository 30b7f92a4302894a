"""A light Socket.IO client over a raw aiohttp WebSocket, for load generation.

python-socketio's AsyncClient costs about 3x a raw socket per received message, which
put part of the client side into the server's latency figures. This client speaks just
enough Engine.IO 4 / Socket.IO 5 for the benchmarks: the WebSocket transport only,
the default namespace, events, acknowledged calls, and answering pings. It does not
offer permessage-deflate (nor do the baseline's clients), so both servers are measured
on the same wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aiohttp

EventHandler = Callable[[str, str], None]  # (event name, raw Engine.IO text)


class SioError(Exception):
    pass


class RawSioClient:
    """One connection. ``on_raw(event, text)`` sees every event frame undecoded, so a
    benchmark can pick out what it needs without parsing JSON for each receipt."""

    def __init__(self, http: aiohttp.ClientSession, on_raw: EventHandler | None = None) -> None:
        self.http = http
        self.on_raw = on_raw
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.closed = asyncio.Event()
        self.last_ack_bytes = 0  # length of the last acknowledgement's text (for ack sizes)

    async def connect(self, url: str, headers: dict[str, str], timeout: float = 30.0) -> None:
        ws_url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.ws = await self.http.ws_connect(ws_url, headers=headers, compress=0, autoping=True,
                                             max_msg_size=16 * 1024 * 1024, timeout=aiohttp.ClientWSTimeout(ws_close=5))
        async with asyncio.timeout(timeout):
            opened = await self.ws.receive_str()
            if not opened.startswith("0"):
                raise SioError(f"expected OPEN, got {opened[:80]}")
            await self.ws.send_str("40")
            while True:
                reply = await self.ws.receive_str()
                if reply.startswith("2"):  # a ping may come first on a slow server
                    await self.ws.send_str("3")
                    continue
                break
        if reply.startswith("44"):
            raise SioError(f"connect refused: {reply[2:200]}")
        if not reply.startswith("40"):
            raise SioError(f"expected CONNECT, got {reply[:80]}")
        self.closed.clear()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        ws = self.ws
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                text: str = msg.data
                kind = text[:2]
                if kind == "42":
                    if self.on_raw is not None:
                        end = text.find('"', 4)
                        self.on_raw(text[4:end], text)
                elif kind == "43":
                    self.last_ack_bytes = len(text)
                    bracket = text.index("[")
                    fut = self.pending.pop(int(text[2:bracket]), None)
                    if fut is not None and not fut.done():
                        args = json.loads(text[bracket:])
                        fut.set_result(args[0] if args else None)
                elif text == "2":
                    await ws.send_str("3")
                elif kind == "41":
                    # Socket.IO DISCONNECT from the server: socket.io-client closes the
                    # engine (room.js then reconnects with its own back-off).
                    break
                # Engine.IO's CLOSE packet ("1") is ignored, as engine.io-client does: the
                # connection counts as lost when the WebSocket itself closes.
        except (aiohttp.ClientError, ConnectionError):
            pass
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(SioError("disconnected"))
            self.pending.clear()
            self.closed.set()
            if not ws.closed:
                # After a Socket.IO DISCONNECT ("41") the browser closes its WebSocket;
                # left open, the server's handler would wait for the close handshake.
                with contextlib.suppress(Exception):
                    await ws.close()

    async def emit(self, event: str, data: Any) -> asyncio.Future[Any]:
        """Send an event with an acknowledgement id; the returned future has the ack."""
        if self.ws is None or self.ws.closed or self.closed.is_set():
            raise SioError("not connected")
        self.next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send_str(f"42{self.next_id}" + json.dumps([event, data], separators=(",", ":")))
        return fut

    async def call(self, event: str, data: Any, timeout: float = 60.0) -> Any:
        fut = await self.emit(event, data)
        return await asyncio.wait_for(fut, timeout)

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
