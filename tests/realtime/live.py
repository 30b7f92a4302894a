"""Test participants for the live room: a Socket.IO client that folds what it receives.

A ``Peer`` behaves like a careful browser client: it keeps a ``RoomState`` folded
from its join acknowledgement and the ``room.event`` stream, applies events strictly
in ``seq`` order (buffering any that overtake each other on the wire, ignoring ones
it already has), and records every raw event so tests can check for gaps and
duplicates. ``Peers`` owns the clients of one test and disconnects them all.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio
from sqlalchemy import func, select

from server.core.clock import utcnow
from server.room.models import RoomEvent
from server.room.state import RoomState
from server.web.keys import REALTIME
from tests.conftest import LiveServer, login, socket_client
from tests.fixtures.world import World

TIMEOUT = 10.0


async def eventually(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``check`` until it holds (no fixed sleeps in the tests)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def hold_cached_scopes(monkeypatch: pytest.MonkeyPatch, seconds: float = 600.0) -> None:
    """Make the socket's cached scopes stay fresh for the rest of the test, so that a test
    proving "the change applied at once" cannot pass because the cache merely aged (on a
    busy machine the next event may come more than the real one-second window later)."""
    from server.realtime import server as realtime_server

    monkeypatch.setattr(realtime_server, "SCOPE_FRESH_SECONDS", seconds)


def canonical(snapshot: dict[str, Any]) -> str:
    """A snapshot as comparable JSON (the server's arrives as JSON too)."""
    return json.dumps(snapshot, sort_keys=True)


@dataclass
class Peer:
    key: str
    membership_id: str
    cookie: str
    client: socketio.AsyncClient
    session_id: str | None = None
    state: RoomState = field(default_factory=RoomState)
    live: list[dict[str, Any]] = field(default_factory=list)  # every room.event, arrival order
    admissions: list[dict[str, Any]] = field(default_factory=list)
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.client.on("room.event", self._on_event)
        self.client.on("room.admission", self._on_admission)

    async def _on_event(self, event: dict[str, Any]) -> None:
        self.live.append(event)
        self.absorb(event)

    async def _on_admission(self, data: dict[str, Any]) -> None:
        self.admissions.append(data)

    def absorb(self, event: dict[str, Any]) -> None:
        if event["seq"] <= self.state.seq:
            return
        self.pending[event["seq"]] = event
        while self.state.seq + 1 in self.pending:
            self.state.apply(self.pending.pop(self.state.seq + 1))

    def reset_state(self) -> None:
        self.state = RoomState()
        self.pending.clear()

    async def call(self, name: str, payload: Any) -> dict[str, Any]:
        ack = await asyncio.wait_for(self.client.call(name, payload, timeout=TIMEOUT), TIMEOUT + 1)
        assert isinstance(ack, dict), ack
        return ack

    async def join(self, session_id: str, since: int | None = 0) -> dict[str, Any]:
        """``room.join``; on success fold the events (after ``since``) the ack carries."""
        self.session_id = session_id
        payload: dict[str, Any] = {"session_id": session_id}
        if since is not None:
            payload["since"] = since
        ack = await self.call("room.join", payload)
        if ack.get("status") == "joined":
            assert "events" in ack, ack  # since was close enough for a replay
            for event in ack["events"]:
                self.absorb(event)
        return ack

    async def send(self, name: str, **fields: Any) -> dict[str, Any]:
        assert self.session_id, "join first"
        return await self.call(name, {"session_id": self.session_id, **fields})

    async def synced(self, seq: int) -> None:
        await eventually(lambda: self.state.seq >= seq and not self.pending, f"{self.key} at seq {seq}")

    def snapshot(self) -> str:
        return canonical(self.state.snapshot())

    def live_duplicates(self) -> list[int]:
        return sorted(seq for seq, n in Counter(e["seq"] for e in self.live).items() if n > 1)


class Peers:
    """Logs members in and connects them; ``close`` disconnects every client made."""

    def __init__(self, server: LiveServer, world: World) -> None:
        self.server = server
        self.world = world
        self.cookies: dict[str, str] = {}
        self.made: list[Peer] = []

    async def cookie(self, key: str) -> str:
        if key not in self.cookies:
            self.cookies[key] = await login(self.server, self.world.members[key].invite_token)
        return self.cookies[key]

    async def connect(self, key: str, server: LiveServer | None = None) -> Peer:
        """A new connection for member ``key`` (the same login cookie each time)."""
        cookie = await self.cookie(key)
        client = await socket_client(server or self.server, cookie)
        peer = Peer(key, self.world.members[key].membership_id, cookie, client)
        self.made.append(peer)
        return peer

    def conn_id(self, peer: Peer, server: LiveServer | None = None) -> str:
        """The id presence events give this peer's connection: "<process>:<sid>"."""
        return f"{(server or self.server).app[REALTIME].process_id}:{peer.client.get_sid()}"

    async def joined(self, key: str, session_id: str) -> Peer:
        peer = await self.connect(key)
        ack = await peer.join(session_id)
        assert ack["ok"] and ack["status"] == "joined", ack
        return peer

    async def close(self) -> None:
        for peer in self.made:
            if peer.client.connected:
                await peer.client.disconnect()
        # Let the server finish recording the leaves before the test tears it (and its
        # database engine) down; a server in another process is not waited for.
        realtime = self.server.app.get(REALTIME)
        if realtime is not None:
            await eventually(lambda: not realtime.sio.environ, "the server to handle every disconnect")


async def converge(peers: list[Peer], fresh: Peer | None = None) -> str:
    """Wait until every peer reached the newest seq any of them saw; check they agree.

    With ``fresh`` (a peer that has not joined), it joins without ``since`` and the
    server's snapshot must equal every folded state once all have its join event.
    """
    if fresh is not None:
        assert peers[0].session_id
        ack = await fresh.call("room.join", {"session_id": peers[0].session_id})
        assert ack["ok"] and ack["status"] == "joined", ack
        server_view = canonical(ack["state"])
        for peer in peers:
            await peer.synced(ack["seq"])
            assert peer.state.seq == ack["seq"], (peer.key, peer.state.seq, ack["seq"])
            assert peer.snapshot() == server_view, peer.key
        return server_view
    top = max(max((e["seq"] for e in p.live), default=p.state.seq) for p in peers)
    for peer in peers:
        await peer.synced(top)
    first = peers[0].snapshot()
    for peer in peers[1:]:
        assert peer.snapshot() == first, (peers[0].key, peer.key)
    return first


async def write_chats(sessions: Any, session_id: str, authors: list[str], count: int, size: int = 200) -> int:
    """``count`` messages stored straight into the log, as a flood before the limit
    existed left them (nothing broadcast: the server's next read folds them in).
    Returns the last seq written."""
    async with sessions() as db:
        query = select(func.max(RoomEvent.seq)).where(RoomEvent.session_id == session_id)
        top = (await db.execute(query)).scalar_one() or 0
        for n in range(count):
            text = f"flood {n:04d} " + "x" * (size - 11)
            db.add(RoomEvent(
                session_id=session_id, seq=top + 1 + n, type="chat", membership_id=authors[n % len(authors)],
                payload={"text": text}, created_at=utcnow(),
            ))
        await db.commit()
    return int(top) + count
