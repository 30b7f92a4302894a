"""Packets a client crafts by hand: forged lifecycle events, unreadable packets and
unknown events are answered ``invalid`` and never reach the connect/disconnect code.

python-socketio hands a client event literally named "disconnect" (or "connect") to
the lifecycle handlers, and lets undecodable packets escape as tracebacks without an
answer; ``GuardedServer`` (server/realtime/server.py) overrides both entry points.
Before it, a forged "disconnect" made the server count a socket as gone while it kept
receiving broadcasts and escaped the cut on logout and revocation, and a forged
"connect" left its participant listed present after they left.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import pytest
import socketio

from server.realtime.registry import RESERVED
from server.realtime.server import GuardedServer
from server.room.log import RoomLog
from server.web.keys import REALTIME
from tests.conftest import LiveServer, http_client
from tests.fixtures.world import World
from tests.realtime.live import Peer, Peers, converge, eventually
from tests.realtime.raw import RawSocket

RESERVED_NAMES = ("connect", "disconnect", "connect_error", "message")


async def committed_connections(sessions: Any, session_id: str) -> dict[str, set[str]]:
    """Who the room log says is present (membership -> connection ids), read from the
    database by a fresh log: the server's cache plays no part."""
    async with sessions() as db:
        state = await RoomLog(sessions).state(db, session_id)
    return {m: c for m, c in state.connections.items() if c}


async def revoke_current_login(server: LiveServer, cookie: str) -> None:
    """End the cookie's login through the HTTP API, as the person would on /me."""
    async with http_client(server, cookie) as http:
        async with http.get("/api/me/logins") as r:
            assert r.status == 200, await r.text()
            current = [s for s in (await r.json())["logins"] if s["current"]]
        assert len(current) == 1, current
        async with http.post(f"/api/me/logins/{current[0]['id']}/revoke") as r:
            assert r.status == 200, await r.text()


def assert_invalid(ack: Any, what: object) -> None:
    assert isinstance(ack, dict) and set(ack) == {"error"}, (what, ack)
    assert ack["error"]["code"] == "invalid", (what, ack)
    assert isinstance(ack["error"]["message"], str) and ack["error"]["message"], (what, ack)


def realtime_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "parley.realtime" and r.levelno == logging.WARNING]


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert "Traceback" not in caplog.text
    noisy = [(r.name, r.getMessage()) for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert noisy == []


# ---- the library entry points GuardedServer overrides -------------------------------------


def test_the_guarded_entry_points_still_exist_in_python_socketio() -> None:
    """An upgrade that renames or reshapes these would silently unguard the server."""
    for name, params in (
        ("_handle_eio_message", ["self", "eio_sid", "data"]),
        ("_handle_event", ["self", "eio_sid", "namespace", "id", "data"]),
    ):
        base = getattr(socketio.AsyncServer, name)
        assert inspect.iscoroutinefunction(base), name
        assert list(inspect.signature(base).parameters) == params, name
        assert GuardedServer.__dict__.get(name) is not None, name
    assert set(RESERVED_NAMES) | set(socketio.AsyncServer.reserved_events) <= RESERVED


# ---- forged lifecycle events ----------------------------------------------------------------


async def test_a_forged_disconnect_is_refused_and_the_socket_is_still_cut_on_revocation(
    peers: Peers, world: World, server: LiveServer, sessions: Any
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    await converge([chair, expert])
    rt = server.app[REALTIME]
    sock_id = expert.client.get_sid()
    conn = peers.conn_id(expert)
    assert rt.sockets[sock_id].rooms == {sid: expert.membership_id}

    # python-socketio's client sends the name as it is: the server must refuse it.
    for args in ({"session_id": sid}, "client namespace disconnect", None):
        ack = await expert.call("disconnect", args)
        assert_invalid(ack, ("disconnect", args))
    await expert.client.emit("disconnect")  # no ack id: no answer, and no effect either

    # Still registered, still in the room, still present (on the server and for others).
    said = await chair.send("chat.send", text="are you still there?", idem="q1")
    assert said["ok"], said
    await converge([chair, expert])
    assert sock_id in rt.sockets and rt.sockets[sock_id].rooms == {sid: expert.membership_id}
    assert (await committed_connections(sessions, sid))[expert.membership_id] == {conn}
    assert chair.state.connections[expert.membership_id] == {conn}
    assert not any(e["type"] == "leave" for e in chair.live)

    # Revoking the login through the API cuts this socket at once...
    await revoke_current_login(server, expert.cookie)
    await eventually(lambda: not expert.client.connected, "the revoked socket to be cut", timeout=3)
    await eventually(lambda: sock_id not in rt.sockets, "the socket to be unregistered", timeout=3)
    # ...it leaves the room exactly once, and hears nothing said afterwards.
    said = await chair.send("chat.send", text="confidential", idem="q2")
    assert said["ok"], said
    await chair.synced(said["seq"])
    assert expert.membership_id not in chair.state.present
    assert said["seq"] not in [e["seq"] for e in expert.live]
    assert [e["payload"]["conn"] for e in chair.live if e["type"] == "leave"] == [conn]
    assert expert.membership_id not in await committed_connections(sessions, sid)


async def test_a_forged_disconnect_over_a_raw_socket_escapes_nothing(
    peers: Peers, world: World, server: LiveServer
) -> None:
    """The same through a hand-written client (no library in between), with logout
    doing the cut this time."""
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    cookie = await peers.cookie("expert")
    raw = await RawSocket.open(server, cookie)
    try:
        joined = await raw.call("room.join", {"session_id": sid})
        assert joined["ok"] and joined["status"] == "joined", joined
        await raw.send('427["disconnect"]')
        assert_invalid((await raw.ack(7))[0], "disconnect")
        await raw.send('42["disconnect"]')  # and once without an ack id
        rt = server.app[REALTIME]
        assert raw.sid in rt.sockets
        said = await chair.send("chat.send", text="heard?", idem="h1")
        await eventually(
            lambda: any(n == "room.event" and e["seq"] == said["seq"] for n, e in raw.events), "the chat"
        )

        async with http_client(server, cookie) as http:
            async with http.post("/logout", allow_redirects=False) as r:
                assert r.status in (200, 303), await r.text()
        await eventually(lambda: raw.closed or raw.kicked, "the logged-out socket to be cut", timeout=3)
        assert raw.sid not in rt.sockets
        said = await chair.send("chat.send", text="after logout", idem="h2")
        await chair.synced(said["seq"])
        assert not any(n == "room.event" and e["seq"] == said["seq"] for n, e in raw.events)
        assert world.members["expert"].membership_id not in chair.state.present
    finally:
        await raw.close()


async def test_a_forged_connect_does_not_keep_a_participant_present(
    peers: Peers, world: World, server: LiveServer, sessions: Any
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    await converge([chair, expert])
    rt = server.app[REALTIME]
    sock_id = expert.client.get_sid()
    conn = peers.conn_id(expert)

    environ_like = {"HTTP_ORIGIN": server.origin, "HTTP_COOKIE": f"parley_session={expert.cookie}"}
    for args in (environ_like, ({}, {"token": "x"}), None):
        assert_invalid(await expert.call("connect", args), ("connect", args))
    await expert.client.emit("connect", environ_like)  # no ack id
    # The registration is untouched: same socket, same logins, same rooms.
    assert rt.sockets[sock_id].rooms == {sid: expert.membership_id}
    assert rt.sockets[sock_id].conn == conn
    assert (await committed_connections(sessions, sid))[expert.membership_id] == {conn}

    # A real disconnect now records the leave: nobody is left listed present.
    await expert.client.disconnect()
    await eventually(lambda: sock_id not in rt.sockets, "the disconnect to be handled")
    await eventually(lambda: expert.membership_id not in chair.state.present, "the leave to reach the chair")
    assert expert.membership_id not in await committed_connections(sessions, sid)
    fresh = await peers.connect("delegate")
    ack = await fresh.call("room.join", {"session_id": sid})
    assert ack["ok"] and ack["status"] == "joined", ack
    assert expert.membership_id not in ack["state"]["present"], ack["state"]
    assert expert.membership_id not in ack["state"]["connections"], ack["state"]


# ---- unreadable packets and unknown events ------------------------------------------------

DEPTH = 3000  # well past Python's recursion limit (1000)

# (Engine.IO message, what it is): each carries an ack id, and each is unreadable or
# reserved, so it must be answered "invalid" and logged once.
UNREADABLE: list[tuple[str, str]] = [
    ('421["chat.send",{', "malformed JSON"),
    ("422[]", "an event without a name"),
    ("423{}", "an object instead of a list"),
    ('424"chat.send"', "a string instead of a list"),
    ("425[42,{}]", "a name that is not a string"),
    ("426[null]", "a null name"),
    ('427["room.sync",' + "[" * DEPTH + "]" * DEPTH + "]", "arrays nested too deep"),
    ('428["room.sync",' + '{"a":' * DEPTH + "1" + "}" * DEPTH + "]", "objects nested too deep"),
    ("429" + "[" * DEPTH + "]" * DEPTH, "a nested event array"),
    ('4210["disconnect"]', "reserved: disconnect"),
    ('4211["connect",{}]', "reserved: connect"),
    ('4212["connect_error",{"message":"x"}]', "reserved: connect_error"),
    ('4213["message","hello"]', "reserved: message"),
]


def ack_id_of(message: str) -> int:
    digits = message[2:].split("[", 1)[0].split("{", 1)[0].split('"', 1)[0]
    return int(digits)


async def test_unreadable_packets_are_answered_invalid_with_one_log_line(
    peers: Peers, world: World, server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    raw = await RawSocket.open(server, await peers.cookie("expert"))
    try:
        joined = await raw.call("room.join", {"session_id": sid})
        assert joined["ok"], joined
        for message, what in UNREADABLE:
            lines = len(realtime_warnings(caplog))
            await raw.send(message)
            args = await raw.ack(ack_id_of(message))
            assert len(args) == 1, (what, args)
            assert_invalid(args[0], what)
            new = realtime_warnings(caplog)[lines:]
            assert len(new) == 1, (what, [r.getMessage() for r in new])
            line = new[0].getMessage()
            assert "\n" not in line and len(line) < 300, (what, line)
            # Still connected and served: a valid event right after is answered.
            sync = await raw.call("room.sync", {"session_id": sid, "since": 0})
            assert sync["ok"], (what, sync)
        assert raw.sid in server.app[REALTIME].sockets and not raw.closed and not raw.kicked

        # Without an ack id: nothing to answer, still one line each, still connected.
        for message in ('42["chat.send",{', "42[]", "42{}", '42["connect"]', '42["disconnect"]'):
            lines, frames = len(realtime_warnings(caplog)), len(raw.frames)
            await raw.send(message)
            sync = await raw.call("room.sync", {"session_id": sid, "since": 0})
            assert sync["ok"], (message, sync)
            assert len(realtime_warnings(caplog)) == lines + 1, message
            assert [f for f in raw.frames[frames:] if f.startswith("43")] == [raw.frames[-1]], message

        # And the room still reaches it.
        said = await chair.send("chat.send", text="still with us", idem="s1")
        await eventually(
            lambda: any(n == "room.event" and e["seq"] == said["seq"] for n, e in raw.events), "the chat"
        )
    finally:
        await raw.close()
    assert_no_traceback(caplog)


async def test_unknown_events_are_answered_invalid(
    peers: Peers, world: World, server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    sid = world.sessions["open"]
    peer: Peer = await peers.joined("expert", sid)
    for name in ("chat.shout", "room.Join", "", "room.join ", "x" * 300):
        assert_invalid(await peer.call(name, {"session_id": sid}), name)
    raw = await RawSocket.open(server, await peers.cookie("delegate"))
    try:
        for n, message in enumerate(('["nope"]', '["nope",{},{}]', '["__class__",{}]', '["room.join.x"]')):
            await raw.send(f"42{n + 1}{message}")
            assert_invalid((await raw.ack(n + 1))[0], message)
        assert (await raw.call("room.sync", {"session_id": sid, "since": 0}))["ok"]
    finally:
        await raw.close()
    assert (await peer.send("room.sync", since=0))["ok"]
    assert_no_traceback(caplog)


async def test_an_event_named_star_is_answered_invalid(
    peers: Peers, world: World, server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """"*" is python-socketio's catch-all handler name: an event literally named "*"
    is handed to that handler without its name in front of the arguments."""
    sid = world.sessions["open"]
    raw = await RawSocket.open(server, await peers.cookie("delegate"))
    try:
        for n, message in enumerate((f'["*",{{"session_id":"{sid}"}}]', '["*",1,2]', '["*"]')):
            await raw.send(f"42{n + 1}{message}")
            try:
                args = await raw.ack(n + 1, timeout=3)
            except TimeoutError:
                raise AssertionError(f"no acknowledgement for {message}") from None
            assert_invalid(args[0], message)
        assert (await raw.call("room.sync", {"session_id": sid, "since": 0}))["ok"]
    finally:
        await raw.close()
    assert_no_traceback(caplog)
