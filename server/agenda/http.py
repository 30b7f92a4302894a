"""Agenda API: secretariat changes to a session (access level, admission, chair)."""

from __future__ import annotations

from aiohttp import web

from server.access.guard import SessionScope
from server.access.policy import Action
from server.agenda import manage
from server.agenda.models import AgendaSession
from server.core.errors import not_found
from server.web.bodies import read_json, validated
from server.web.bus import publish
from server.web.keys import SESSIONS
from server.web.routing import RouteTable

routes = RouteTable()


@routes.route("PATCH", "/api/sessions/{session_id}", action=Action.SESSION_MANAGE)
async def change_session_api(request: web.Request, scope: SessionScope) -> web.StreamResponse:
    """Secretariat: change access, admission or chair. Body: SessionChanges (JSON).
    The session's room is emptied so everyone re-joins under the new rules."""
    changes = validated(manage.SessionChanges, await read_json(request))
    async with request.app[SESSIONS]() as db:
        session = await db.get(AgendaSession, scope.session.id)
        if session is None:
            raise not_found("Session")
        changed = await manage.change_session(db, session, changes, actor_person_id=scope.actor.person_id)
        chairs = await manage.named_chairs(db, session.id)
        await db.commit()
    if changed is not None:
        await publish(request, changed)
    return web.json_response(
        {"id": session.id, "access": session.access, "requires_admission": session.requires_admission, "chairs": chairs}
    )
