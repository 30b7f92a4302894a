"""The room page and the session API."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from server.access.guard import SessionScope
from server.access.policy import Action, decide
from server.access.roles import Access
from server.agenda import manage
from server.agenda import service as agenda
from server.agenda.models import AgendaSession
from server.core.errors import invalid
from server.core.i18n import pick_language
from server.people.models import Person
from server.web.bodies import read_json
from server.web.keys import REALTIME, ROOMS, SESSIONS, SETTINGS
from server.web.routing import RouteTable
from server.web.templating import render

routes = RouteTable()


async def _session_view(request: web.Request, scope: SessionScope) -> agenda.SessionView:
    async with request.app[SESSIONS]() as db:
        items = await request.app[ROOMS].items(db, scope.session.id)
    tz = scope.actor.timezone
    return agenda.SessionView(
        session=scope.session,
        start=agenda.local(scope.session.start_utc, tz),
        end=agenda.local(scope.session.end_utc, tz),
        live=agenda.is_live(scope.session),
        items=items,
    )


def _may(scope: SessionScope, action: Action) -> bool:
    return decide(
        action, scope.actor.role, Access(scope.session.access),
        is_chair=scope.is_chair, is_invited=scope.is_invited,
    )


@routes.get("/sessions/{session_id}", action=Action.SESSION_ENTER, page=True)
async def room_page(request: web.Request, scope: SessionScope) -> web.StreamResponse:
    view = await _session_view(request, scope)
    async with request.app[SESSIONS]() as db:
        person = await db.get(Person, scope.actor.person_id)
    lang = pick_language(person.languages if person else None, request.app[SETTINGS].default_language)
    return render(
        request,
        "room.html",
        {
            "scope": scope, "view": view, "visit": scope.visit, "actor": scope.actor,
            # Which controls the page offers (the server checks every event anyway).
            "may": {
                "speak": _may(scope, Action.FLOOR_REQUEST),
                "chat": _may(scope, Action.CHAT_SEND),
                "chair": _may(scope, Action.FLOOR_CHAIR),
            },
        },
        lang=lang,
    )


@routes.get("/api/sessions/{session_id}", action=Action.SESSION_VIEW)
async def session_api(request: web.Request, scope: SessionScope) -> web.StreamResponse:
    view = await _session_view(request, scope)
    return web.json_response(view.as_json() | {"is_chair": scope.is_chair})


@routes.route("PATCH", "/api/sessions/{session_id}", action=Action.SESSION_MANAGE)
async def change_session_api(request: web.Request, scope: SessionScope) -> web.StreamResponse:
    """Secretariat: change access, admission or chair. Body: SessionChanges (JSON)."""
    body = await read_json(request)
    try:
        changes = manage.SessionChanges.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise invalid(f"{'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}") from None
    async with request.app[SESSIONS]() as db:
        session = await db.get(AgendaSession, scope.session.id)
        assert session is not None
        await manage.change_session(db, session, changes, actor_person_id=scope.actor.person_id)
        chairs = await manage.named_chairs(db, session.id)
    await request.app[REALTIME].reset_rooms([session.id])
    return web.json_response(
        {"id": session.id, "access": session.access, "requires_admission": session.requires_admission, "chairs": chairs}
    )
