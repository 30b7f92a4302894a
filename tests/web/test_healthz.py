"""/healthz: 200 while the process can serve; 503 ``unavailable`` (with Retry-After)
when a room lock is stuck or the database does not answer, so a load balancer takes
the process out of rotation instead of sending it clients it cannot serve."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import server.app as app_module
from server.web.keys import ENGINE, ROOMS
from server.web.middleware import SECURITY_HEADERS
from tests.conftest import LiveServer, http_client
from tests.fixtures.world import World

LEAKS = ("Traceback", 'File "', "/server/", "sqlalchemy", "Exception", "asyncio")


async def health(live: LiveServer, *, accept: str | None = None) -> tuple[aiohttp.ClientResponse, str, float]:
    headers = {"Accept": accept} if accept else {}
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=5)
    async with http_client(live, None) as http, http.get("/healthz", headers=headers, timeout=timeout) as r:
        body = await r.text()
    return r, body, time.monotonic() - started


def assert_headers(r: aiohttp.ClientResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, (name, r.headers.get(name))
    assert r.headers.get("Server") == "Parley"


async def assert_unavailable(live: LiveServer, within: float, at_least: float = 0.0) -> None:
    """503 ``unavailable`` with Retry-After, the security headers, no traceback, both
    as JSON and as the page a browser (or a bare load-balancer probe) gets."""
    for accept in ("application/json", None):
        r, body, took = await health(live, accept=accept)
        assert r.status == 503, (accept, r.status, body[:300])
        assert at_least <= took < within, f"/healthz took {took:.2f}s"
        assert int(r.headers["Retry-After"]) >= 1
        assert_headers(r)
        for marker in LEAKS:
            assert marker not in body, f"{marker!r} leaked: {body[:500]}"
        if accept:
            error = (await _json(body))["error"]
            assert error["code"] == "unavailable" and error["retry_after"] >= 1, error
        else:
            assert 'data-code="unavailable"' in body, body[:500]


async def _json(body: str) -> dict[str, Any]:
    import json

    data = json.loads(body)
    assert isinstance(data, dict)
    return data


async def assert_healthy(live: LiveServer) -> None:
    r, body, _ = await health(live)
    assert r.status == 200, body[:300]
    assert r.content_type == "application/json"
    report = await _json(body)
    assert {k: report.get(k) for k in ("status", "database", "locks")} == {
        "status": "ok", "database": "ok", "locks": "ok"}, report
    assert "Retry-After" not in r.headers
    assert_headers(r)


def no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    logged = [(r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert logged == []


async def test_healthy(server: LiveServer) -> None:
    await assert_healthy(server)


async def test_a_stuck_room_lock_fails_the_check(
    server: LiveServer, world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(app_module, "HEALTH_LOCK_SECONDS", 0.3)
    locks = server.app[ROOMS].log.locks
    async with locks.hold(world.sessions["open"]):
        await assert_healthy(server)  # held, but not for long yet
        await asyncio.sleep(0.4)
        await assert_unavailable(server, within=1.0)
        # A room that answers is not enough: any stuck lock fails the process.
        async with locks.hold(world.sessions["closed"]):
            await assert_unavailable(server, within=1.0)
    await assert_healthy(server)
    no_error_logged(caplog)


@asynccontextmanager
async def database_hangs(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[int]]:
    """Connecting through ``engine`` (only this one) never finishes, as with a database
    host that stopped answering. Yields the stalled attempts, so the test can tell a
    timeout from any other failure."""
    stalled: list[int] = []
    original = AsyncConnection.start

    async def start(self: AsyncConnection, *args: Any, **kwargs: Any) -> AsyncConnection:
        if self.engine is engine:
            stalled.append(1)
            await asyncio.Event().wait()
        return await original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(AsyncConnection, "start", start)
        yield stalled


async def test_a_database_that_does_not_answer_fails_the_check(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(app_module, "HEALTH_DB_SECONDS", 0.3)
    async with database_hangs(server.app[ENGINE], monkeypatch) as stalled:
        await assert_unavailable(server, within=0.3 + 1.0, at_least=0.3)
        assert len(stalled) == 2  # it did try, and gave up in time
    await assert_healthy(server)
    no_error_logged(caplog)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # a small, fixed pool (15)
async def test_an_exhausted_pool_fails_the_check(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Every pooled connection is busy (a stall somewhere else): the check waits no
    longer than HEALTH_DB_SECONDS for one, far below the pool's own timeout."""
    monkeypatch.setattr(app_module, "HEALTH_DB_SECONDS", 0.3)
    engine = server.app[ENGINE]
    pool: Any = engine.sync_engine.pool
    held = [await engine.connect() for _ in range(pool.size() + max(pool._max_overflow, 0))]
    try:
        await assert_unavailable(server, within=0.3 + 1.0, at_least=0.3)
    finally:
        for conn in held:
            await conn.close()
    await assert_healthy(server)
    no_error_logged(caplog)
