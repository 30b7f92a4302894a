"""A Socket.IO client spoken by hand over aiohttp's WebSocket, for packets no library
client would send (malformed JSON, ``42[]``, reserved event names, deep nesting).

Engine.IO v4 over a WebSocket: the server opens with ``0{...}``, pings with ``2``
(answered ``3`` here, so a test may run past the ping interval); Socket.IO packets
ride in Engine.IO messages (``4``): ``40`` connects the default namespace, events are
``42<ack id>[name, ...]`` and acknowledgements come back as ``43<ack id>[...]``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import socket
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


class StalledSocket:
    """A raw TCP WebSocket client that joins a room, then stops reading while its
    connection stays open (a frozen tab whose network stack still works). Its receive
    buffer is tiny, so the server's writes back up after a few megabytes at most."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.eio_sid = ""  # the Engine.IO sid (Fanout's key)
        self.sid = ""  # the Socket.IO sid (Realtime.sockets' key)

    @classmethod
    async def open(cls, server: LiveServer, cookie: str, session_id: str) -> StalledSocket:
        host, port = server.settings.host, server.settings.port
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock)
        stalled = cls(reader, writer)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: {server.origin}\r\nCookie: parley_session={cookie}\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101"), head
        opened = await stalled._frame()
        assert opened.startswith("0{"), opened
        stalled.eio_sid = json.loads(opened[1:])["sid"]
        stalled.send("40")
        connected = await stalled._frame()
        assert connected.startswith("40{"), connected
        stalled.sid = json.loads(connected[2:])["sid"]
        stalled.send("421" + json.dumps(["room.join", {"session_id": session_id}]))
        while not (frame := await stalled._frame()).startswith("431"):
            pass
        ack = json.loads(frame[3:])[0]
        assert ack.get("status") == "joined", ack
        return stalled  # from here on nothing is read

    async def _frame(self) -> str:
        head = await asyncio.wait_for(self.reader.readexactly(2), TIMEOUT)
        n = head[1] & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await self.reader.readexactly(8), "big")
        return (await self.reader.readexactly(n)).decode()

    def send(self, text: str) -> None:
        """One masked text frame (a client's frames are masked)."""
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = bytes([0x81, 0x80 | n])
        elif n < 65536:
            head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
        self.writer.write(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def close(self) -> None:
        self.writer.transport.abort()
