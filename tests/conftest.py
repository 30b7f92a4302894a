"""Shared fixtures: databases on both backends, a live server, a populated visit,
and logged-in HTTP and Socket.IO clients."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from server.app import create_app
from server.audit import service as audit
from server.config import Settings
from server.core import clock
from server.db.session import make_engine, make_sessionmaker
from tests.fixtures.databases import Templates, drop_pg_database
from tests.fixtures.world import World, build_world

BACKENDS = ["sqlite", "postgres"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    t = Templates(tmp_path_factory.mktemp("templates"))
    yield t
    t.close()


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, templates: Templates, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated database: each test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield await templates.sqlite_copy(tmp_path / "parley.db")
    else:
        url, name = await templates.pg_copy()
        yield url
        await drop_pg_database(name)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    return Settings(
        var_dir=tmp_path / "var",
        database_url=db_url,
        redis_url=None,
        storage_dir=tmp_path / "storage",
        host="127.0.0.1",
        port=port,
        base_url=base,
        allowed_origins=(base,),
        secret_key=b"test-secret-key-" + tmp_path.name.encode(),
    )


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[Any]:
    engine = make_engine(settings.database_url)
    yield make_sessionmaker(engine, info=audit.session_info(settings))
    await engine.dispose()


@pytest.fixture
async def world(sessions: Any, settings: Settings) -> World:
    async with sessions() as db:
        return await build_world(db, settings)


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    yield
    clock.reset()


@dataclass
class LiveServer:
    settings: Settings
    app: web.Application

    @property
    def url(self) -> str:
        return self.settings.base_url

    @property
    def origin(self) -> str:
        return self.settings.allowed_origins[0]


async def start_server(settings: Settings) -> tuple[LiveServer, web.AppRunner]:
    app = create_app(settings)
    # A short grace period: tests stop servers with clients still connected.
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    return LiveServer(settings, app), runner


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    """A real Parley server on a free port, in this test's event loop."""
    live, runner = await start_server(settings)
    yield live
    await runner.cleanup()


async def login(server: LiveServer, token: str) -> str:
    """Spend an invitation as a browser would (GET the page, POST "Join"); return the cookie."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{server.url}/invite/{token}") as r:
            assert r.status == 200, await r.text()
        async with http.post(
            f"{server.url}/invite/{token}", headers={"Origin": server.origin}, allow_redirects=False
        ) as r:
            assert r.status == 303, await r.text()
            return r.cookies["parley_session"].value


def http_client(server: LiveServer, cookie: str | None) -> aiohttp.ClientSession:
    cookies = {"parley_session": cookie} if cookie else None
    return aiohttp.ClientSession(
        base_url=server.url, cookies=cookies, headers={"Origin": server.origin},
        cookie_jar=aiohttp.CookieJar(unsafe=True),
    )


async def socket_client(server: LiveServer, cookie: str, **kwargs: Any) -> socketio.AsyncClient:
    """A python-socketio client connected with the login cookie and an allowed Origin."""
    client = socketio.AsyncClient(reconnection=False, **kwargs)
    await client.connect(
        server.url,
        headers={"Cookie": f"parley_session={cookie}", "Origin": server.origin},
        transports=["websocket"],
        wait_timeout=10,
    )
    return client


def settings_for(settings: Settings, **changes: Any) -> Settings:
    return replace(settings, **changes)
