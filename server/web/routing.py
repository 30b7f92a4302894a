"""Route tables whose every entry names its policy action.

``@routes.get(path, action=Action.X)`` registers a handler that receives the
resolved scope; the generated policy test walks ``all_routes()`` so no route can
escape the access matrix. Public routes say ``action=None`` explicitly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from server.access.guard import (
    Lookup,
    PersonScope,
    SessionScope,
    VisitScope,
    scope_of_lookup,
    session_scope_for,
    visit_scope_for,
)
from server.access.policy import Action
from server.core.errors import DomainError, ErrorCode, not_found
from server.core.ids import is_id
from server.people.logins import primary_login
from server.web.auth import current_logins
from server.web.keys import SESSIONS

Scoped = Callable[[web.Request, Any], Awaitable[web.StreamResponse]]
# For routes about something inside a visit whose path names no visit (a document
# version, a document): how to look it up from the path's parameters, with the column
# of its visit (``Lookup``). The guard runs it together with the membership check, in
# one query, and acts as in a ``{visit_id}`` route; the handler finds what it selected
# in ``scope.target``.
VisitOf = Lookup


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    action: Action | None
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    page: bool


class RouteTable:
    def __init__(self) -> None:
        self.specs: list[RouteSpec] = []

    def route(
        self, method: str, path: str, *, action: Action | None, page: bool = False, visit_of: VisitOf | None = None
    ) -> Callable[[Scoped], Scoped]:
        def register(handler: Scoped) -> Scoped:
            wrapped = _guard(handler, action, path, visit_of) if action else _public(handler)
            self.specs.append(RouteSpec(method, path, action, wrapped, page))
            return handler

        return register

    def get(
        self, path: str, *, action: Action | None, page: bool = False, visit_of: VisitOf | None = None
    ) -> Callable[[Scoped], Scoped]:
        return self.route("GET", path, action=action, page=page, visit_of=visit_of)

    def post(
        self, path: str, *, action: Action | None, page: bool = False, visit_of: VisitOf | None = None
    ) -> Callable[[Scoped], Scoped]:
        return self.route("POST", path, action=action, page=page, visit_of=visit_of)

    def install(self, app: web.Application) -> None:
        for spec in self.specs:
            app.router.add_route(spec.method, spec.path, spec.handler)


def _public(handler: Scoped) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def public(request: web.Request) -> web.StreamResponse:
        return await handler(request, None)

    return public


def _guard(
    handler: Scoped, action: Action, path: str, visit_of: VisitOf | None = None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def guarded(request: web.Request) -> web.StreamResponse:
        # One database session for the login and the scope.
        async with request.app[SESSIONS]() as db:
            logins = await current_logins(request, db)
            primary = primary_login(logins)
            if primary is None:
                raise DomainError(ErrorCode.UNAUTHENTICATED, "Please open your invitation link or log in.")
            # Path parameters of guarded routes are ids; anything else names nothing.
            if not all(is_id(value) for value in request.match_info.values()):
                raise not_found("Page")
            scope: SessionScope | VisitScope | PersonScope
            # Visit and session routes act as the login that grants that visit: another
            # visit's invitation login of the same person grants nothing here.
            if "{session_id}" in path:
                scope = await session_scope_for(db, logins, request.match_info["session_id"], action)
            elif "{visit_id}" in path:
                scope = await visit_scope_for(db, logins, request.match_info["visit_id"], action)
            elif visit_of is not None:
                # Whoever may not act in its visit is told it does not exist, in the same
                # words as for an id that names nothing.
                try:
                    scope = await scope_of_lookup(db, logins, visit_of, request.match_info, action)
                except DomainError as err:
                    if err.code is ErrorCode.NOT_FOUND:
                        raise not_found("Page") from None
                    raise
            else:
                scope = PersonScope(primary[0], logins)
        return await handler(request, scope)

    return guarded
