"""Availability and scheduler pages and API.

* ``/visits/{visit_id}/availability``: one's own working hours, holidays and unavailable
  times (``VISIT_VIEW``); ``/visits/{visit_id}/participants/{membership_id}/availability``:
  anyone's, for the secretariat (``VISIT_MANAGE``), who can also import them as JSON.
* ``/visits/{visit_id}/schedule``: run the scheduler for the agenda, compare the
  proposals and accept one (``VISIT_MANAGE``). Accepting commits, then announces
  ``agenda.changed`` to everyone watching the visit.

Forms post either ``application/x-www-form-urlencoded`` (the pages) or JSON with the
same field names (scripts); the JSON API lives under ``/api``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from schedules.zones import zone_names
from server.access.guard import VisitScope
from server.access.policy import Action
from server.agenda import service as agenda
from server.core.clock import iso_z, utcnow
from server.core.errors import DomainError, invalid
from server.core.i18n import pick_language
from server.core.times import checked_date, local
from server.people.models import Person
from server.scheduling import availability, service, views
from server.scheduling import problem as problems
from server.web.bodies import Fields, parse_json, read_fields, read_json
from server.web.bus import publish
from server.web.keys import SESSIONS, SETTINGS
from server.web.routing import RouteTable
from server.web.templating import render

routes = RouteTable()


# ---- helpers -----------------------------------------------------------------------------


def _one(fields: Fields, name: str, default: str = "") -> str:
    values = fields.get(name)
    return values[0] if values else default


async def _json_body(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise invalid("body: send JSON (Content-Type: application/json).")
    return await read_json(request)


async def _lang(request: web.Request, scope: VisitScope) -> str:
    async with request.app[SESSIONS]() as db:
        person = await db.get(Person, scope.actor.person_id)
    return pick_language(person.languages if person else None, request.app[SETTINGS].default_language)


def _zone(request: web.Request, scope: VisitScope, fields: Fields | None = None) -> tuple[str, str]:
    choice = _one(fields, "tz") if fields and fields.get("tz") else request.query.get("tz")
    return agenda.display_zone(choice, scope.actor, scope.visit)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


# ---- availability --------------------------------------------------------------------------


def _hours_text(hours: dict[str, list[list[str]]]) -> dict[str, str]:
    return {d: ", ".join(f"{a}-{b}" for a, b in hours.get(d, [])) for d in availability.DAYS}


async def _availability_page(
    request: web.Request, scope: VisitScope, membership_id: str, *, own: bool,
    status: int = 200, error: str | None = None, fields: Fields | None = None,
) -> web.Response:
    async with request.app[SESSIONS]() as db:
        av = await availability.load(db, scope.visit.id, membership_id)
    zone = av.person.timezone
    rows = [{"id": u.id, "start": local(u.start_utc, zone), "end": local(u.end_utc, zone), "note": u.note}
            for u in av.unavailable]
    values = {"timezone": zone, "holidays": " ".join(av.holidays), **{f"hours_{d}": t for d, t in _hours_text(av.working_hours).items()}}
    if fields:  # a refused form comes back as it was typed
        values.update({k: _one(fields, k) for k in fields if k in values or k.startswith("new_")})
    action = (f"/visits/{scope.visit.id}/availability" if own
              else f"/visits/{scope.visit.id}/participants/{membership_id}/availability")
    return render(request, "availability.html", {
        "visit": scope.visit, "actor": scope.actor, "av": av, "own": own, "rows": rows, "values": values,
        "days": availability.DAYS, "day_names": availability.DAY_NAMES, "new_rows": range(1, availability.NEW_ROWS + 1), "zones": sorted(zone_names()),
        "now_local": local(utcnow(), zone), "action": action, "error": error,
        "saved": request.query.get("saved") == "1",
    }, status=status, lang=await _lang(request, scope))


async def _save_from_form(request: web.Request, scope: VisitScope, membership_id: str, *, own: bool) -> web.Response:
    fields = await read_fields(request)
    try:
        async with request.app[SESSIONS]() as db:
            _, person = await availability.member_of_visit(db, scope.visit.id, membership_id)
            change = availability.change_from_form(fields, person.timezone)
            await availability.save(db, scope.visit.id, membership_id, change, actor_person_id=scope.actor.person_id)
            await db.commit()
    except DomainError as err:
        if err.status != 400:
            raise
        return await _availability_page(request, scope, membership_id, own=own, status=400, error=err.message,
                                        fields=fields)
    target = (f"/visits/{scope.visit.id}/availability" if own
              else f"/visits/{scope.visit.id}/participants/{membership_id}/availability")
    return _see_other(f"{target}?saved=1")


@routes.get("/visits/{visit_id}/availability", action=Action.VISIT_VIEW, page=True)
async def my_availability_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    return await _availability_page(request, scope, scope.actor.membership_id, own=True)


@routes.post("/visits/{visit_id}/availability", action=Action.VISIT_VIEW, page=True)
async def my_availability_save(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    return await _save_from_form(request, scope, scope.actor.membership_id, own=True)


@routes.get("/visits/{visit_id}/participants/{membership_id}/availability", action=Action.VISIT_MANAGE, page=True)
async def availability_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    return await _availability_page(request, scope, request.match_info["membership_id"], own=False)


@routes.post("/visits/{visit_id}/participants/{membership_id}/availability", action=Action.VISIT_MANAGE, page=True)
async def availability_save(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    return await _save_from_form(request, scope, request.match_info["membership_id"], own=False)


async def _get_json(request: web.Request, scope: VisitScope, membership_id: str) -> web.Response:
    async with request.app[SESSIONS]() as db:
        av = await availability.load(db, scope.visit.id, membership_id)
    return web.json_response(av.as_json())


async def _put_json(request: web.Request, scope: VisitScope, membership_id: str) -> web.Response:
    body = await _json_body(request)
    async with request.app[SESSIONS]() as db:
        _, person = await availability.member_of_visit(db, scope.visit.id, membership_id)
        change = availability.change_from_json(body, person.timezone)
        av = await availability.save(db, scope.visit.id, membership_id, change, actor_person_id=scope.actor.person_id)
        await db.commit()
    return web.json_response(av.as_json())


@routes.get("/api/visits/{visit_id}/availability", action=Action.VISIT_VIEW)
async def my_availability_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    return await _get_json(request, scope, scope.actor.membership_id)


@routes.route("PUT", "/api/visits/{visit_id}/availability", action=Action.VISIT_VIEW)
async def my_availability_put(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """Body: any of ``timezone``, ``working_hours``, ``holidays``, ``unavailable`` (see
    server/scheduling/availability.py); unavailable times without an offset are local."""
    return await _put_json(request, scope, scope.actor.membership_id)


@routes.get("/api/visits/{visit_id}/participants/{membership_id}/availability", action=Action.VISIT_MANAGE)
async def availability_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    return await _get_json(request, scope, request.match_info["membership_id"])


@routes.route("PUT", "/api/visits/{visit_id}/participants/{membership_id}/availability", action=Action.VISIT_MANAGE)
async def availability_put(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    return await _put_json(request, scope, request.match_info["membership_id"])


@routes.post("/api/visits/{visit_id}/availability/import", action=Action.VISIT_MANAGE)
async def import_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """Body: the engine's problem, ``{"participants": [...]}`` or the list itself."""
    body = await _json_body(request)
    async with request.app[SESSIONS]() as db:
        ids = await availability.import_json(db, scope.visit.id, body, actor_person_id=scope.actor.person_id)
        await db.commit()
    return web.json_response({"imported": ids})


@routes.post("/visits/{visit_id}/availability/import", action=Action.VISIT_MANAGE, page=True)
async def import_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """The schedule page's import box: ``data`` holds the JSON text."""
    fields = await read_fields(request)
    text = _one(fields, "data")
    try:
        data = parse_json(text, where="data")
        async with request.app[SESSIONS]() as db:
            ids = await availability.import_json(db, scope.visit.id, data, actor_person_id=scope.actor.person_id)
            await db.commit()
    except DomainError as err:
        if err.status != 400:
            raise
        return await _schedule_page(request, scope, status=400, import_error=err.message, import_text=text)
    return _see_other(f"/visits/{scope.visit.id}/schedule?imported={len(ids)}")


# ---- the scheduler -------------------------------------------------------------------------


def _date(fields: Fields, name: str) -> date | None:
    text = _one(fields, name).strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise invalid(f"{name}: expected a date 'YYYY-MM-DD', got {text!r}.") from None
    return checked_date(day, name)


def _whole(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise invalid(f"{name}: expected a whole number, got {text!r}.") from None


async def _options_from_fields(request: web.Request, scope: VisitScope, fields: Fields) -> problems.RunOptions:
    _, zone = _zone(request, scope, fields)
    async with request.app[SESSIONS]() as db:
        sessions = await problems.agenda_sessions(db, scope.visit.id)
    first, last = problems.default_window(sessions, zone, local(utcnow(), zone).value.date())
    first = _date(fields, "window_first") or first
    last = _date(fields, "window_last") or last
    start, end = problems.window_from_dates(first, last, zone)
    ids: tuple[str, ...] | None = None
    if fields.get("session_ids") or fields.get("sessions_listed"):
        ids = tuple(fields.get("session_ids", []))
    return problems.RunOptions(start, end, keep_order="keep_order" in fields, session_ids=ids,
                               alternatives=_whole(_one(fields, "alternatives", "3"), "alternatives"))


async def _schedule_page(
    request: web.Request, scope: VisitScope, *, run_id: str | None = None, status: int = 200,
    error: str | None = None, import_error: str | None = None, import_text: str = "",
    fields: Fields | None = None,
) -> web.Response:
    key, zone = _zone(request, scope, fields)
    async with request.app[SESSIONS]() as db:
        sessions = await problems.agenda_sessions(db, scope.visit.id)
        people = await problems.members(db, scope.visit.id)
        required = await problems.session_people(db, scope.visit.id, sessions, people, required_only=True)
        run = await service.get_run(db, scope.visit.id, run_id) if run_id else None
        stale = await service.is_stale(db, run) if run else False
        runs = [views.run_summary(r, zone) for r in await service.recent_runs(db, scope.visit.id)]
    first, last = problems.default_window(sessions, zone, local(utcnow(), zone).value.date())
    chosen = {s["id"] for s in run.problem.get("sessions", [])} if run else None
    form = {
        "window_first": first.isoformat(), "window_last": last.isoformat(), "alternatives": "3",
        "keep_order": True, "session_ids": chosen or {s.id for s in sessions},
    }
    if run:
        parley = run.problem.get("parley", {})
        form.update(keep_order=bool(parley.get("keep_order")), alternatives=str(parley.get("alternatives", 3)))
    if fields:
        form.update({k: _one(fields, k) for k in ("window_first", "window_last", "alternatives") if k in fields},
                    keep_order="keep_order" in fields, session_ids=set(fields.get("session_ids", [])))
    hours = {}
    for m in people:
        effective, default = availability.effective_hours(m.working_hours)
        hours[m.membership_id] = {"text": _hours_text(effective), "default": default}
    return render(request, "schedule.html", {
        "visit": scope.visit, "actor": scope.actor, "tz_key": key, "tz": zone,
        "sessions": [{"session": s, "start": local(s.start_utc, zone), "end": local(s.end_utc, zone),
                      "required": len(required[s.id])} for s in sessions],
        "people": people, "hours": hours, "days": availability.DAYS, "day_names": availability.DAY_NAMES, "form": form, "runs": runs,
        "run": views.run_summary(run, zone) if run else None,
        "proposals": views.proposal_views(run, sessions, zone) if run else [],
        "stale": stale, "error": error, "import_error": import_error, "import_text": import_text,
        "imported": request.query.get("imported"), "accepted": request.query.get("accepted") == "1",
        "max_alternatives": problems.MAX_ALTERNATIVES,
    }, status=status, lang=await _lang(request, scope))


@routes.get("/visits/{visit_id}/schedule", action=Action.VISIT_MANAGE, page=True)
async def schedule_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    return await _schedule_page(request, scope)


@routes.post("/visits/{visit_id}/schedule", action=Action.VISIT_MANAGE, page=True)
async def schedule_run(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    fields = await read_fields(request)
    key, _ = _zone(request, scope, fields)
    try:
        options = await _options_from_fields(request, scope, fields)
        async with request.app[SESSIONS]() as db:
            run = await service.run_scheduler(db, scope.visit, options, actor_person_id=scope.actor.person_id)
    except DomainError as err:
        if err.status != 400:
            raise
        return await _schedule_page(request, scope, status=400, error=err.message, fields=fields)
    return _see_other(f"/visits/{scope.visit.id}/schedule/runs/{run.id}?tz={key}")


@routes.get("/visits/{visit_id}/schedule/runs/{run_id}", action=Action.VISIT_MANAGE, page=True)
async def run_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    return await _schedule_page(request, scope, run_id=request.match_info["run_id"])


@routes.post("/visits/{visit_id}/schedule/runs/{run_id}/accept", action=Action.VISIT_MANAGE, page=True)
async def accept_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    fields = await read_fields(request)
    key, _ = _zone(request, scope, fields)
    run_id = request.match_info["run_id"]
    try:
        index = _whole(_one(fields, "index", "0"), "index")
        await _accept(request, scope, run_id, index)
    except DomainError as err:
        if err.status not in (400, 409):
            raise
        return await _schedule_page(request, scope, run_id=run_id, status=err.status, error=err.message)
    return _see_other(f"/visits/{scope.visit.id}/schedule/runs/{run_id}?tz={key}&accepted=1")


async def _accept(request: web.Request, scope: VisitScope, run_id: str, index: Any) -> service.AgendaChanged:
    async with request.app[SESSIONS]() as db:
        change = await service.accept(db, scope.visit.id, run_id, index, actor_person_id=scope.actor.person_id)
        await db.commit()
    # Committed: now everyone watching the visit hears of it.
    await publish(request, change)
    return change


def _run_json(run: Any, stale: bool) -> dict[str, Any]:
    return {
        "id": run.id, "visit_id": run.visit_id, "created_at": iso_z(run.created_at),
        "accepted_at": iso_z(run.accepted_at) if run.accepted_at else None,
        "accepted_index": run.accepted_index, "stale": stale, "problem": run.problem, "result": run.result,
    }


@routes.post("/api/visits/{visit_id}/schedule/runs", action=Action.VISIT_MANAGE)
async def run_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """Body (all optional): ``window`` {start, end} (instants with an offset; default: the
    agenda's days, a few either side, in the visit's zone), ``keep_order`` (default true),
    ``session_ids`` (default: all), ``alternatives`` (default 3, at most 5)."""
    body = await read_json(request) if request.can_read_body else {}
    if not isinstance(body, dict):
        raise invalid("body: expected an object.")
    async with request.app[SESSIONS]() as db:
        sessions = await problems.agenda_sessions(db, scope.visit.id)
    zone = scope.visit.timezone
    first, last = problems.default_window(sessions, zone, local(utcnow(), zone).value.date())
    start, end = problems.window_from_dates(first, last, zone)
    window = body.get("window")
    if window is not None:
        if not isinstance(window, dict):
            raise invalid("window: expected an object {\"start\", \"end\"}.")
        start = availability.parse_instant(window.get("start"), "UTC", "window.start")
        end = availability.parse_instant(window.get("end"), "UTC", "window.end")
    keep_order = body.get("keep_order", True)
    if not isinstance(keep_order, bool):
        raise invalid("keep_order: expected true or false.")
    ids = body.get("session_ids")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise invalid("session_ids: expected a list of session ids.")
    alternatives = body.get("alternatives", 3)
    if isinstance(alternatives, bool) or not isinstance(alternatives, int):
        raise invalid("alternatives: expected a whole number.")
    options = problems.RunOptions(start, end, keep_order, tuple(ids) if ids is not None else None, alternatives)
    async with request.app[SESSIONS]() as db:
        run = await service.run_scheduler(db, scope.visit, options, actor_person_id=scope.actor.person_id)
    return web.json_response(_run_json(run, False), status=201)


@routes.get("/api/visits/{visit_id}/schedule/runs/{run_id}", action=Action.VISIT_MANAGE)
async def run_get_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        run = await service.get_run(db, scope.visit.id, request.match_info["run_id"])
        stale = await service.is_stale(db, run)
    return web.json_response(_run_json(run, stale))


@routes.post("/api/visits/{visit_id}/schedule/runs/{run_id}/accept", action=Action.VISIT_MANAGE)
async def accept_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """Body: ``{"index": N}`` (0: the best proposal). 409 ``conflict`` when the run was
    already accepted or the agenda changed since it ran."""
    body = await _json_body(request)
    if not isinstance(body, dict) or set(body) != {"index"}:
        raise invalid('body: expected {"index": <proposal number>}.')
    change = await _accept(request, scope, request.match_info["run_id"], body["index"])
    return web.json_response({"ok": True, "visit_id": change.visit_id,
                              "moved": [m.as_json() for m in change.sessions]})
