"""Simultaneous "Join" presses on one server process all answer, and so do later ones.

Spending an invitation records twice in one transaction (``invitation.spent``, then
``login``); the chain lock must be held until that transaction ends and must not be
an in-process lock given up while the database still holds its own (on PostgreSQL
that combination left three of four joins, and every later one, hanging)."""

from __future__ import annotations

import asyncio
from typing import Any

from server.audit.chain import chain_for
from server.config import Settings
from tests.audit.helpers import check, entries
from tests.conftest import LiveServer, login
from tests.fixtures.world import build_world

JOINERS = 6


async def test_simultaneous_joins_all_answer(server: LiveServer, sessions: Any, settings: Settings) -> None:
    async with sessions() as db:
        world = await build_world(db, settings, extra_experts=JOINERS + 1)
    tokens = [m.invite_token for m in world.members.values()]
    first, later = tokens[:JOINERS], tokens[JOINERS:]
    cookies = await asyncio.wait_for(asyncio.gather(*(login(server, t) for t in first)), timeout=10)
    assert len(set(cookies)) == JOINERS
    # The process is still healthy: later joins, together and alone, answer too.
    await asyncio.wait_for(asyncio.gather(*(login(server, t) for t in later[:-1])), timeout=10)
    await asyncio.wait_for(login(server, later[-1]), timeout=5)

    rows = await entries(sessions, chain=chain_for(world.visit_id))
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    spent = [r for r in rows if r.action == "invitation.spent"]
    assert len(spent) == len(tokens)
    # Each join's two entries are adjacent in the chain.
    for entry in spent:
        following = rows[entry.seq]  # seq is 1-based: this is the next entry
        assert following.action == "login" and following.actor_person_id == entry.actor_person_id
    assert (await check(sessions, settings)).ok
