"""The room page and the session API."""

from __future__ import annotations

from aiohttp import web

from server.access.guard import SessionScope, controls
from server.access.policy import Action
from server.agenda import service as agenda
from server.core.i18n import pick_language
from server.core.times import local
from server.people.models import Person
from server.web.keys import ROOMS, SESSIONS, SETTINGS
from server.web.routing import RouteTable
from server.web.templating import render

routes = RouteTable()


async def _session_view(request: web.Request, scope: SessionScope) -> agenda.SessionView:
    async with request.app[SESSIONS]() as db:
        items = await request.app[ROOMS].items(db, scope.session.id)
    tz = scope.actor.timezone
    return agenda.SessionView(
        session=scope.session,
        start=local(scope.session.start_utc, tz),
        end=local(scope.session.end_utc, tz),
        live=agenda.is_live(scope.session),
        items=items,
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
            "may": controls(scope),
        },
        lang=lang,
    )


@routes.get("/api/sessions/{session_id}", action=Action.SESSION_VIEW)
async def session_api(request: web.Request, scope: SessionScope) -> web.StreamResponse:
    view = await _session_view(request, scope)
    return web.json_response(view.as_json() | {"is_chair": scope.is_chair})
