"""Invitation links, password login, logout and one's own login sessions."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.access.policy import Action
from server.core.clock import iso_z
from server.core.errors import DomainError, ErrorCode, invalid
from server.core.i18n import pick_language
from server.core.times import local
from server.people import service as people
from server.people.models import Person
from server.web.auth import clear_login_cookie, current_login, set_login_cookie
from server.web.bodies import read_form
from server.web.bus import publish
from server.web.keys import SESSIONS, SETTINGS
from server.web.routing import RouteTable
from server.web.templating import render

routes = RouteTable()


def see_other(location: str) -> web.Response:
    """A 303 we can still put a cookie on (raised HTTP exceptions lose it)."""
    return web.Response(status=303, headers={"Location": location})


def _safe_next(value: str | None) -> str:
    # Only same-site paths: never an open redirect.
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/"


@routes.get("/invite/{token}", action=None, page=True)
async def invitation_page(request: web.Request, _: Any) -> web.StreamResponse:
    """Shows a "Join" button; a GET never spends the link (mail scanners fetch links)."""
    token = request.match_info["token"]
    settings = request.app[SETTINGS]
    async with request.app[SESSIONS]() as db:
        view = await people.inspect_invitation(db, settings.secret_key, token)
    found = await current_login(request)
    if found and view.person and found[0].id == view.person.id and view.visit:
        raise web.HTTPSeeOther(f"/visits/{view.visit.id}")
    lang = pick_language(view.person.languages if view.person else None, settings.default_language)
    if view.state != people.InvitationState.VALID:
        return render(request, "invite_gone.html", {"state": str(view.state)}, status=410, lang=lang)
    return render(request, "invite.html", {"view": view, "token": token}, lang=lang)


@routes.post("/invite/{token}", action=None, page=True)
async def invitation_join(request: web.Request, _: Any) -> web.StreamResponse:
    token = request.match_info["token"]
    settings = request.app[SETTINGS]
    async with request.app[SESSIONS]() as db:
        try:
            issued, view = await people.spend_invitation(
                db, settings.secret_key, token, user_agent=request.headers.get("User-Agent", "")
            )
            await db.commit()
        except DomainError as err:
            if err.code != ErrorCode.GONE:
                raise
            await db.rollback()
            view = await people.inspect_invitation(db, settings.secret_key, token)
            lang = pick_language(view.person.languages if view.person else None, settings.default_language)
            return render(request, "invite_gone.html", {"state": str(view.state)}, status=410, lang=lang)
    assert view.visit is not None
    response = see_other(f"/visits/{view.visit.id}")
    set_login_cookie(request, response, issued.token)
    return response


@routes.get("/login", action=None, page=True)
async def login_page(request: web.Request, _: Any) -> web.StreamResponse:
    return render(request, "login.html", {"next": _safe_next(request.query.get("next")), "error": None})


@routes.post("/login", action=None, page=True)
async def login_submit(request: web.Request, _: Any) -> web.StreamResponse:
    form = await read_form(request)
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "/")))
    settings = request.app[SETTINGS]
    async with request.app[SESSIONS]() as db:
        try:
            issued = await people.password_login(
                db, settings.secret_key, email, password, user_agent=request.headers.get("User-Agent", "")
            )
            await db.commit()
        except DomainError as err:
            return render(request, "login.html", {"next": target, "error": err.message}, status=401)
    response = see_other(target)
    set_login_cookie(request, response, issued.token)
    return response


@routes.post("/logout", action=None, page=True)
async def logout(request: web.Request, _: Any) -> web.StreamResponse:
    found = await current_login(request)
    if found:
        async with request.app[SESSIONS]() as db:
            await people.revoke_login(db, found[0].id, found[1].id)
            await db.commit()
        await publish(request, people.LoginsEnded(frozenset({found[1].id})))
    response = see_other("/login")
    clear_login_cookie(response)
    return response


def _login_json(login: Any, current_id: str) -> dict[str, Any]:
    return {
        "id": login.id,
        "via": login.via,
        "user_agent": login.user_agent,
        "created_at": iso_z(login.created_at),
        "last_seen_at": iso_z(login.last_seen_at),
        "current": login.id == current_id,
    }


@routes.get("/api/me", action=Action.SELF)
async def me(request: web.Request, person: Person) -> web.StreamResponse:
    return web.json_response(
        {"id": person.id, "name": person.name, "timezone": person.timezone, "languages": person.languages}
    )


@routes.get("/api/me/logins", action=Action.SELF)
async def my_logins(request: web.Request, person: Person) -> web.StreamResponse:
    found = await current_login(request)
    assert found
    async with request.app[SESSIONS]() as db:
        logins = await people.list_logins(db, person.id)
    return web.json_response({"logins": [_login_json(s, found[1].id) for s in logins]})


@routes.post("/api/me/logins/{login_id}/revoke", action=Action.SELF)
async def revoke(request: web.Request, person: Person) -> web.StreamResponse:
    login_id = request.match_info["login_id"]
    if len(login_id) > 64:
        raise invalid("login_id: too long.")
    async with request.app[SESSIONS]() as db:
        await people.revoke_login(db, person.id, login_id)
        await db.commit()
    await publish(request, people.LoginsEnded(frozenset({login_id})))
    return web.json_response({"ok": True})


@routes.get("/me", action=Action.SELF, page=True)
async def my_page(request: web.Request, person: Person) -> web.StreamResponse:
    found = await current_login(request)
    assert found
    async with request.app[SESSIONS]() as db:
        logins = await people.list_logins(db, person.id)
    lang = pick_language(person.languages, request.app[SETTINGS].default_language)
    rows = [
        _login_json(s, found[1].id)
        | {"created": local(s.created_at, person.timezone), "seen": local(s.last_seen_at, person.timezone)}
        for s in logins
    ]
    return render(request, "me.html", {"person": person, "logins": rows}, lang=lang)


@routes.post("/me/logins/{login_id}/revoke", action=Action.SELF, page=True)
async def revoke_from_page(request: web.Request, person: Person) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        await people.revoke_login(db, person.id, request.match_info["login_id"][:64])
        await db.commit()
    await publish(request, people.LoginsEnded(frozenset({request.match_info["login_id"][:64]})))
    raise web.HTTPSeeOther("/me")
