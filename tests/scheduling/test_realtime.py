"""``visit.watch`` and ``agenda.changed``: a Socket.IO client watching a visit hears,
after the acceptance was committed, which of the sessions it may see moved."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import socketio

from server.access.policy import Action, decide
from server.access.roles import Role
from server.realtime.server import EVENTS, VISIT_EVENTS
from tests.conftest import LiveServer, http_client, login, socket_client
from tests.fixtures.world import World, build_world
from tests.scheduling.conftest import DAY, Cookie
from tests.scheduling.days import z

WINDOW = {"start": z(DAY - timedelta(days=1)), "end": z(DAY + timedelta(days=3))}


class Watcher:
    def __init__(self, client: socketio.AsyncClient) -> None:
        self.client = client
        self.events: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        client.on("agenda.changed", self._on)

    async def _on(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.arrived.set()


async def watch(server: LiveServer, cookie: str, visit_id: str) -> Watcher:
    watcher = Watcher(await socket_client(server, cookie))
    ack = await watcher.client.call("visit.watch", {"visit_id": visit_id}, timeout=10)
    assert ack == {"ok": True, "visit_id": visit_id}, ack
    return watcher


async def test_watchers_hear_of_an_accepted_proposal(
    server: LiveServer, sessions: Any, agenda_on_day: World, cookie: Cookie
) -> None:
    world = agenda_on_day
    expert = await watch(server, await cookie("expert"), world.visit_id)
    stakeholder = await watch(server, await cookie("stakeholder"), world.visit_id)
    try:
        async with http_client(server, await cookie("secretariat")) as http:
            async with http.post(f"/api/visits/{world.visit_id}/schedule/runs",
                                 json={"window": WINDOW, "alternatives": 0}) as r:
                run = await r.json()
            async with http.post(f"/api/visits/{world.visit_id}/schedule/runs/{run['id']}/accept",
                                 json={"index": 0}) as r:
                assert r.status == 200
                moved = {m["id"]: m for m in (await r.json())["moved"]}
        assert world.sessions["closed"] in moved, "17:00-19:00 UTC runs late in Nairobi and Vienna: it moves"
        await asyncio.wait_for(expert.arrived.wait(), 10)
        await asyncio.wait_for(stakeholder.arrived.wait(), 10)
        (event,) = expert.events
        assert event["visit_id"] == world.visit_id
        assert {s["id"]: s for s in event["sessions"]} == moved
        assert all(s["sequence"] == 1 for s in event["sessions"])
        # Committed before it was announced: the API already shows the new times.
        async with http_client(server, await cookie("expert")) as http, http.get(f"/api/visits/{world.visit_id}") as r:
            now = {s["id"]: s["start_utc"] for s in (await r.json())["sessions"]}
        assert all(now[sid] == m["start_utc"] for sid, m in moved.items())
        # The stakeholder hears only of the sessions they may see: not the closed one.
        (seen,) = stakeholder.events
        assert {s["id"] for s in seen["sessions"]} == set(moved) - {world.sessions["closed"]}
    finally:
        await expert.client.disconnect()
        await stakeholder.client.disconnect()


@pytest.mark.parametrize("role", list(Role), ids=[str(r) for r in Role])
async def test_every_member_may_watch_their_visit(
    server: LiveServer, world: World, cookie: Cookie, role: Role
) -> None:
    assert decide(VISIT_EVENTS["visit.watch"].action, role) is True
    watcher = await watch(server, await cookie(str(role)), world.visit_id)
    await watcher.client.disconnect()


async def test_watch_refuses_outsiders_and_bad_payloads(
    server: LiveServer, sessions: Any, settings: Any, world: World, cookie: Cookie
) -> None:
    async with sessions() as db:
        other = await build_world(db, settings, extra_experts=0)
    outsider = await socket_client(server, await login(server, other.members["secretariat"].invite_token))
    member = await socket_client(server, await cookie("expert"))
    try:
        ack = await outsider.call("visit.watch", {"visit_id": world.visit_id}, timeout=10)
        assert ack["error"]["code"] == "not_found", ack
        for payload in ({}, {"visit_id": ""}, {"visit_id": 7}, {"visit_id": world.visit_id, "x": 1},
                        {"visit_id": "bad\x00id"}):
            ack = await member.call("visit.watch", payload, timeout=10)
            assert ack["error"]["code"] == "invalid", (payload, ack)
        ack = await member.call("visit.watch", "not an object", timeout=10)
        assert ack["error"]["code"] == "invalid"
        ack = await member.call("visit.watch", {"visit_id": "no-such-visit"}, timeout=10)
        assert ack["error"]["code"] == "not_found"
    finally:
        await outsider.disconnect()
        await member.disconnect()


def test_visit_events_are_not_session_events() -> None:
    """The policy matrix walks ``EVENTS`` (each names a session); visit-wide events are
    kept apart and tested here."""
    assert "visit.watch" not in EVENTS and VISIT_EVENTS["visit.watch"].action is Action.VISIT_VIEW
    assert "visit_id" in VISIT_EVENTS["visit.watch"].model.model_fields
