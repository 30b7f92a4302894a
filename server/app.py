"""create_app(settings): wires everything; nothing else does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from sqlalchemy import text

from server.audit import service as audit
from server.audit.http import routes as audit_routes
from server.calendars.http import routes as calendar_routes
from server.config import Settings
from server.core.errors import DomainError, ErrorCode
from server.db.session import make_engine, make_sessionmaker
from server.people.http import routes as people_routes
from server.realtime.server import Realtime
from server.room.http import routes as room_routes
from server.room.log import RoomLog
from server.room.maintenance import close_stale_connections
from server.room.service import RoomService
from server.scheduling.http import routes as scheduling_routes
from server.visits.http import routes as visit_routes
from server.web import middleware
from server.web.keys import ENGINE, REALTIME, ROOMS, SESSIONS, SETTINGS, TEMPLATES
from server.web.routing import RouteTable
from server.web.templating import make_environment

ROOT = Path(__file__).resolve().parent.parent
CLIENT_DIR = ROOT / "client_web"
# How soon a login revoked through another process disconnects this one's sockets.
LOGIN_SWEEP_SECONDS = 10.0
ROUTE_TABLES: tuple[RouteTable, ...] = (
    people_routes,
    visit_routes,
    room_routes,
    calendar_routes,
    scheduling_routes,
    audit_routes,
)
# Browser libraries installed from npm and served by Parley itself (no CDN).
VENDOR_FILES = {
    "socket.io.esm.min.js": CLIENT_DIR / "node_modules/socket.io-client/dist/socket.io.esm.min.js",
    "socket.io.esm.min.js.map": CLIENT_DIR / "node_modules/socket.io-client/dist/socket.io.esm.min.js.map",
}


async def healthz(request: web.Request) -> web.Response:
    try:
        async with request.app[ENGINE].connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        raise DomainError(ErrorCode.INTERNAL, "The database is not reachable.") from None
    return web.json_response({"status": "ok", "database": "ok"})


async def vendor(request: web.Request) -> web.StreamResponse:
    path = VENDOR_FILES.get(request.match_info["name"])
    if path is None or not path.exists():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[middleware.security_headers, middleware.errors, middleware.origin_check],
        client_max_size=1024 * 1024,
    )
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine, info=audit.session_info(settings))
    rooms = RoomService(RoomLog())
    app[SETTINGS] = settings
    app[ENGINE] = engine
    app[SESSIONS] = sessions
    app[ROOMS] = rooms
    app[TEMPLATES] = make_environment()
    realtime = Realtime(settings, sessions, rooms)
    app[REALTIME] = realtime
    realtime.sio.attach(app)

    async def dispose_engine(app: web.Application) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    async def housekeeping(app: web.Application) -> None:
        if settings.redis_url is None:
            async with sessions() as db:
                await close_stale_connections(db, rooms.log)

    async def close_connections(app: web.Application) -> None:
        # A graceful stop closes every Socket.IO connection while the database is still
        # open: each disconnect records its leave instead of racing the engine's disposal.
        if realtime.sio.eio.sockets:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(realtime.sio.eio.disconnect(), timeout=5)
        await realtime.end_logins(set(realtime.logins.values()))

    async def login_sweeper(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(realtime.run_sweeper(LOGIN_SWEEP_SECONDS))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(dispose_engine)
    app.cleanup_ctx.append(login_sweeper)
    app.on_startup.append(housekeeping)
    app.on_shutdown.append(close_connections)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/static/vendor/{name}", vendor)
    app.router.add_static("/static/js", CLIENT_DIR / "js")
    app.router.add_static("/static/css", CLIENT_DIR / "css")
    for table in ROUTE_TABLES:
        table.install(app)
    return app
