"""The Socket.IO transport: connect and authenticate, validate, authorise, dispatch.

Nothing else in the code base talks to python-socketio for incoming traffic; the
emitter (``realtime/emitter.py``) sends every broadcast of domain news, and this module
sends only acknowledgements and the local ``room.beacon``. Every incoming
event goes through one dispatcher:

1. the packet must decode and name a registered event (reserved lifecycle names,
   malformed JSON, ``42[]`` and ``42{}`` are answered ``invalid``, one log line);
2. the payload must validate against the event's pydantic model;
3. the socket's login must grant the visit, and the policy must allow the action
   (session scopes are cached per socket and re-checked against the visit's access
   version at most every ``SCOPE_FRESH_SECONDS``);
4. the handler runs (its service commits) and its committed news is published on the
   bus, which broadcasts it.

Per-socket state lives in ``self.sockets`` and changes only on the real engine-level
connect and disconnect, never because of anything a client sends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from http.cookies import CookieError, SimpleCookie
from typing import Any

import socketio
from pydantic import BaseModel, ValidationError
from sqlalchemy import select

from server.access import facts
from server.access.guard import SessionScope, VisitScope, authorize, resolve_session, visit_scope
from server.access.policy import Action
from server.agenda.models import AgendaSession
from server.core.errors import AccessMoved, DomainError, ErrorCode, invalid, not_found, unavailable
from server.db.errors import as_domain_error
from server.people import logins
from server.people import service as people
from server.people.models import LoginSession
from server.realtime.engine import LeanServer
from server.realtime.manager import make_client_manager
from server.realtime.names import person_room, room_name
from server.realtime.packets import TextPacket
from server.realtime.registry import RESERVED, Call, EventSpec, Kind, Link, load_all
from server.room.maintenance import conn_id
from server.services import Services
from server.visits.models import Visit

log = logging.getLogger("parley.realtime")
COOKIE_NAME = "parley_session"
# How long a socket's cached session scope is used without asking the database at
# all. After that, one cheap round trip re-checks the login and the visit's access
# version. Revocation does not wait for it: this process cuts the login's sockets at
# once, and the others' sweeps (every second) find it.
SCOPE_FRESH_SECONDS = 1.0
# Events in flight in this process beyond which new ones are shed with "unavailable".
MAX_IN_FLIGHT = 2000
_ACK_ID = re.compile(r"^2(?:\d+-)?(?:/[^,]*,)?(\d+)")

# The policy matrix and docs walk these (every event is declared in a domain's events.py).
EVENTS: dict[str, EventSpec] = {}
VISIT_EVENTS: dict[str, EventSpec] = {}


def _load_registry() -> None:
    for name, spec in load_all().items():
        (EVENTS if spec.kind is Kind.SESSION else VISIT_EVENTS)[name] = spec


_load_registry()


def _internal() -> DomainError:
    return DomainError(ErrorCode.INTERNAL, "Something went wrong; nothing was changed.")


def _refused(code: ErrorCode, message: str) -> socketio.exceptions.ConnectionRefusedError:
    # The client's connect_error carries ``message`` and ``data`` = {"code", "message"}.
    return socketio.exceptions.ConnectionRefusedError(message, {"code": str(code), "message": message})


def _parse(model: type[BaseModel], args: tuple[Any, ...]) -> Any:
    """Exactly one object, valid for ``model``; anything else is ``invalid``."""
    data = args[0] if len(args) == 1 else None
    if not isinstance(data, dict):
        raise invalid("payload: expected an object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise invalid(f"{where}: {first['msg']}") from None


def _tokens(environ: dict[str, Any]) -> str | None:
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(environ.get("HTTP_COOKIE", ""))
    except CookieError:
        return None
    return cookie[COOKIE_NAME].value if COOKIE_NAME in cookie else None


@dataclass
class CachedScope:
    scope: SessionScope
    login_id: str
    version: int
    checked: float
    generation: int


@dataclass
class Sock:
    """What this process knows of one connected socket."""

    sid: str
    conn: str
    logins: tuple[logins.Login, ...]  # (person, login) as resolved at connect
    rooms: dict[str, str] = field(default_factory=dict)  # session -> membership
    scopes: dict[str, CachedScope] = field(default_factory=dict)

    def login_for(self, visit_id: str) -> LoginSession | None:
        """The login this socket acts as in a visit (the one rule, in people/logins.py)."""
        found = logins.login_for_visit(self.logins, visit_id)
        return found[1] if found else None


class _Link(Link):
    def __init__(self, rt: Realtime, sock: Sock) -> None:
        self.rt = rt
        self.sock = sock

    async def enter(self, room: str) -> None:
        # A socket that went away while its join waited for the room is not an error
        # of the server: the join is refused cleanly (no presence is recorded for it).
        if self.rt.sockets.get(self.sock.sid) is not self.sock:
            raise DomainError(ErrorCode.CONFLICT, "This connection has closed.")
        await self.rt.sio.enter_room(self.sock.sid, room)

    async def leave(self, room: str) -> None:
        await self.rt.sio.leave_room(self.sock.sid, room)

    def remember_room(self, session_id: str, membership_id: str) -> None:
        self.sock.rooms[session_id] = membership_id

    def forget_room(self, session_id: str) -> None:
        self.sock.rooms.pop(session_id, None)


class GuardedServer(LeanServer):
    """python-socketio's server with its packet entry guarded.

    python-socketio hands a client event literally named "connect" or "disconnect" to
    the lifecycle handlers, and lets undecodable packets escape as tracebacks without
    an answer. Both entry points are overridden here (tests/realtime/test_packets.py
    fails if an upgrade changes them)."""

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            log.warning("unreadable packet from %s: %s", eio_sid, type(exc).__name__)
            await self._answer(eio_sid, data, invalid("packet: not a valid Socket.IO event."))

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            raise ValueError("event packet without a name")
        if data[0] in RESERVED:
            log.warning("reserved event name %r sent by %s", data[0], eio_sid)
            if id is not None:
                await self.eio.send(eio_sid, "3" + str(id) + json.dumps([invalid("event: this name is reserved.").as_payload()]))
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        """Acknowledgements and one-socket emits: written straight to the socket when
        its writer is idle, else queued as a packet that frees its payload once sent."""
        fanout = getattr(self.manager, "fanout", None)
        encoded = pkt.encode()
        if fanout is not None and isinstance(encoded, str):
            fanout.deliver((eio_sid,), encoded, one_shot=True)
            return
        await super()._send_packet(eio_sid, pkt)

    async def _answer(self, eio_sid: str, data: Any, err: DomainError) -> None:
        if not isinstance(data, str):
            return
        found = _ACK_ID.match(data)
        if found is None:
            return
        try:
            await self.eio.send(eio_sid, "3" + found.group(1) + json.dumps([err.as_payload()]))
        except Exception:  # the socket may be gone already
            log.debug("could not answer %s", eio_sid)


class Realtime:
    def __init__(
        self,
        services: Services,
        *,
        process_id: str,
        client_manager: Any = None,
    ) -> None:
        self.services = services
        self.settings = services.settings
        self.sessions = services.sessions
        self.process_id = process_id
        if client_manager is None:
            # Encodes each broadcast once and writes it to every socket directly; with
            # Redis, a gap in the message queue calls on_gap (caches dropped, beacons sent).
            client_manager = make_client_manager(self.settings, on_gap=self.on_gap)
        self.sio = GuardedServer(
            async_mode="aiohttp",
            serializer=TextPacket,
            cors_allowed_origins=list(self.settings.allowed_origins),
            client_manager=client_manager,
            max_http_buffer_size=64 * 1024,
            logger=False,
            engineio_logger=False,
        )
        self.sockets: dict[str, Sock] = {}
        self.stopping = False  # a graceful stop: the lease records the leaves at the end
        self._rows: dict[tuple[str, int], tuple[Visit, AgendaSession]] = {}
        self.generation = 0  # raised to drop every cached scope (after a message-queue gap)
        self.drops = 0  # raised by every drop of cached scopes (reads racing one start over)
        self.in_flight = 0
        self.shed = 0  # events answered "unavailable" since start (overload; see /healthz)
        self._swept_at = time.time()
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        for spec in (*EVENTS.values(), *VISIT_EVENTS.values()):
            self.sio.on(spec.name, self._dispatcher(spec))
        self.sio.on("*", self._unknown)

    # ---- lifecycle ----------------------------------------------------------------

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if sid in self.sockets:  # never twice for one socket
            raise _refused(ErrorCode.INVALID, "Already connected.")
        if environ.get("HTTP_ORIGIN") not in self.settings.allowed_origins:
            raise _refused(ErrorCode.FORBIDDEN, "This origin is not allowed.")
        try:
            async with self.sessions() as db:
                logins = await self._resolve_logins(db, _tokens(environ))
        except Exception as exc:
            err = as_domain_error(exc)
            if err is None:
                log.exception("connect failed")
                err = _internal()
            raise _refused(err.code, err.message) from None
        if not logins:
            raise _refused(ErrorCode.UNAUTHENTICATED, "Open your invitation link to sign in.")
        self.sockets[sid] = Sock(sid, conn_id(self.process_id, sid), logins)
        for person_id in sorted({person.id for person, _ in logins}):
            await self.sio.enter_room(sid, person_room(person_id))

    async def _resolve_logins(self, db: Any, value: str | None) -> tuple[logins.Login, ...]:
        """Every valid login the browser's cookie holds (one per visit it joined, plus
        a password login); each event then acts as the one granting its visit."""
        return tuple(await logins.resolve_logins(db, self.settings.secret_key, value))

    def local_sid(self, conn: str) -> str | None:
        """The socket id of one of this process's connections (``<process>:<sid>``)."""
        process, _, sid = conn.rpartition(":")
        return sid if process == self.process_id and sid in self.sockets else None

    async def _disconnect(self, sid: str, *_: Any) -> None:
        sock = self.sockets.pop(sid, None)
        if sock is None:
            return
        try:  # its audio goes with it, whatever else happens
            await self.services.media.drop(sock.conn)
        except Exception:
            log.warning("media clean-up failed for %s", sid, exc_info=True)
        if self.stopping:
            return
        for session_id, membership_id in list(sock.rooms.items()):
            try:
                out = await self.services.rooms.leave(session_id, membership_id, sock.conn)
                await self.services.bus.publish(*out.news)
            except Exception:  # a failed leave must not stop the others
                log.warning("leave failed for %s in %s", sid, session_id, exc_info=True)

    async def end_logins(self, login_ids: set[str]) -> None:
        """Disconnect this process's sockets that hold a login that ended."""
        for sid, sock in list(self.sockets.items()):
            if any(login.id in login_ids for _, login in sock.logins):
                await self.sio.disconnect(sid)

    async def sweep(self, full: bool = False) -> None:
        """Disconnect local sockets whose login ended through another process.

        The quick sweep asks only for logins revoked or expired since the last sweep
        (cheap, so it runs every second); the full one re-checks every local login
        (archived visits). Sockets that connect while the query runs are not in the
        snapshot it judges, so they are never mistaken for ended ones."""
        snapshot = {sid: {login.id for _, login in sock.logins} for sid, sock in self.sockets.items()}
        if not snapshot:
            self._swept_at = time.time()
            return
        ids = set().union(*snapshot.values())
        started = time.time()
        async with self.sessions() as db:
            if full:
                ended = ids - await logins.valid_login_ids(db, ids)
            else:
                ended = await people.ended_login_ids(db, ids, since_epoch=self._swept_at - 1)
        self._swept_at = started
        for sid, held in snapshot.items():
            if held & ended and sid in self.sockets:
                await self.sio.disconnect(sid)

    async def run_sweeper(self, interval: float, full_every: int = 30) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(interval)
            rounds += 1
            try:
                await self.sweep(full=rounds % full_every == 0)
            except Exception:
                log.warning("login sweep failed", exc_info=True)

    # ---- dispatch -----------------------------------------------------------------

    async def _unknown(self, event: str, sid: str, *_: Any) -> dict[str, Any]:
        # Answered, so a client calling an event this server lacks does not wait forever.
        return invalid("event: no such event.").as_payload()

    def _dispatcher(self, spec: EventSpec) -> Callable[..., Awaitable[dict[str, Any]]]:
        async def dispatch(sid: str, *args: Any) -> dict[str, Any]:
            if self.in_flight >= MAX_IN_FLIGHT:
                self.shed += 1
                return unavailable(1.0).as_payload()
            self.in_flight += 1
            try:
                return await self._run(spec, sid, args)
            finally:
                self.in_flight -= 1

        return dispatch

    async def _run(self, spec: EventSpec, sid: str, args: tuple[Any, ...], *, retried: bool = False) -> dict[str, Any]:
        sock = self.sockets.get(sid)
        try:
            if sock is None:
                raise DomainError(ErrorCode.UNAUTHENTICATED, "This connection is not signed in.")
            payload = _parse(spec.model, args)
            scope: SessionScope | VisitScope
            if spec.kind is Kind.SESSION:
                try:
                    scope = await self._session_scope(sock, payload.session_id)
                    if spec.action is Action.SESSION_ENTER:
                        authorize(scope, spec.action)
                except DomainError as err:
                    # No longer allowed in a room they are recorded in: they left it.
                    if err.code in (ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN):
                        await self._left_on_refusal(sock, payload.session_id)
                    raise
                authorize(scope, spec.action)
            else:
                scope = await self._visit_scope(sock, payload.visit_id, spec)
            version = sock.scopes[payload.session_id].version if spec.kind is Kind.SESSION else None
            call: Call[Any] = Call(sid, sock.conn, scope, payload, _Link(self, sock), self.services, version)
            try:
                reply = await spec.handler(call)
            except AccessMoved:
                if retried:
                    raise
                # The rules changed while this waited for the room: decide again.
                sock.scopes.pop(payload.session_id, None)
                return await self._run(spec, sid, args, retried=True)
            await self.services.bus.publish(*reply.news)
            return {"ok": True, **reply.ack}
        except DomainError as err:
            if err.code is ErrorCode.UNAVAILABLE:
                self.shed += 1
            return err.as_payload()
        except Exception as exc:
            mapped = as_domain_error(exc)
            if mapped is not None:
                self.shed += 1
                return mapped.as_payload()
            log.exception("event %s failed", spec.name)
            return _internal().as_payload()

    async def _left_on_refusal(self, sock: Sock, session_id: str) -> None:
        """Someone refused a room they are recorded in (their access changed and the
        room was emptied) has left it: record the leave, so presence does not claim
        them until their connection closes."""
        membership_id = sock.rooms.pop(session_id, None)
        if membership_id is None:
            return
        sock.scopes.pop(session_id, None)
        try:
            await self.services.media.drop(sock.conn, [session_id])
            out = await self.services.rooms.leave(session_id, membership_id, sock.conn, reason="access")
            await self.services.bus.publish(*out.news)  # the leaver hears its own leave too
            await self.sio.leave_room(sock.sid, room_name(session_id))
        except Exception:
            log.warning("leave after a refusal failed for %s in %s", sock.sid, session_id, exc_info=True)

    async def _session_scope(self, sock: Sock, session_id: str) -> SessionScope:
        """The socket's scope in a session: cached, re-checked against the login and the
        visit's access version at most every ``SCOPE_FRESH_SECONDS``. A scope read while
        the rules changed on this process (``drops`` moved) is read again, never cached."""
        for _ in range(3):
            drops = self.drops
            found = await self._read_scope(sock, session_id)
            if self.drops == drops:
                if found is not None:
                    sock.scopes[session_id] = found
                return sock.scopes[session_id].scope
            sock.scopes.pop(session_id, None)
        raise unavailable(1.0, "The rules of this session are changing; try again.")

    async def _read_scope(self, sock: Sock, session_id: str) -> CachedScope | None:
        """A new cache entry, or None when the cached one is still good."""
        cached = sock.scopes.get(session_id)
        now = time.monotonic()
        current = cached is not None and cached.generation == self.generation
        if cached is not None and current and now - cached.checked < SCOPE_FRESH_SECONDS:
            return None
        async with self.sessions() as db:
            if cached is not None and current:
                valid, version = await people.login_and_version(db, cached.login_id, cached.scope.visit.id)
                if not valid:
                    raise DomainError(ErrorCode.UNAUTHENTICATED, "Your login has ended.")
                if version == cached.version:
                    cached.checked = now
                    return None
            visit_id = (
                await db.execute(
                    select(AgendaSession.visit_id).where(
                        AgendaSession.id == session_id, AgendaSession.cancelled_at.is_(None)
                    )
                )
            ).scalar_one_or_none()
            ref = sock.login_for(visit_id) if visit_id else None
            if visit_id is None or ref is None:
                raise not_found("Session")
            found = await logins.active_login(db, ref.id)
            if found is None:
                raise DomainError(ErrorCode.UNAUTHENTICATED, "Your login has ended.")
            person, login = found
            version = await facts.version(db, visit_id)
            scope = await resolve_session(
                db, person, session_id, visit_id=login.visit_id if login.via == logins.INVITATION else None
            )
        return CachedScope(self._shared(scope, version), ref.id, version, now, self.generation)

    def _shared(self, scope: SessionScope, version: int) -> SessionScope:
        """One copy of a session's visit and session rows for every socket that caches a
        scope of it at this access version (hundreds of sockets per room, each would
        otherwise hold its own ORM instances)."""
        key = (scope.session.id, version)
        found = self._rows.get(key)
        if found is None:
            if len(self._rows) > 10_000:
                self._rows.clear()
            found = self._rows[key] = (scope.visit, scope.session)
        return replace(scope, visit=found[0], session=found[1])

    async def _visit_scope(self, sock: Sock, visit_id: str, spec: EventSpec) -> VisitScope:
        ref = sock.login_for(visit_id)
        if ref is None:
            raise not_found("Visit")
        async with self.sessions() as db:
            found = await logins.active_login(db, ref.id)
            if found is None:
                raise DomainError(ErrorCode.UNAUTHENTICATED, "Your login has ended.")
            # A non-member is told the visit does not exist; the policy decides the rest.
            return await visit_scope(db, found[0], visit_id, spec.action)

    # ---- caches and beacons ---------------------------------------------------------

    def drop_scopes(self, visit_id: str | None = None) -> None:
        """Forget cached scopes (of one visit, or all after a message-queue gap)."""
        self.drops += 1
        if visit_id is None:
            self.generation += 1
            return
        for sock in self.sockets.values():
            for session_id in [s for s, c in sock.scopes.items() if c.scope.visit.id == visit_id]:
                del sock.scopes[session_id]

    def local_rooms(self) -> set[str]:
        return {session_id for sock in self.sockets.values() for session_id in sock.rooms}

    async def beacon(self) -> None:
        """Tell this process's room members the last committed ``seq`` of their rooms
        (``room.beacon``). A client behind it syncs: this is how anyone who missed a
        broadcast (a message-queue outage, a dropped packet) catches up by itself."""
        rooms = sorted(self.local_rooms())
        if not rooms:
            return
        async with self.sessions() as db:
            latest = await self.services.rooms.log.latest(db, rooms)
        for session_id, seq in latest.items():
            await self.sio.emit(
                "room.beacon", {"session_id": session_id, "seq": seq}, room=room_name(session_id), ignore_queue=True
            )

    async def run_beacons(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.beacon()
            except Exception:
                log.warning("beacon failed", exc_info=True)

    async def on_gap(self, reason: str = "gap") -> None:
        """The message queue lost messages: drop caches and beacon at once."""
        log.warning("message-queue gap (%s): dropping caches and sending beacons", reason)
        self.drop_scopes()
        self.services.rooms.log.forget_all()
        try:
            await self.beacon()
        except Exception:
            log.warning("beacon after gap failed", exc_info=True)
