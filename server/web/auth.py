"""The login cookie: read, set, clear; which of the browser's logins a request uses.

The cookie ``parley_session`` carries the tokens of every login this browser holds,
joined by ``.`` (see ``server/people/logins.py``): one per visit joined through an
invitation, and at most one password login.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from server.people import logins as login_rules
from server.people import service as people
from server.people.logins import Login
from server.web.keys import SESSIONS, SETTINGS

COOKIE_NAME = "parley_session"
_REQUEST_LOGINS: web.RequestKey[list[Login]] = web.RequestKey("logins", list)


async def current_logins(request: web.Request, db: AsyncSession | None = None) -> list[Login]:
    """The valid logins of the request's cookie (resolved once per request), in ``db``
    when the caller has a session open, else in a session of their own."""
    if _REQUEST_LOGINS in request:
        return request[_REQUEST_LOGINS]
    cookie = request.cookies.get(COOKIE_NAME)
    if db is not None:
        found = await people.resolve_logins(db, request.app[SETTINGS].secret_key, cookie)
    else:
        async with request.app[SESSIONS]() as own:
            found = await people.resolve_logins(own, request.app[SETTINGS].secret_key, cookie)
    request[_REQUEST_LOGINS] = found
    return found


async def current_login(request: web.Request) -> Login | None:
    """The login that speaks for the browser on pages about the person themselves."""
    return login_rules.primary_login(await current_logins(request))


def cookie_tokens(request: web.Request, keep: Sequence[Login]) -> list[str]:
    """The request cookie's tokens of the ``keep`` logins, in cookie order: tokens that
    no longer resolve are dropped, so the cookie stays bounded."""
    index = login_rules.token_index(request.app[SETTINGS].secret_key, request.cookies.get(COOKIE_NAME))
    return [index[login.token_hash] for _, login in keep if login.token_hash in index]


def set_login_cookie(request: web.Request, response: web.StreamResponse, tokens: Sequence[str]) -> None:
    """Set the cookie to these tokens, or clear it when there are none."""
    if not tokens:
        clear_login_cookie(response)
        return
    response.set_cookie(
        COOKIE_NAME,
        login_rules.join_cookie(tokens),
        httponly=True,
        samesite="Lax",  # Lax, not Strict: a link from an e-mail must arrive logged in
        secure=request.app[SETTINGS].cookie_secure,
        path="/",
        max_age=400 * 24 * 3600,  # the server-side sessions decide when they end
    )


def clear_login_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE_NAME, path="/")


def client_address(request: web.Request) -> str:
    """The address a request came from, for throttling.

    The peer address, unless the peer is a proxy listed in ``PARLEY_TRUSTED_PROXIES``:
    then the right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy.
    ``X-Forwarded-For`` is never trusted from anyone else: a client can write anything
    in it.
    """
    peer = request.remote or "unknown"
    trusted = request.app[SETTINGS].trusted_proxies
    if not trusted or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop
    return peer


def _in(address: str, networks: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)
