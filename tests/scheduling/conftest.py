"""Fixtures for the scheduling tests: logged-in members (each invitation is spent once,
so cookies are kept per test), agenda sessions at fixed times, and a check that the
server logged no errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from server.agenda.models import AgendaSession
from tests.conftest import LiveServer, login
from tests.fixtures.world import World
from tests.scheduling import days

Cookie = Callable[[str], Awaitable[str]]

DAY = days.DAY  # a Wednesday in Europe's summer time, two weeks or more ahead


@pytest.fixture
def cookie(server: LiveServer, world: World) -> Cookie:
    cookies: dict[str, str] = {}

    async def get(key: str) -> str:
        if key not in cookies:
            cookies[key] = await login(server, world.members[key].invite_token)
        return cookies[key]

    return get


async def place(sessions: Any, session_id: str, start: datetime, minutes: int = 120) -> None:
    """Put a session at a fixed time (the world's sessions sit at "now + 7 days")."""
    async with sessions() as db:
        await db.execute(
            update(AgendaSession).where(AgendaSession.id == session_id)
            .values(start_utc=start, end_utc=start + timedelta(minutes=minutes))
        )
        await db.commit()


@pytest.fixture
async def agenda_on_day(sessions: Any, world: World) -> World:
    """The world's three sessions on ``DAY``: open 11:00, stakeholder 14:00, closed 17:00 UTC."""
    for n, key in enumerate(("open", "stakeholder", "closed")):
        await place(sessions, world.sessions[key], DAY + timedelta(hours=11 + 3 * n))
    return world


@pytest.fixture(autouse=True)
def _no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    errors = [
        f"{r.name}: {r.getMessage()}"
        for phase in ("setup", "call")
        for r in caplog.get_records(phase)  # type: ignore[arg-type]
        if r.levelno >= logging.ERROR and r.name.startswith(("parley", "socketio", "asyncio", "aiohttp"))
    ]
    assert errors == []
