"""A Socket.IO client spoken by hand over aiohttp's WebSocket, for packets no library
client would send (malformed JSON, ``42[]``, reserved event names, deep nesting).

Engine.IO v4 over a WebSocket: the server opens with ``0{...}``, pings with ``2``
(answered ``3`` here, so a test may run past the ping interval); Socket.IO packets
ride in Engine.IO messages (``4``): ``40`` connects the default namespace, events are
``42<ack id>[name, ...]`` and acknowledgements come back as ``43<ack id>[...]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any

import aiohttp

from tests.conftest import LiveServer

TIMEOUT = 10.0
_ACK = re.compile(r"^43(\d+)(.*)$", re.S)
_EVENT = re.compile(r"^42(\d*)(.*)$", re.S)


class RawSocket:
    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, sid: str) -> None:
        self.http = http
        self.ws = ws
        self.sid = sid  # the Socket.IO sid (the server's key in Realtime.sockets)
        self.events: list[tuple[str, Any]] = []  # (name, first argument), arrival order
        self.frames: list[str] = []  # every text frame after the handshake
        self.closed = False
        self.kicked = False  # the server disconnected the namespace ("41")
        self._acks: dict[int, asyncio.Future[list[Any]]] = {}
        self._next_id = 1000
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, server: LiveServer, cookie: str) -> RawSocket:
        """Connect with the login cookie and an allowed Origin; return once the
        namespace is connected."""
        http = aiohttp.ClientSession()
        try:
            ws = await http.ws_connect(
                f"{server.url}/socket.io/?EIO=4&transport=websocket",
                headers={"Cookie": f"parley_session={cookie}", "Origin": server.origin},
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
            )
            opened = await asyncio.wait_for(ws.receive_str(), TIMEOUT)
            assert opened.startswith("0{"), opened
            await ws.send_str("40")
            connected = await asyncio.wait_for(ws.receive_str(), TIMEOUT)
            assert connected.startswith("40{"), connected
        except BaseException:
            await http.close()
            raise
        return cls(http, ws, json.loads(connected[2:])["sid"])

    def _future(self, ack_id: int) -> asyncio.Future[list[Any]]:
        if ack_id not in self._acks:
            self._acks[ack_id] = asyncio.get_running_loop().create_future()
        return self._acks[ack_id]

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                text: str = msg.data
                self.frames.append(text)
                if text == "2":
                    await self.ws.send_str("3")
                elif (found := _ACK.match(text)) is not None:
                    future = self._future(int(found.group(1)))
                    if not future.done():
                        future.set_result(json.loads(found.group(2)))
                elif (found := _EVENT.match(text)) is not None:
                    data = json.loads(found.group(2))
                    self.events.append((data[0], data[1] if len(data) > 1 else None))
                elif text.startswith("41"):
                    self.kicked = True
        finally:
            self.closed = True
            for future in self._acks.values():
                if not future.done():
                    future.set_exception(ConnectionError("socket closed before the acknowledgement"))
                    future.exception()  # retrieved: nobody may be waiting for it

    async def send(self, text: str) -> None:
        """One Engine.IO message, exactly as given (e.g. ``'421["chat.send",{'``)."""
        await self.ws.send_str(text)

    async def ack(self, ack_id: int, timeout: float = TIMEOUT) -> list[Any]:
        """The arguments of the acknowledgement ``ack_id`` (waits for it)."""
        return await asyncio.wait_for(asyncio.shield(self._future(ack_id)), timeout)

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def call(self, name: str, payload: Any) -> Any:
        """Emit a well-formed event with an ack id; return the acknowledgement's first
        argument."""
        ack_id = self.new_id()
        await self.send(f"42{ack_id}" + json.dumps([name, payload]))
        args = await self.ack(ack_id)
        assert len(args) == 1, args
        return args[0]

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        await self.http.close()
