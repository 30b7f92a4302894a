"""Invitation links, password login, logout and one's own login sessions."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from aiohttp import web

from server.access.guard import PersonScope
from server.access.policy import Action
from server.config import Settings
from server.core.clock import iso_z
from server.core.errors import DomainError, ErrorCode, invalid
from server.core.i18n import pick_language
from server.core.times import local
from server.people import service as people
from server.people.logins import (
    INVITATION,
    PASSWORD,
    end_login,
    login_for_visit,
    revoke_visible_login,
    visible_logins,
)
from server.people.models import LoginSession
from server.people.throttle import ThrottlePolicy
from server.visits import service as visits
from server.web.auth import client_address, cookie_tokens, current_logins, set_login_cookie
from server.web.bodies import read_form
from server.web.bus import publish
from server.web.keys import SESSIONS, SETTINGS
from server.web.middleware import wants_json
from server.web.routing import RouteTable
from server.web.templating import render

routes = RouteTable()


def see_other(location: str) -> web.Response:
    """A 303 we can still put a cookie on (raised HTTP exceptions lose it)."""
    return web.Response(status=303, headers={"Location": location})


def _safe_next(value: str | None) -> str:
    """A same-origin path to go to after login, else "/": never an open redirect.

    Browsers forgive a lot when resolving a Location: they read "\\" as "/", drop tabs
    and newlines, and treat "//host" as another site. So the value, decoded, must be a
    path starting with exactly one "/", with no backslash and no control character, and
    urllib must see neither a scheme nor a host in it.
    """
    if not value or len(value) > 2000:
        return "/"
    decoded = value
    for _ in range(3):  # decoded repeatedly: "%252F" is "%2F" is "/"
        decoded = unquote(decoded)
    checked = (value, decoded)
    if any("\\" in v or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in v) for v in checked):
        return "/"
    for v in checked:
        parts = urlsplit(v)
        if parts.scheme or parts.netloc or not v.startswith("/") or v.startswith("//"):
            return "/"
    return value


@routes.get("/invite/{token}", action=None, page=True)
async def invitation_page(request: web.Request, _: Any) -> web.StreamResponse:
    """Shows a "Join" button; a GET never spends the link (mail scanners fetch links)."""
    token = request.match_info["token"]
    settings = request.app[SETTINGS]
    async with request.app[SESSIONS]() as db:
        view = await people.inspect_invitation(db, settings.secret_key, token)
    if view.person and view.visit:
        # Already in this visit as this person: go there (another visit's login or
        # another person's does not count).
        found = login_for_visit(await current_logins(request), view.visit.id)
        if found and found[0].id == view.person.id:
            raise web.HTTPSeeOther(f"/visits/{view.visit.id}")
    lang = pick_language(view.person.languages if view.person else None, settings.default_language)
    if view.state != people.InvitationState.VALID:
        return render(request, "invite_gone.html", {"state": str(view.state)}, status=410, lang=lang)
    return render(request, "invite.html", {"view": view, "token": token}, lang=lang)


@routes.post("/invite/{token}", action=None, page=True)
async def invitation_join(request: web.Request, _: Any) -> web.StreamResponse:
    """Spends the link; the browser's cookie gains this visit's login (replacing an
    earlier login of the same visit) and keeps its others."""
    token = request.match_info["token"]
    settings = request.app[SETTINGS]
    held = await current_logins(request)
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
    keep = [found for found in held if not (found[1].via == INVITATION and found[1].visit_id == view.visit.id)]
    response = see_other(f"/visits/{view.visit.id}")
    set_login_cookie(request, response, [*cookie_tokens(request, keep), issued.token])
    return response


@routes.get("/login", action=None, page=True)
async def login_page(request: web.Request, _: Any) -> web.StreamResponse:
    return render(request, "login.html", {"next": _safe_next(request.query.get("next")), "error": None})


def _throttle_policy(settings: Settings) -> ThrottlePolicy:
    return ThrottlePolicy(
        account_after=settings.login_throttle_account_after,
        address_after=settings.login_throttle_address_after,
        base_seconds=settings.login_throttle_base_seconds,
        max_seconds=settings.login_throttle_max_seconds,
        window_seconds=settings.login_throttle_window_seconds,
    )


@routes.post("/login", action=None, page=True)
async def login_submit(request: web.Request, _: Any) -> web.StreamResponse:
    """Password login, throttled per account and per address: 401 for a wrong password,
    429 with ``Retry-After`` while throttled (JSON for API clients, else the form with
    the wait in words). The cookie gains the password login (replacing an earlier one)."""
    form = await read_form(request)
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "/")))
    settings = request.app[SETTINGS]
    held = await current_logins(request)
    async with request.app[SESSIONS]() as db:
        try:
            issued = await people.password_login(
                db, settings.secret_key, email, password,
                user_agent=request.headers.get("User-Agent", ""),
                address=client_address(request),
                policy=_throttle_policy(settings),
            )
            await db.commit()
        except DomainError as err:
            if wants_json(request) or err.code not in (ErrorCode.UNAUTHENTICATED, ErrorCode.RATE_LIMITED):
                raise
            wait = int(err.retry_after_header or 1) if err.code == ErrorCode.RATE_LIMITED else None
            context = {"next": target, "error": err.message, "wait": wait}
            response = render(request, "login.html", context, status=err.status)
            if (retry := err.retry_after_header) is not None:
                response.headers["Retry-After"] = retry
            return response
    keep = [found for found in held if found[1].via != PASSWORD]
    response = see_other(target)
    set_login_cookie(request, response, [*cookie_tokens(request, keep), issued.token])
    return response


@routes.post("/logout", action=None, page=True)
async def logout(request: web.Request, _: Any) -> web.StreamResponse:
    """Ends this browser's login of one visit (form field ``visit_id``), one of its
    logins (``login_id``), or, with neither, all of them."""
    form = await read_form(request)
    held = await current_logins(request)
    visit_id, login_id = str(form.get("visit_id", ""))[:64], str(form.get("login_id", ""))[:64]
    if login_id:
        ending = [found for found in held if found[1].id == login_id]
    elif visit_id:
        chosen = login_for_visit(held, visit_id)
        ending = [chosen] if chosen else []
    else:
        ending = list(held)
    if ending:
        async with request.app[SESSIONS]() as db:
            for person, login in ending:
                fresh = await db.get(LoginSession, login.id)
                if fresh is not None:
                    await end_login(db, person.id, fresh)
            await db.commit()
        await publish(request, people.LoginsEnded(frozenset(login.id for _, login in ending)))
    ended = {login.id for _, login in ending}
    remaining = [found for found in held if found[1].id not in ended]
    response = see_other("/" if remaining else "/login")
    set_login_cookie(request, response, cookie_tokens(request, remaining))
    return response


def _login_json(login: LoginSession, presented: set[str]) -> dict[str, Any]:
    return {
        "id": login.id,
        "via": login.via,
        "visit_id": login.visit_id,
        "user_agent": login.user_agent,
        "created_at": iso_z(login.created_at),
        "last_seen_at": iso_z(login.last_seen_at),
        "current": login.id in presented,
    }


@routes.get("/api/me", action=Action.SELF)
async def me(request: web.Request, scope: PersonScope) -> web.StreamResponse:
    person = scope.person
    return web.json_response(
        {"id": person.id, "name": person.name, "timezone": person.timezone, "languages": person.languages}
    )


@routes.get("/api/me/logins", action=Action.SELF)
async def my_logins(request: web.Request, scope: PersonScope) -> web.StreamResponse:
    """The logins the presented ones may see (an invitation login: its own visit's)."""
    presented = {login.id for _, login in scope.logins}
    async with request.app[SESSIONS]() as db:
        logins = await visible_logins(db, scope.logins)
    return web.json_response({"logins": [_login_json(s, presented) for s in logins]})


@routes.post("/api/me/logins/{login_id}/revoke", action=Action.SELF)
async def revoke(request: web.Request, scope: PersonScope) -> web.StreamResponse:
    login_id = request.match_info["login_id"]
    if len(login_id) > 64:
        raise invalid("login_id: too long.")
    async with request.app[SESSIONS]() as db:
        await revoke_visible_login(db, scope.logins, login_id)
        await db.commit()
    await publish(request, people.LoginsEnded(frozenset({login_id})))
    return web.json_response({"ok": True})


@routes.get("/me", action=Action.SELF, page=True)
async def my_page(request: web.Request, scope: PersonScope) -> web.StreamResponse:
    person = scope.person
    presented = {login.id for _, login in scope.logins}
    async with request.app[SESSIONS]() as db:
        logins = await visible_logins(db, scope.logins)
        granted = await visits.visits_granted(db, scope.logins)
        notices = await visits.reissued_links(db, await visits.memberships_granted(db, scope.logins))
    titles = {visit.id: visit.title for visit, _ in granted}
    lang = pick_language(person.languages, request.app[SETTINGS].default_language)
    rows = [
        _login_json(s, presented)
        | {
            "visit_title": titles.get(s.visit_id or "", ""),
            "created": local(s.created_at, person.timezone),
            "seen": local(s.last_seen_at, person.timezone),
        }
        for s in logins
    ]
    context = {
        "person": person,
        "logins": rows,
        "link_notices": [(n, local(n.at, person.timezone)) for n in notices],
    }
    return render(request, "me.html", context, lang=lang)


@routes.post("/me/logins/{login_id}/revoke", action=Action.SELF, page=True)
async def revoke_from_page(request: web.Request, scope: PersonScope) -> web.StreamResponse:
    login_id = request.match_info["login_id"][:64]
    async with request.app[SESSIONS]() as db:
        await revoke_visible_login(db, scope.logins, login_id)
        await db.commit()
    await publish(request, people.LoginsEnded(frozenset({login_id})))
    raise web.HTTPSeeOther("/me")
