"""Per-socket scope cache: changes of access reach sockets that already hold a scope.

The realtime layer caches each socket's session scope and re-checks the visit's
``access_version`` at most every ``SCOPE_FRESH_SECONDS``. A change made by another
process (no bus event here) must take effect within about that time; one made
through this process applies at once (the emitter drops the cached scopes and
resets the room). And an invitation login bound to one visit never acts in another
visit's sessions over a socket, even for a person who is a member of both.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy import func, select, update

from server.access import facts
from server.access.roles import Access, Role
from server.agenda.models import AgendaSession, SessionRole, SessionRoleName
from server.config import Settings
from server.people import service as people
from server.people.models import Membership
from server.realtime.server import SCOPE_FRESH_SECONDS
from server.room.models import RoomEvent
from server.web.keys import REALTIME
from tests.conftest import LiveServer, http_client, socket_client
from tests.fixtures.world import World, build_world
from tests.realtime.live import Peers, eventually

REFUSED = {"not_found", "forbidden"}


def refused(ack: dict[str, Any]) -> bool:
    return "error" in ack and ack["error"]["code"] in REFUSED


async def chats_with(sessions: Any, session_id: str, text: str) -> int:
    async with sessions() as db:
        query = select(func.count()).select_from(RoomEvent).where(
            RoomEvent.session_id == session_id, RoomEvent.type == "chat", RoomEvent.payload["text"].as_string() == text
        )
        return int((await db.execute(query)).scalar_one())


# ---- another process changed access ------------------------------------------------------


async def test_a_change_written_by_another_process_applies_within_a_second(
    peers: Peers, world: World, sessions: Any
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    stakeholder = await peers.joined("stakeholder", sid)
    assert (await stakeholder.send("chat.send", text="before", idem="s1"))["ok"]  # scope cached

    # Another process closes the session: the row and the visit's version change in the
    # database, and nothing is published on this process's bus.
    async with sessions() as db:
        await db.execute(update(AgendaSession).where(AgendaSession.id == sid).values(access=Access.CLOSED))
        await facts.bump(db, world.visit_id)
        await db.commit()
    changed = time.monotonic()

    # room.sync has no rate limit: poll with it until the stakeholder is refused.
    while True:
        ack = await stakeholder.send("room.sync", since=0)
        waited = time.monotonic() - changed
        if "error" in ack or waited > SCOPE_FRESH_SECONDS + 2.0:
            break
        await asyncio.sleep(0.05)
    assert refused(ack), (ack, f"still allowed {waited:.2f}s after the change")
    assert waited < SCOPE_FRESH_SECONDS + 0.5, waited

    said = await stakeholder.send("chat.send", text="after closing", idem="s2")
    assert refused(said), said
    assert await chats_with(sessions, sid, "after closing") == 0
    # The review team keeps the room under the new rules.
    kept = await chair.send("chat.send", text="closed-door remark", idem="c1")
    assert kept["ok"], kept


async def test_a_change_without_a_fresh_scope_is_seen_at_the_next_check(
    peers: Peers, world: World, sessions: Any
) -> None:
    """The version check also lets a change open things up: the chair named by another
    process may act within about a second, and the old chair may not."""
    sid = world.sessions["open"]
    item = world.items[sid][0]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    denied = await expert.send("item.start", item_id=item)
    assert denied["error"]["code"] == "forbidden", denied  # scope cached: not the chair
    async with sessions() as db:
        db.add(SessionRole(session_id=sid, membership_id=expert.membership_id, role=SessionRoleName.CHAIR))
        await facts.bump(db, world.visit_id)
        await db.commit()
    await asyncio.sleep(SCOPE_FRESH_SECONDS + 0.2)
    started = await expert.send("item.start", item_id=item)
    assert started["ok"], started
    ended = await chair.send("item.end")
    assert ended["error"]["code"] == "forbidden", ended


# ---- this process changed access ----------------------------------------------------------


async def test_a_change_through_this_process_applies_at_once(peers: Peers, world: World, sessions: Any) -> None:
    sid = world.sessions["open"]
    item = world.items[sid][0]
    chair = await peers.joined("secretariat", sid)
    stakeholder = await peers.joined("stakeholder", sid)
    expert = await peers.joined("expert", sid)
    resets: dict[str, list[dict[str, Any]]] = {p.key: [] for p in (chair, stakeholder, expert)}
    for peer in (chair, stakeholder, expert):
        peer.client.on("room.reset", lambda msg, key=peer.key: resets[key].append(msg))

    # Fresh cached scopes for all three.
    assert (await stakeholder.send("chat.send", text="before", idem="s1"))["ok"]
    assert (await expert.send("item.start", item_id=item))["error"]["code"] == "forbidden"
    assert (await chair.send("chat.send", text="chair before", idem="c1"))["ok"]
    cached_at = time.monotonic()

    async with http_client(peers.server, chair.cookie) as http:
        body = {"access": "closed", "chair_membership_id": expert.membership_id}
        async with http.patch(f"/api/sessions/{sid}", json=body) as r:
            assert r.status == 200, await r.text()

    # The very next events, well inside the cache's freshness window, use the new rules.
    said = await stakeholder.send("chat.send", text="after closing", idem="s2")
    started = await expert.send("item.start", item_id=item)
    moved = await chair.send("item.end")
    within = time.monotonic() - cached_at
    assert within < SCOPE_FRESH_SECONDS, f"too slow to tell the cache from the version check: {within:.2f}s"
    assert refused(said), said
    assert started["ok"], started  # the new chair
    assert moved["error"]["code"] == "forbidden", moved  # no longer the chair
    assert await chats_with(sessions, sid, "after closing") == 0

    for key in resets:
        await eventually(lambda key=key: resets[key] == [{"session_id": sid}], f"room.reset to {key}")
    # Joining again asks the policy anew.
    again = await stakeholder.call("room.join", {"session_id": sid})
    assert again["error"]["code"] == "not_found", again
    back = await chair.call("room.join", {"session_id": sid, "since": 0})
    assert back["ok"] and back["status"] == "joined", back


# ---- a login bound to one visit --------------------------------------------------------------


@dataclass
class SecondVisit:
    world: World
    token: str  # A's expert's own invitation to B


async def second_visit(sessions: Any, settings: Settings, world: World) -> SecondVisit:
    """Visit B, in which visit A's expert is an expert too."""
    async with sessions() as db:
        b = await build_world(db, settings)
        m = Membership(visit_id=b.visit_id, person_id=world.members["expert"].person_id, role=Role.EXPERT)
        db.add(m)
        await db.flush()
        token = await people.issue_invitation(db, settings.secret_key, m, days=30, actor_person_id=None)
        await db.commit()
    return SecondVisit(b, token)


async def one_browser(server: LiveServer, first: str, second: str) -> tuple[str, str]:
    """A browser opens the ``first`` invitation link, then the ``second``: its cookie
    after the first (one login) and after both (a login per visit)."""
    cookies = []
    async with aiohttp.ClientSession(
        base_url=server.url, headers={"Origin": server.origin}, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as browser:
        for token in (first, second):
            async with browser.post(f"/invite/{token}", allow_redirects=False) as r:
                assert r.status == 303, await r.text()
            cookies.append(next(c.value for c in browser.cookie_jar if c.key == "parley_session"))
    return cookies[0], cookies[1]


async def call(client: Any, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    ack = await client.call(event, payload, timeout=10)
    assert isinstance(ack, dict), ack
    return ack


async def test_a_login_bound_to_one_visit_cannot_act_in_another_over_a_socket(
    server: LiveServer, world: World, sessions: Any, settings: Settings
) -> None:
    b = await second_visit(sessions, settings, world)
    a_open, b_open, b_closed = world.sessions["open"], b.world.sessions["open"], b.world.sessions["closed"]
    only_a, both = await one_browser(server, world.members["expert"].invite_token, b.token)
    assert only_a != both
    client = await socket_client(server, only_a)
    try:
        # Visit A, which the link was for, works (and caches a scope on this socket).
        joined = await call(client, "room.join", {"session_id": a_open})
        assert joined["ok"], joined
        assert (await call(client, "chat.send", {"session_id": a_open, "text": "in A", "idem": "a1"}))["ok"]
        # Visit B, where the same person is a member, does not exist for this login.
        for event, payload in (
            ("room.join", {"session_id": b_open}),
            ("room.join", {"session_id": b_closed}),
            ("room.sync", {"session_id": b_open, "since": 0}),
            ("chat.history", {"session_id": b_open, "before": 1}),
            ("chat.send", {"session_id": b_open, "text": "into B", "idem": "b1"}),
            ("floor.request", {"session_id": b_open}),
            ("room.typing", {"session_id": b_open}),
            ("visit.watch", {"visit_id": b.world.visit_id}),
        ):
            ack = await call(client, event, payload)
            assert ack.get("error", {}).get("code") == "not_found", (event, ack)
        # Still refused once the (1 s) cache and version checks had their turn.
        await asyncio.sleep(SCOPE_FRESH_SECONDS + 0.2)
        ack = await call(client, "room.join", {"session_id": b_open})
        assert ack.get("error", {}).get("code") == "not_found", ack
        assert (await call(client, "visit.watch", {"visit_id": world.visit_id}))["ok"]
    finally:
        await client.disconnect()
    assert await chats_with(sessions, b_open, "into B") == 0
    async with sessions() as db:
        in_b = (await db.execute(select(func.count()).select_from(RoomEvent).where(RoomEvent.session_id == b_open)))
        assert in_b.scalar_one() == 0

    # The same browser's cookie after it also opened the person's own link to B acts
    # in both visits, each with its own login.
    client = await socket_client(server, both)
    try:
        for session_id in (a_open, b_open):
            ack = await call(client, "room.join", {"session_id": session_id})
            assert ack["ok"] and ack["status"] == "joined", ack
        said = await call(client, "chat.send", {"session_id": b_open, "text": "own login", "idem": "b2"})
        assert said["ok"], said
    finally:
        await client.disconnect()
    realtime = server.app[REALTIME]
    await eventually(lambda: not realtime.sio.environ, "the server to handle every disconnect")
