"""create_app(settings): wires everything; nothing else does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from sqlalchemy import text

from server.agenda.http import routes as agenda_routes
from server.audit import service as audit
from server.audit.http import routes as audit_routes
from server.booths.http import routes as booth_routes
from server.calendars.http import routes as calendar_routes
from server.config import Settings
from server.core.errors import DomainError, ErrorCode
from server.core.events import EventBus
from server.db.session import make_engine, make_sessionmaker
from server.evidence.blobs import LocalBlobStore
from server.evidence.http import routes as evidence_routes
from server.evidence.pages import routes as evidence_pages
from server.evidence.service import EvidenceRuntime
from server.jobs import invitations
from server.jobs.runner import DueWorkRunner
from server.mail.http import routes as mail_routes
from server.media.factory import make_media_engine
from server.media.hub import MediaHub
from server.people.http import routes as people_routes
from server.presence.lease import ProcessLease
from server.realtime.emitter import Emitter
from server.realtime.server import Realtime
from server.room.append import SqliteAppender
from server.room.http import routes as room_routes
from server.room.log import RoomLog
from server.room.maintenance import close_unowned_connections
from server.room.models import RoomEvent
from server.room.service import RoomService, make_chat_limit
from server.scheduling.http import routes as scheduling_routes
from server.services import Services
from server.visits.http import routes as visit_routes
from server.web import middleware
from server.web.keys import BUS, DUE_WORK, ENGINE, EVIDENCE, LEASE, REALTIME, ROOMS, SESSIONS, SETTINGS, TEMPLATES
from server.web.routing import RouteTable
from server.web.templating import make_environment
from server.web.vendor import URL_PREFIX as ESM_VENDOR_PREFIX
from server.web.vendor import EsmVendor

log = logging.getLogger("parley.app")

ROOT = Path(__file__).resolve().parent.parent
CLIENT_DIR = ROOT / "client_web"
# How soon a login revoked through another process disconnects this one's sockets.
LOGIN_SWEEP_SECONDS = 1.0
# How often room members hear the last committed seq of their room (catch-up beacon).
BEACON_SECONDS = 10.0
# /healthz fails when the database does not answer in this time, or a room lock has
# been held this long (a stuck holder stalls its room on every process).
HEALTH_DB_SECONDS = 2.0
HEALTH_LOCK_SECONDS = 15.0
ROUTE_TABLES: tuple[RouteTable, ...] = (
    people_routes,
    visit_routes,
    room_routes,
    agenda_routes,
    calendar_routes,
    mail_routes,
    scheduling_routes,
    audit_routes,
    booth_routes,
    evidence_routes,
    evidence_pages,
)
# Browser libraries installed from npm and served by Parley itself (no CDN).
VENDOR_FILES = {
    "socket.io.esm.min.js": CLIENT_DIR / "node_modules/socket.io-client/dist/socket.io.esm.min.js",
    "socket.io.esm.min.js.map": CLIENT_DIR / "node_modules/socket.io-client/dist/socket.io.esm.min.js.map",
    # pdf.js: the evidence room views decrypted PDFs (its worker loads under script-src 'self').
    "pdf.min.mjs": CLIENT_DIR / "node_modules/pdfjs-dist/build/pdf.min.mjs",
    "pdf.worker.min.mjs": CLIENT_DIR / "node_modules/pdfjs-dist/build/pdf.worker.min.mjs",
}


async def healthz(request: web.Request) -> web.Response:
    """200 when this process can reach its database and no room lock is stuck;
    else 503 ``unavailable`` (a load balancer takes the process out of rotation)."""

    async def ping() -> None:
        async with request.app[ENGINE].connect() as conn:
            await conn.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(ping(), HEALTH_DB_SECONDS)
    except Exception:
        raise DomainError(ErrorCode.UNAVAILABLE, "The database is not reachable.", retry_after=5) from None
    stuck = request.app[ROOMS].log.locks.oldest_hold()
    if stuck is not None and stuck > HEALTH_LOCK_SECONDS:
        raise DomainError(ErrorCode.UNAVAILABLE, "A room lock is stuck.", retry_after=5)
    rt = request.app[REALTIME]
    manager = rt.sio.manager
    # Redis down does not fail the check (every process shares it; taking one out of
    # rotation would not help): it is reported, with the overload counters.
    redis = "off" if not request.app[SETTINGS].redis_url else ("ok" if getattr(manager, "listening", False) else "down")
    fanout = getattr(manager, "fanout", None)
    return web.json_response({
        "status": "ok", "database": "ok", "locks": "ok", "redis": redis,
        "sockets": len(rt.sockets), "shed": rt.shed, "slow_sockets_dropped": getattr(fanout, "dropped", 0),
    })


# pdf.js's data files, fetched by its worker from /static/vendor/pdfjs/{kind}/{name}:
# the standard fonts for PDFs that do not embed theirs, the CMaps of CJK text, and the
# JavaScript decoders of JBIG2/CCITT (scanned faxes) and JPEG 2000 images, used instead
# of their WebAssembly builds (the CSP does not allow compiling WebAssembly).
PDFJS_DATA = {
    "fonts": (CLIENT_DIR / "node_modules/pdfjs-dist/standard_fonts", re.compile(r"[A-Za-z0-9-]+\.(?:pfb|ttf)")),
    "cmaps": (CLIENT_DIR / "node_modules/pdfjs-dist/cmaps", re.compile(r"[A-Za-z0-9-]+\.bcmap")),
    "wasm": (CLIENT_DIR / "node_modules/pdfjs-dist/wasm", re.compile(r"[a-z0-9]+_nowasm_fallback\.js")),
}


async def pdfjs_data(request: web.Request) -> web.StreamResponse:
    """One of pdf.js's data files; any other name is 404."""
    found = PDFJS_DATA.get(request.match_info["kind"])
    name = request.match_info["name"]
    if found is None or not found[1].fullmatch(name) or not (found[0] / name).is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(found[0] / name, headers={"Cache-Control": "public, max-age=3600"})


async def vendor(request: web.Request) -> web.StreamResponse:
    path = VENDOR_FILES.get(request.match_info["name"])
    if path is None or not path.exists():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


async def close_engine_sockets(realtime: Realtime) -> None:
    """Close every Engine.IO socket of this process, waiting at most 5 s. Two closers may
    race (a lapsed lease during a stop): Engine.IO's ``disconnect`` raises ValueError when
    the other one already closed them all, which is the outcome wanted."""
    if not realtime.sio.eio.sockets:
        return
    with contextlib.suppress(TimeoutError, ValueError):
        await asyncio.wait_for(realtime.sio.eio.disconnect(), timeout=5)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[middleware.errors, middleware.origin_check],
        client_max_size=1024 * 1024,
    )
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine, info=audit.session_info(settings))
    bus = EventBus()
    exclusive = settings.redis_url is None  # the only process: see RoomLog
    appender = (
        SqliteAppender(settings.database_url, RoomEvent.__table__)  # type: ignore[arg-type]
        if exclusive and settings.database_url.startswith("sqlite")
        else None
    )
    room_log = RoomLog(sessions, exclusive=exclusive, appender=appender)
    rooms = RoomService(room_log, make_chat_limit(settings.chat_rate, settings.chat_burst))
    media_engine, ceiling = make_media_engine(settings)
    media = MediaHub(media_engine, sessions, rooms, settings, bus, ceiling=ceiling)
    services = Services(settings=settings, sessions=sessions, bus=bus, rooms=rooms, media=media)
    lease = ProcessLease(
        sessions, room_log, bus,
        lifetime_seconds=settings.presence_lease_seconds, renew_seconds=settings.presence_renew_seconds,
    )
    due_work = DueWorkRunner(sessions, bus, poll_seconds=settings.due_work_poll_seconds)
    lease.register(due_work)
    invitations.register(due_work)
    app[SETTINGS] = settings
    app.on_response_prepare.append(middleware.security_headers)
    app[ENGINE] = engine
    app[SESSIONS] = sessions
    app[ROOMS] = rooms
    app[BUS] = bus
    app[TEMPLATES] = make_environment()
    realtime = Realtime(services, process_id=lease.process_id)
    Emitter(realtime).install(bus)
    media.install()  # after the emitter: room events reach clients before audio work
    app[REALTIME] = realtime
    app[DUE_WORK] = due_work
    app[LEASE] = lease
    app[EVIDENCE] = EvidenceRuntime(LocalBlobStore(settings.evidence_dir), settings.evidence_max_bytes)
    realtime.sio.attach(app)

    async def drop_sockets() -> None:
        # Our lease lapsed and our connections were closed: clients reconnect and rejoin.
        await close_engine_sockets(realtime)

    lease.on_lost = drop_sockets

    async def dispose_engine(app: web.Application) -> AsyncIterator[None]:
        yield
        close_manager = getattr(realtime.sio.manager, "aclose", None)
        if close_manager is not None:
            await close_manager()
        await realtime.sio.eio.aclose()
        try:
            await media.aclose()
        except Exception:  # the engine may be gone already; the rest must still close
            log.warning("closing the media engine failed", exc_info=True)
        if appender is not None:
            await appender.aclose()
        await engine.dispose()

    async def presence_and_due_work(app: web.Application) -> AsyncIterator[None]:
        await lease.start()
        if settings.redis_url is None:
            # The only process: every other lease belongs to a run that is over, and
            # its presence is closed before the first client is served.
            await lease.expire_others()
            async with sessions() as db:
                await bus.publish(*await close_unowned_connections(db, room_log))
            await due_work.run_once()
        due_work.start()
        yield
        # After on_shutdown: our sockets have left; close any left over, end the lease.
        await due_work.stop()
        await lease.stop()

    async def close_connections(app: web.Application) -> None:
        # A graceful stop closes every Socket.IO connection while the database is still
        # open. Their leaves are not recorded one by one (each broadcast to people who
        # are being disconnected too): ending the lease records them all, one commit
        # per set of rooms, and announces them to the other processes' sockets.
        realtime.stopping = True
        await close_engine_sockets(realtime)
        for sid in list(realtime.sockets):
            await realtime.sio.disconnect(sid)

    async def background(app: web.Application) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(realtime.run_sweeper(LOGIN_SWEEP_SECONDS)),
            asyncio.create_task(realtime.run_beacons(BEACON_SECONDS)),
        ]
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(dispose_engine)
    app.cleanup_ctx.append(background)
    app.cleanup_ctx.append(presence_and_due_work)
    app.on_shutdown.append(close_connections)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/static/vendor/{name}", vendor)
    app.router.add_get("/static/vendor/pdfjs/{kind}/{name}", pdfjs_data)
    app.router.add_get(ESM_VENDOR_PREFIX + "/{name:.+}", EsmVendor(CLIENT_DIR / "node_modules").handle)
    app.router.add_static("/static/js", CLIENT_DIR / "js")
    app.router.add_static("/static/css", CLIENT_DIR / "css")
    for table in ROUTE_TABLES:
        table.install(app)
    return app
