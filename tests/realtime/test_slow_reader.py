"""A participant whose client stops reading (its connection open) on a real server: the
room's chat keeps reaching everyone else promptly while that socket is backed up, and
the server drops it before its backlog grows without bound, closing its presence.

tests/realtime/test_fanout.py covers the fan-out's dropping on a bare python-socketio
server; this is the same through Parley: login, room join, chat sent, committed and
broadcast by the emitter, and the dropped socket's leave recorded.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from server.realtime.names import room_name
from server.web.keys import REALTIME
from tests.conftest import LiveServer
from tests.fixtures.world import World
from tests.realtime.live import Peers, converge, eventually
from tests.realtime.raw import StalledSocket

BACKED_UP = 256 * 1024  # bytes the server holds for the stalled socket before chat is timed
LATENCY_BOUND = 1.0  # seconds from chat.send to another participant's receipt


async def test_a_participant_who_stops_reading_does_not_delay_the_room(
    peers: Peers, world: World, server: LiveServer, sessions: Any
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    listener = await peers.joined("expert", sid)
    rt = server.app[REALTIME]
    fanout = rt.sio.manager.fanout
    dropped = fanout.dropped
    stalled = await StalledSocket.open(server, await peers.cookie("delegate"), sid)
    frozen = world.members["delegate"].membership_id
    try:
        await eventually(lambda: frozen in chair.state.present, "the stalled participant's join")

        def backlog() -> int:
            """Bytes the server holds for the stalled socket (in its transport)."""
            eio_socket = rt.sio.eio.sockets.get(stalled.eio_sid)
            route = eio_socket.route if eio_socket is not None else None
            return route.transport.get_write_buffer_size() if route is not None else 0

        padding, sent = "x" * 16000, 0

        async def pad() -> None:
            # Room traffic the stalled client does not read (other clients ignore it).
            nonlocal sent
            await rt.sio.emit("test.padding", {"i": sent, "p": padding}, room=room_name(sid))
            sent += 1
            if sent % 20 == 0:
                stalled.send("3")  # an unsolicited pong: its network stack still works
            await asyncio.sleep(0.001)

        while backlog() < BACKED_UP and fanout.dropped == dropped and sent < 3000:
            await pad()
        assert fanout.dropped == dropped and backlog() >= BACKED_UP, (sent, backlog())
        assert stalled.sid in rt.sockets

        # While it is backed up, chat reaches the others within the bound.
        latencies = []
        for n in range(8):
            started = time.monotonic()
            said = await chair.send("chat.send", text=f"while one is frozen {n}", idem=f"frozen-{n}")
            assert said["ok"], said
            await listener.synced(said["seq"])
            latencies.append(time.monotonic() - started)
            assert backlog() > 0 and stalled.sid in rt.sockets  # still backed up, still there
            await pad()
        assert max(latencies) < LATENCY_BOUND, latencies

        # Falling further behind, it is dropped: its presence closes, the others stay.
        while fanout.dropped == dropped and sent < 10000:
            await pad()
        assert fanout.dropped == dropped + 1, sent
        await eventually(lambda: stalled.sid not in rt.sockets, "the dropped socket to be unregistered")
        await eventually(lambda: frozen not in chair.state.present, "the dropped participant's leave")
        said = await chair.send("chat.send", text="after the drop", idem="after")
        assert said["ok"], said
        await converge([chair, listener])
        assert [c["text"] for c in listener.state.chat] == [f"while one is frozen {n}" for n in range(8)] + [
            "after the drop"
        ]
        assert chair.client.connected and listener.client.connected
    finally:
        stalled.close()
