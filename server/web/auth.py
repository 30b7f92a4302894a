"""The login cookie: read, set, clear."""

from __future__ import annotations

from aiohttp import web

from server.people import service as people
from server.people.models import LoginSession, Person
from server.web.keys import SESSIONS, SETTINGS

COOKIE_NAME = "parley_session"
_REQUEST_LOGIN: web.RequestKey[tuple[Person, LoginSession] | None] = web.RequestKey("login", object)  # type: ignore[arg-type]


async def current_login(request: web.Request) -> tuple[Person, LoginSession] | None:
    if _REQUEST_LOGIN in request:
        return request[_REQUEST_LOGIN]
    async with request.app[SESSIONS]() as db:
        found = await people.resolve_login(
            db, request.app[SETTINGS].secret_key, request.cookies.get(COOKIE_NAME)
        )
    request[_REQUEST_LOGIN] = found
    return found


async def current_person(request: web.Request) -> Person | None:
    found = await current_login(request)
    return found[0] if found else None


def set_login_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        COOKIE_NAME,
        token,
        httponly=True,
        samesite="Lax",  # Lax, not Strict: a link from an e-mail must arrive logged in
        secure=request.app[SETTINGS].cookie_secure,
        path="/",
        max_age=400 * 24 * 3600,  # the server-side session decides when it ends
    )


def clear_login_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE_NAME, path="/")
