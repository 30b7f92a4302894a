"""Visit pages and API: home, overview with the agenda, participants, invitations."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access.facts import AccessChanged
from server.access.guard import PersonScope, VisitScope
from server.access.policy import Action, decide
from server.agenda import service as agenda
from server.agenda.models import AgendaSession
from server.core.errors import invalid
from server.core.i18n import pick_language
from server.core.times import local
from server.people.models import Person
from server.scheduling.strip import zone_strip
from server.visits import service as visits
from server.web.bodies import read_json
from server.web.bus import publish
from server.web.keys import SESSIONS, SETTINGS
from server.web.routing import RouteTable
from server.web.templating import render

routes = RouteTable()


def _visit_json(scope: VisitScope) -> dict[str, Any]:
    v = scope.visit
    return {
        "id": v.id,
        "title": v.title,
        "state_under_review": v.state_under_review,
        "reviewing_states": v.reviewing_states,
        "cycle": v.cycle,
        "status": v.status,
        "timezone": v.timezone,
        "me": scope.actor.public() | {"timezone": scope.actor.timezone},
    }


@routes.get("/", action=Action.SELF, page=True)
async def home(request: web.Request, scope: PersonScope) -> web.StreamResponse:
    """The visits this browser's logins grant (not every visit of their person)."""
    async with request.app[SESSIONS]() as db:
        mine = await visits.visits_granted(db, scope.logins)
    if len(mine) == 1:
        raise web.HTTPSeeOther(f"/visits/{mine[0][0].id}")
    person = scope.person
    lang = pick_language(person.languages, request.app[SETTINGS].default_language)
    return render(request, "home.html", {"person": person, "visits": mine}, lang=lang)


async def _agenda_context(db: AsyncSession, request: web.Request, scope: VisitScope) -> dict[str, Any]:
    """What the agenda list (templates/_agenda.html) shows: the sessions the viewer may
    see, in the chosen zone, each with its time-zone strip."""
    key, zone = agenda.display_zone(request.query.get("tz"), scope.actor, scope.visit)
    sessions = await agenda.agenda(db, scope.actor, scope.visit, zone)
    strips = await zone_strip(db, scope.visit.id, [s.session for s in sessions])
    return {"visit": scope.visit, "actor": scope.actor, "sessions": sessions, "strips": strips,
            "tz_key": key, "tz": zone}


@routes.get("/visits/{visit_id}", action=Action.VISIT_VIEW, page=True)
async def visit_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        context = await _agenda_context(db, request, scope)
        people = (
            await visits.participants(db, scope.visit.id)
            if decide(Action.PARTICIPANTS_VIEW, scope.actor.role)
            else []
        )
        person = await db.get(Person, scope.actor.person_id)
        notices = await visits.reissued_links(db, [scope.actor.membership_id])
    lang = pick_language(person.languages if person else None, request.app[SETTINGS].default_language)
    return render(
        request,
        "visit.html",
        {
            **context,
            "participants": people,
            # Controls follow the policy's answers, never raw role names.
            "manage": decide(Action.VISIT_MANAGE, scope.actor.role),
            "manage_booths": decide(Action.BOOTHS_MANAGE, scope.actor.role),
            "link_notices": [(n, local(n.at, scope.actor.timezone)) for n in notices],
        },
        lang=lang,
    )


@routes.get("/visits/{visit_id}/agenda-fragment", action=Action.VISIT_VIEW, page=True)
async def agenda_fragment(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """The visit page's agenda list alone (``?tz=`` as on the page), for live updates."""
    async with request.app[SESSIONS]() as db:
        context = await _agenda_context(db, request, scope)
        person = await db.get(Person, scope.actor.person_id)
    lang = pick_language(person.languages if person else None, request.app[SETTINGS].default_language)
    return render(request, "_agenda.html", context, lang=lang)


@routes.get("/api/visits/{visit_id}", action=Action.VISIT_VIEW)
async def visit_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        sessions = await agenda.agenda(db, scope.actor, scope.visit, scope.actor.timezone)
    return web.json_response(_visit_json(scope) | {"sessions": [s.as_json() for s in sessions]})


@routes.get("/api/visits/{visit_id}/participants", action=Action.PARTICIPANTS_VIEW)
async def participants_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        rows = await visits.participants(db, scope.visit.id)
    return web.json_response(
        {
            "participants": [
                {
                    "membership_id": r.membership_id,
                    "name": r.name,
                    "role": r.role,
                    "delegation": r.delegation,
                    "timezone": r.timezone,
                    "languages": r.languages,
                }
                for r in rows
            ]
        }
    )


@routes.post("/api/visits/{visit_id}/participants/{membership_id}/invitation", action=Action.VISIT_MANAGE)
async def reissue_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """Secretariat: issue a fresh invitation link; the previous one stops working."""
    settings = request.app[SETTINGS]
    async with request.app[SESSIONS]() as db:
        token = await visits.reissue_invitation(
            db,
            settings.secret_key,
            scope.visit.id,
            request.match_info["membership_id"][:64],
            actor_person_id=scope.actor.person_id,
            days=settings.invitation_days,
        )
        await db.commit()
    return web.json_response({"invite_url": f"{settings.base_url}/invite/{token}"}, status=201)


@routes.post("/visits/{visit_id}/participants/{membership_id}/invitation", action=Action.VISIT_MANAGE, page=True)
async def reissue_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """Secretariat, from the visit page: issue a fresh link and show it once."""
    settings = request.app[SETTINGS]
    membership_id = request.match_info["membership_id"][:64]
    async with request.app[SESSIONS]() as db:
        token = await visits.reissue_invitation(
            db, settings.secret_key, scope.visit.id, membership_id,
            actor_person_id=scope.actor.person_id, days=settings.invitation_days,
        )
        await db.commit()
        name = next((p.name for p in await visits.participants(db, scope.visit.id) if p.membership_id == membership_id), "")
    return render(
        request,
        "new_link.html",
        {"visit": scope.visit, "actor": scope.actor, "name": name, "invite_url": f"{settings.base_url}/invite/{token}"},
    )


@routes.route("PATCH", "/api/visits/{visit_id}/participants/{membership_id}", action=Action.VISIT_MANAGE)
async def change_role_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """Secretariat: change a participant's role. Body: {"role": "..."}."""
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("role"), str) or set(body) != {"role"}:
        raise invalid('body: expected {"role": "<role>"}.')
    async with request.app[SESSIONS]() as db:
        membership = await visits.change_role(
            db, scope.visit.id, request.match_info["membership_id"][:64], body["role"],
            actor_person_id=scope.actor.person_id,
        )
        session_ids = tuple(
            (await db.execute(select(AgendaSession.id).where(AgendaSession.visit_id == scope.visit.id))).scalars()
        )
        await db.commit()
    await publish(request, AccessChanged(scope.visit.id, session_ids))
    return web.json_response({"membership_id": membership.id, "role": membership.role})
