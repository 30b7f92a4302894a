"""Interpretation booths: API and the secretariat's page.

* ``/api/visits/{visit_id}/booths...``: list (``BOOTHS_VIEW``), create, change, remove
  and hand over (``BOOTHS_MANAGE``), JSON.
* ``/visits/{visit_id}/booths...``: the secretariat's page and its forms
  (``BOOTHS_MANAGE``). Forms post ``application/x-www-form-urlencoded`` (the page) or
  JSON with the same field names; a refused form comes back with its message.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.access.guard import VisitScope
from server.access.policy import Action
from server.booths import service as booths
from server.core.errors import DomainError, invalid
from server.core.i18n import pick_language
from server.people.models import Person
from server.visits import service as visits
from server.web.bodies import Fields, read_fields, read_json, validated
from server.web.keys import BUS, SESSIONS, SETTINGS
from server.web.routing import RouteTable
from server.web.templating import render

routes = RouteTable()



def _booth_id(request: web.Request) -> str:
    return request.match_info["booth_id"]


# ---- API ---------------------------------------------------------------------------------------


@routes.get("/api/visits/{visit_id}/booths", action=Action.BOOTHS_VIEW)
async def list_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        found = await booths.list_booths(db, scope.visit.id)
    return web.json_response({"booths": [b.as_json() for b in found]})


@routes.post("/api/visits/{visit_id}/booths", action=Action.BOOTHS_MANAGE)
async def create_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """Body: ``{"language": "<BCP 47>", "interpreters": [membership ids]}`` (0 to 2)."""
    body = validated(booths.BoothCreate, await read_json(request))
    async with request.app[SESSIONS]() as db:
        booth = await booths.create_booth(
            db, scope.visit.id, body.language, body.interpreters, actor_person_id=scope.actor.person_id
        )
        await db.commit()
    await request.app[BUS].publish(booths.BoothsChanged(scope.visit.id))
    return web.json_response(booth.as_json(), status=201)


@routes.route("PATCH", "/api/visits/{visit_id}/booths/{booth_id}", action=Action.BOOTHS_MANAGE)
async def change_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """Body: any of ``language``, ``interpreters`` (1 or 2 membership ids), ``active``."""
    changes = validated(booths.BoothChange, await read_json(request))
    async with request.app[SESSIONS]() as db:
        booth = await booths.change_booth(
            db, scope.visit.id, _booth_id(request), changes, actor_person_id=scope.actor.person_id
        )
        await db.commit()
    await request.app[BUS].publish(booths.BoothsChanged(scope.visit.id))
    return web.json_response(booth.as_json())


@routes.route("DELETE", "/api/visits/{visit_id}/booths/{booth_id}", action=Action.BOOTHS_MANAGE)
async def remove_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        await booths.remove_booth(db, scope.visit.id, _booth_id(request), actor_person_id=scope.actor.person_id)
        await db.commit()
    await request.app[BUS].publish(booths.BoothsChanged(scope.visit.id))
    return web.Response(status=204)


@routes.post("/api/visits/{visit_id}/booths/{booth_id}/handover", action=Action.BOOTHS_MANAGE)
async def handover_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """The booth's other interpreter becomes active (409 ``conflict`` with only one)."""
    async with request.app[SESSIONS]() as db:
        booth = await booths.hand_over(db, scope.visit.id, _booth_id(request), actor_person_id=scope.actor.person_id)
        await db.commit()
    await request.app[BUS].publish(booths.BoothsChanged(scope.visit.id))
    return web.json_response(booth.as_json())


# ---- the secretariat's page ------------------------------------------------------------------


def _one(fields: Fields, name: str) -> str:
    values = fields.get(name)
    return values[0].strip() if values else ""


def _interpreters(fields: Fields) -> list[str]:
    """The page's two selects (``interpreter_1``, ``interpreter_2``), or a list ``interpreters``."""
    chosen = fields.get("interpreters") or [_one(fields, "interpreter_1"), _one(fields, "interpreter_2")]
    return [c.strip() for c in chosen if c.strip()]


def _see_other(request: web.Request, scope: VisitScope) -> web.Response:
    return web.Response(status=303, headers={"Location": f"/visits/{scope.visit.id}/booths"})


async def _page(
    request: web.Request, scope: VisitScope, *, status: int = 200, error: str | None = None
) -> web.Response:
    async with request.app[SESSIONS]() as db:
        found = await booths.list_booths(db, scope.visit.id)
        people = await visits.participants(db, scope.visit.id)
        person = await db.get(Person, scope.actor.person_id)
    lang = pick_language(person.languages if person else None, request.app[SETTINGS].default_language)
    return render(
        request,
        "booths.html",
        {
            "visit": scope.visit,
            "actor": scope.actor,
            "booths": found,
            "interpreters": [p for p in people if p.role == "interpreter"],
            "error": error,
        },
        status=status,
        lang=lang,
    )


async def _form_change(request: web.Request, scope: VisitScope, change: Any) -> web.Response:
    """Run one change from a form: commit and go back to the page, or show why not."""
    try:
        fields = await read_fields(request)
        async with request.app[SESSIONS]() as db:
            await change(db, fields)
            await db.commit()
        await request.app[BUS].publish(booths.BoothsChanged(scope.visit.id))
    except DomainError as err:
        if err.status not in (400, 404, 409):
            raise
        return await _page(request, scope, status=err.status, error=err.message)
    return _see_other(request, scope)


@routes.get("/visits/{visit_id}/booths", action=Action.BOOTHS_MANAGE, page=True)
async def booths_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    return await _page(request, scope)


@routes.post("/visits/{visit_id}/booths", action=Action.BOOTHS_MANAGE, page=True)
async def create_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async def change(db: Any, fields: Fields) -> None:
        await booths.create_booth(
            db, scope.visit.id, _one(fields, "language"), _interpreters(fields),
            actor_person_id=scope.actor.person_id,
        )

    return await _form_change(request, scope, change)


@routes.post("/visits/{visit_id}/booths/{booth_id}", action=Action.BOOTHS_MANAGE, page=True)
async def change_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """The booth's row: language and interpreters (the first listed is active unless the
    active one stays)."""
    async def change(db: Any, fields: Fields) -> None:
        language = _one(fields, "language") or None
        chosen = _interpreters(fields)
        if not chosen:
            raise invalid("interpreters: choose one or two interpreters.")
        changes = validated(booths.BoothChange, {"language": language, "interpreters": chosen})
        await booths.change_booth(db, scope.visit.id, _booth_id(request), changes,
                                  actor_person_id=scope.actor.person_id)

    return await _form_change(request, scope, change)


@routes.post("/visits/{visit_id}/booths/{booth_id}/handover", action=Action.BOOTHS_MANAGE, page=True)
async def handover_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async def change(db: Any, fields: Fields) -> None:
        await booths.hand_over(db, scope.visit.id, _booth_id(request), actor_person_id=scope.actor.person_id)

    return await _form_change(request, scope, change)


@routes.post("/visits/{visit_id}/booths/{booth_id}/delete", action=Action.BOOTHS_MANAGE, page=True)
async def remove_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async def change(db: Any, fields: Fields) -> None:
        await booths.remove_booth(db, scope.visit.id, _booth_id(request), actor_person_id=scope.actor.person_id)

    return await _form_change(request, scope, change)
