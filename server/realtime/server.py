"""The Socket.IO layer: authenticated connect, typed event registry, acknowledgements.

Each event is declared once with the policy action it needs and the pydantic model
of its payload; the wrapper validates, authorises through the access guard, calls
the room service, broadcasts what the service committed, and returns
``{"ok": true, ...}`` or ``{"error": {"code", "message"}}``. Nothing else in the
code base talks to python-socketio.

``EVENTS`` are about one agenda session (their payload names it, and the policy
matrix walks them); ``VISIT_EVENTS`` are about a whole visit (``visit.watch``) and
are authorised with ``visit_scope`` instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import socketio
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.access.guard import SessionScope, VisitScope, session_scope, visit_scope
from server.access.policy import Action
from server.config import Settings
from server.core.errors import DomainError, ErrorCode, invalid
from server.people import service as people
from server.people.models import Person
from server.realtime.manager import make_client_manager
from server.room import schemas
from server.room.service import Outcome, RoomService

if TYPE_CHECKING:
    from server.scheduling.service import AgendaChanged

log = logging.getLogger("parley.realtime")
COOKIE_NAME = "parley_session"


def room_name(session_id: str) -> str:
    return f"s:{session_id}"


def lobby_name(session_id: str, membership_id: str) -> str:
    return f"w:{session_id}:{membership_id}"


def visit_room(visit_id: str) -> str:
    return f"v:{visit_id}"


def member_room(visit_id: str, membership_id: str) -> str:
    """One member's sockets watching a visit: news filtered to what they may see."""
    return f"v:{visit_id}:m:{membership_id}"


@dataclass(frozen=True)
class EventContext:
    sid: str
    db: AsyncSession
    scope: SessionScope
    payload: Any


Handler = Callable[["Realtime", EventContext], Awaitable[Outcome | dict[str, Any]]]
VisitHandler = Callable[["Realtime", str, VisitScope, Any], Awaitable[dict[str, Any]]]
H = TypeVar("H")


@dataclass(frozen=True)
class Spec(Generic[H]):
    """An event: its name, the policy action it needs, its payload model, its handler."""

    name: str
    action: Action
    model: type[BaseModel]
    handler: H


EventSpec = Spec[Handler]
VisitEventSpec = Spec[VisitHandler]
# Session-scoped events (the policy matrix walks them) and visit-wide ones.
EVENTS: dict[str, EventSpec] = {}
VISIT_EVENTS: dict[str, VisitEventSpec] = {}


def _registrar(registry: dict[str, Spec[H]]) -> Callable[[str, Action, type[BaseModel]], Callable[[H], H]]:
    def declare(name: str, action: Action, model: type[BaseModel]) -> Callable[[H], H]:
        def register(handler: H) -> H:
            registry[name] = Spec(name, action, model, handler)
            return handler

        return register

    return declare


event = _registrar(EVENTS)
visit_event = _registrar(VISIT_EVENTS)


class VisitRef(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    visit_id: schemas.Id


def _error(err: DomainError) -> dict[str, Any]:
    return err.as_payload()


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
        raise invalid(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    return f"{where}: {first['msg']}"


class Realtime:
    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], rooms: RoomService
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.rooms = rooms
        manager = make_client_manager(settings)
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            cors_allowed_origins=list(settings.allowed_origins),
            client_manager=manager,
            max_http_buffer_size=64 * 1024,
            logger=False,
            engineio_logger=False,
        )
        self.logins: dict[str, str] = {}  # this process's sockets -> login session id
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        for spec in EVENTS.values():
            self.sio.on(spec.name, self._dispatcher(spec))
        for visit_spec in VISIT_EVENTS.values():
            self.sio.on(visit_spec.name, self._visit_dispatcher(visit_spec))
        self.sio.on("*", self._unknown)

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        origin = environ.get("HTTP_ORIGIN")
        if origin not in self.settings.allowed_origins:
            raise _refused(ErrorCode.FORBIDDEN, "This origin is not allowed.")
        cookie = SimpleCookie()
        cookie.load(environ.get("HTTP_COOKIE", ""))
        token = cookie[COOKIE_NAME].value if COOKIE_NAME in cookie else None
        async with self.sessions() as db:
            found = await people.resolve_login(db, self.settings.secret_key, token)
        if found is None:
            raise _refused(ErrorCode.UNAUTHENTICATED, "Open your invitation link to sign in.")
        person, login = found
        await self.sio.save_session(sid, {"login_id": login.id, "rooms": {}})
        self.logins[sid] = login.id

    async def _disconnect(self, sid: str, *_: Any) -> None:
        saved = await self.sio.get_session(sid)
        self.logins.pop(sid, None)
        for session_id, membership_id in dict(saved.get("rooms", {})).items():
            try:
                async with self.sessions() as db:
                    await self._broadcast(await self.rooms.leave(db, session_id, membership_id, sid), session_id)
            except Exception:  # a failed leave must not stop the others
                log.exception("leave failed for %s in %s", sid, session_id)

    async def reset_rooms(self, session_ids: list[str]) -> None:
        """After an access, chair or role change: empty these rooms on every process.

        Sockets already in a room would otherwise keep receiving its broadcasts under
        the old rules; each client is told to join again, which asks the policy anew.
        """
        for session_id in session_ids:
            await self.sio.emit("room.reset", {"session_id": session_id}, room=room_name(session_id))
            await self.sio.close_room(room_name(session_id))

    async def end_logins(self, login_ids: set[str]) -> None:
        """Disconnect this process's sockets of logins that ended (revoked, expired)."""
        for sid, login_id in list(self.logins.items()):
            if login_id in login_ids:
                await self.sio.disconnect(sid)

    async def sweep(self) -> None:
        """Disconnect local sockets whose login is no longer valid. A revocation made
        through another process reaches this one at the next sweep."""
        if not self.logins:
            return
        async with self.sessions() as db:
            valid = await people.valid_login_ids(db, set(self.logins.values()))
        await self.end_logins(set(self.logins.values()) - valid)

    async def run_sweeper(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("login sweep failed")

    async def _unknown(self, event: str, sid: str, *_: Any) -> dict[str, Any]:
        # Answered, so a client calling an event this server lacks does not wait forever.
        return _error(invalid("event: no such event."))

    async def _person(self, db: AsyncSession, sid: str) -> Person:
        """The socket's person, re-checked on every event (a login can end at any time)."""
        saved = await self.sio.get_session(sid)
        person = await people.active_person(db, saved["login_id"])
        if person is None:
            raise DomainError(ErrorCode.UNAUTHENTICATED, "Your login has ended.")
        return person

    def _dispatcher(self, spec: EventSpec) -> Callable[..., Awaitable[dict[str, Any]]]:
        async def dispatch(sid: str, *args: Any) -> dict[str, Any]:
            try:
                payload = _parse(spec.model, args)
                async with self.sessions() as db:
                    person = await self._person(db, sid)
                    scope = await session_scope(db, person, payload.session_id, spec.action)  # type: ignore[attr-defined]
                    result = await spec.handler(self, EventContext(sid, db, scope, payload))
                if isinstance(result, Outcome):
                    await self._broadcast(result, scope.session.id)
                    return {"ok": True, **result.ack}
                return {"ok": True, **result}
            except DomainError as err:
                return _error(err)
            except Exception:
                log.exception("event %s failed", spec.name)
                return _error(DomainError(ErrorCode.INTERNAL, "Something went wrong; nothing was changed."))

        return dispatch

    def _visit_dispatcher(self, spec: VisitEventSpec) -> Callable[..., Awaitable[dict[str, Any]]]:
        async def dispatch(sid: str, *args: Any) -> dict[str, Any]:
            try:
                payload = _parse(spec.model, args)
                async with self.sessions() as db:
                    person = await self._person(db, sid)
                    # A non-member is told the visit does not exist; the policy decides the rest.
                    scope = await visit_scope(db, person, payload.visit_id, spec.action)  # type: ignore[attr-defined]
                return {"ok": True, **await spec.handler(self, sid, scope, payload)}
            except DomainError as err:
                return _error(err)
            except Exception:
                log.exception("event %s failed", spec.name)
                return _error(DomainError(ErrorCode.INTERNAL, "Something went wrong; nothing was changed."))

        return dispatch

    async def announce_agenda(self, change: AgendaChanged) -> None:
        """``agenda.changed`` to each member watching the visit, naming only the moved
        sessions they may see. Called after the change was committed."""
        for membership_id, moved in change.audience.items():
            await self.sio.emit(
                "agenda.changed",
                {"visit_id": change.visit_id, "sessions": [m.as_json() for m in moved]},
                room=member_room(change.visit_id, membership_id),
            )

    async def _broadcast(self, outcome: Outcome, session_id: str) -> None:
        for item in outcome.events:
            await self.sio.emit("room.event", {"session_id": session_id, **item}, room=room_name(session_id))
        for membership_id, status in outcome.admissions:
            await self.sio.emit(
                "room.admission",
                {"session_id": session_id, "status": status},
                room=lobby_name(session_id, membership_id),
            )

    async def remember_room(self, sid: str, session_id: str, membership_id: str) -> None:
        async with self.sio.session(sid) as saved:
            saved["rooms"][session_id] = membership_id


# ---- events -------------------------------------------------------------------------------


@event("room.join", Action.SESSION_ENTER, schemas.JoinPayload)
async def _join(rt: Realtime, ctx: EventContext) -> Outcome:
    """Enter a room. Ack: ``status`` "joined" with ``state`` (or ``events`` after ``since``),
    or "waiting" (then a ``room.admission`` event follows)."""
    session_id = ctx.scope.session.id
    lobby = lobby_name(session_id, ctx.scope.actor.membership_id)

    async def subscribe() -> None:
        await rt.sio.leave_room(ctx.sid, lobby)
        await rt.sio.enter_room(ctx.sid, room_name(session_id))

    # Subscribed only once entry is decided (never while waiting), before the join is
    # committed, so nothing committed after the acknowledged state is missed.
    out = await rt.rooms.join(ctx.db, ctx.scope, ctx.sid, ctx.payload.since, subscribe)
    if out.ack["status"] == "waiting":
        await rt.sio.enter_room(ctx.sid, lobby)
    else:
        await rt.remember_room(ctx.sid, session_id, ctx.scope.actor.membership_id)
    out.ack["me"] = ctx.scope.actor.membership_id
    out.ack["is_chair"] = ctx.scope.is_chair
    return out


@event("room.leave", Action.SESSION_ENTER, schemas.SessionRef)
async def _leave(rt: Realtime, ctx: EventContext) -> Outcome:
    """Leave a room (as a disconnect does)."""
    await rt.sio.leave_room(ctx.sid, room_name(ctx.scope.session.id))
    return await rt.rooms.leave(ctx.db, ctx.scope.session.id, ctx.scope.actor.membership_id, ctx.sid)


@event("room.sync", Action.SESSION_ENTER, schemas.SyncPayload)
async def _sync(rt: Realtime, ctx: EventContext) -> dict[str, Any]:
    """Events after ``since`` in order (or ``state`` when more than 1000 were missed)."""
    return await rt.rooms.sync(ctx.db, ctx.scope, ctx.payload.since)


@event("chat.send", Action.CHAT_SEND, schemas.ChatPayload)
async def _chat(rt: Realtime, ctx: EventContext) -> Outcome:
    """Post a chat message; ``idem`` makes a retried send store once."""
    return await rt.rooms.chat(ctx.db, ctx.scope, ctx.payload.text, ctx.payload.idem)


@event("floor.request", Action.FLOOR_REQUEST, schemas.IdemPayload)
async def _request(rt: Realtime, ctx: EventContext) -> Outcome:
    """Join the end of the speakers' list."""
    return await rt.rooms.request_floor(ctx.db, ctx.scope, ctx.payload.idem)


@event("floor.withdraw", Action.FLOOR_REQUEST, schemas.IdemPayload)
async def _withdraw(rt: Realtime, ctx: EventContext) -> Outcome:
    """Leave the speakers' list."""
    return await rt.rooms.withdraw_floor(ctx.db, ctx.scope, ctx.payload.idem)


@event("floor.give", Action.FLOOR_CHAIR, schemas.TargetPayload)
async def _give(rt: Realtime, ctx: EventContext) -> Outcome:
    """Chair: give the floor to ``membership_id``."""
    return await rt.rooms.give_floor(ctx.db, ctx.scope, ctx.payload.membership_id, ctx.payload.idem)


@event("floor.end", Action.FLOOR_CHAIR, schemas.IdemPayload)
async def _end(rt: Realtime, ctx: EventContext) -> Outcome:
    """Chair: end the current intervention."""
    return await rt.rooms.end_floor(ctx.db, ctx.scope, ctx.payload.idem)


@event("item.start", Action.ITEM_MOVE, schemas.ItemPayload)
async def _item_start(rt: Realtime, ctx: EventContext) -> Outcome:
    """Chair: make ``item_id`` the current agenda item."""
    return await rt.rooms.start_item(ctx.db, ctx.scope, ctx.payload.item_id, ctx.payload.idem)


@event("item.end", Action.ITEM_MOVE, schemas.IdemPayload)
async def _item_end(rt: Realtime, ctx: EventContext) -> Outcome:
    """Chair: close the current agenda item."""
    return await rt.rooms.end_item(ctx.db, ctx.scope, ctx.payload.idem)


@event("lobby.admit", Action.LOBBY_DECIDE, schemas.TargetPayload)
async def _admit(rt: Realtime, ctx: EventContext) -> Outcome:
    """Chair: admit ``membership_id`` from the lobby (for this session)."""
    return await rt.rooms.decide_admission(ctx.db, ctx.scope, ctx.payload.membership_id, True, ctx.payload.idem)


@event("lobby.decline", Action.LOBBY_DECIDE, schemas.TargetPayload)
async def _decline(rt: Realtime, ctx: EventContext) -> Outcome:
    """Chair: decline ``membership_id``'s request to enter."""
    return await rt.rooms.decide_admission(ctx.db, ctx.scope, ctx.payload.membership_id, False, ctx.payload.idem)


# ---- visit events -------------------------------------------------------------------------


@visit_event("visit.watch", Action.VISIT_VIEW, VisitRef)
async def _watch(rt: Realtime, sid: str, scope: VisitScope, payload: VisitRef) -> dict[str, Any]:
    """Follow a visit's news: this socket then receives ``agenda.changed`` ``{visit_id,
    sessions: [{id, start_utc, end_utc, sequence}]}`` whenever sessions it may see move.
    Ack: ``{"ok": true, "visit_id"}``; errors: ``invalid``, ``unauthenticated``,
    ``not_found`` (not a member of the visit). Watching again is harmless; a reconnected
    socket must watch again (and re-read the agenda: it may have missed news)."""
    await rt.sio.enter_room(sid, visit_room(scope.visit.id))
    await rt.sio.enter_room(sid, member_room(scope.visit.id, scope.actor.membership_id))
    return {"visit_id": scope.visit.id}
