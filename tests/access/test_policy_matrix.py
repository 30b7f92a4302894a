"""The generated policy matrix.

For every HTTP route in ``server.app.ROUTE_TABLES`` that names an action and every
Socket.IO event in ``server.realtime.server.EVENTS``, for every role and (when the
route or event is about one agenda session) every session access level, the
expected decision comes from ``server.access.policy.decide`` and the real server
is called as that role's member:

* denied  -> HTTP 404 (the session is not even visible) or 403 / ack ``not_found``
  or ``forbidden``;
* allowed -> a successful response / ``{"ok": true}`` acknowledgement (payloads are
  built to be valid: real item and membership ids, the room joined first).

``test_matrix_covers_every_route_and_event`` fails when a route or event is added
without telling this module how to call it. The whole matrix runs on SQLite and
on PostgreSQL against one server per backend; each case that touches a room gets
a fresh agenda session of the access level under test.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import socketio

from server.access.policy import Action, decide
from server.access.roles import Access, Role
from server.app import ROUTE_TABLES, create_app
from server.core.errors import forbidden
from server.realtime.server import EVENTS, VISIT_EVENTS
from tests.access import calls_booths, calls_calendars, calls_evidence, calls_scheduling
from tests.access.matrix_env import FreshSession, MatrixEnv, call, matrix_env, new_idem
from tests.conftest import BACKENDS, http_client, socket_client
from tests.fixtures.databases import Templates

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROLES = list(Role)
ACCESSES = list(Access)
PLACEHOLDER = re.compile(r"{(\w+)}")


# ---- the expected decision ---------------------------------------------------------------


def is_chair(role: Role) -> bool:
    """World sessions name no chair, so the secretariat chairs."""
    return role is Role.SECRETARIAT


def is_invited(role: Role, access: Access | None) -> bool:
    """The world's stakeholder is invited to the stakeholder session (tests/fixtures/world.py)."""
    return role is Role.STAKEHOLDER and access is Access.STAKEHOLDER


def expected(action: Action, role: Role, access: Access | None) -> tuple[bool, str | None]:
    """(allowed, denial code): a session the member may not even see is ``not_found``."""
    if access is None:
        return decide(action, role), (None if decide(action, role) else "forbidden")
    kw = {"is_chair": is_chair(role), "is_invited": is_invited(role, access)}
    if not decide(Action.SESSION_VIEW, role, access, **kw):
        return False, "not_found"
    if not decide(action, role, access, **kw):
        return False, "forbidden"
    return True, None


STATUS = {"not_found": 404, "forbidden": 403}
POLICY_REFUSAL = forbidden().message


# ---- how to call each route --------------------------------------------------------------

Body = Callable[[MatrixEnv, FreshSession | None], Any]


def _no_body(env: MatrixEnv, s: FreshSession | None) -> None:
    return None


def _same_role(env: MatrixEnv, s: FreshSession | None) -> dict[str, str]:
    # {membership_id} is expert2: "changing" them to expert keeps the shared world intact.
    return {"role": "expert"}


def _same_access(env: MatrixEnv, s: FreshSession | None) -> dict[str, Any]:
    assert s is not None
    return {"access": str(s.access), "requires_admission": False}


# Every route that names an action, with the JSON body a valid call sends.
ROUTE_CALLS: dict[tuple[str, str], Body] = {
    ("GET", "/"): _no_body,
    ("GET", "/api/me"): _no_body,
    ("GET", "/api/me/logins"): _no_body,
    ("POST", "/api/me/logins/{login_id}/revoke"): _no_body,
    ("GET", "/me"): _no_body,
    ("POST", "/me/logins/{login_id}/revoke"): _no_body,
    ("GET", "/visits/{visit_id}"): _no_body,
    ("GET", "/api/visits/{visit_id}"): _no_body,
    ("GET", "/api/visits/{visit_id}/participants"): _no_body,
    ("POST", "/api/visits/{visit_id}/participants/{membership_id}/invitation"): _no_body,
    ("GET", "/api/visits/{visit_id}/audit"): _no_body,
    ("POST", "/visits/{visit_id}/participants/{membership_id}/invitation"): _no_body,
    ("PATCH", "/api/visits/{visit_id}/participants/{membership_id}"): _same_role,
    ("GET", "/sessions/{session_id}"): _no_body,
    ("GET", "/api/sessions/{session_id}"): _no_body,
    ("PATCH", "/api/sessions/{session_id}"): _same_access,
    **calls_calendars.ROUTE_CALLS,
    **calls_scheduling.ROUTE_CALLS,
    **calls_booths.ROUTE_CALLS,
    **calls_evidence.ROUTE_CALLS,
}

# Routes anyone may call (they check what they need themselves), and the app's own.
PUBLIC_ROUTES = {
    ("GET", "/invite/{token}"),
    ("POST", "/invite/{token}"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    *calls_calendars.PUBLIC_ROUTES,
    *calls_scheduling.PUBLIC_ROUTES,
    *calls_booths.PUBLIC_ROUTES,
    *calls_evidence.PUBLIC_ROUTES,
}
APP_ROUTES = {"/healthz", "/static/vendor/{name}", "/static/vendor/esm/{name}", "/static/vendor/pdfjs/{kind}/{name}",
              "/static/js", "/static/css", "/socket.io/"}
# Placeholders other domains fill: name -> async (env, actor key, session) -> value.
EXTRA_PLACEHOLDERS = {**calls_calendars.PLACEHOLDERS, **calls_scheduling.PLACEHOLDERS, **calls_booths.PLACEHOLDERS}
# Placeholders whose value depends on the route (method and path): name -> async (env, actor key,
# session, method, path) -> value.
ROUTE_PLACEHOLDERS = {**calls_evidence.ROUTE_PLACEHOLDERS}
# Bodies built for the actor after the placeholders were filled: (method, path) -> async (env, key, session).
KEYED_BODIES = {**calls_evidence.KEYED_BODIES}
KNOWN_PLACEHOLDERS = {"visit_id", "session_id", "membership_id", "login_id", *EXTRA_PLACEHOLDERS,
                      *ROUTE_PLACEHOLDERS}

async def body_for(env: MatrixEnv, method: str, path: str, key: str, session: FreshSession | None) -> Any:
    """The body a valid call sends (after ``fill``, which may prepare what it signs)."""
    if (method, path) in KEYED_BODIES:
        return await KEYED_BODIES[(method, path)](env, key, session)
    return ROUTE_CALLS[(method, path)](env, session)


def send(body: Any) -> dict[str, Any]:
    """Request arguments for a body: raw bytes as they are, anything else as JSON."""
    return {"data": body} if isinstance(body, bytes) else {"json": body}


SPECS = [spec for table in ROUTE_TABLES for spec in table.specs]
GUARDED = [spec for spec in SPECS if spec.action is not None]


@dataclass(frozen=True)
class RouteCase:
    method: str
    path: str
    action: Action
    page: bool
    role: Role
    access: Access | None

    @property
    def id(self) -> str:
        tail = f"-{self.access}" if self.access else ""
        return f"route-{self.method}-{self.path}-{self.role}{tail}"


def session_scoped(path: str) -> bool:
    return "{session_id}" in path


ROUTE_CASES = [
    RouteCase(spec.method, spec.path, spec.action, spec.page, role, access)
    for spec in GUARDED
    for role, access in product(ROLES, ACCESSES if session_scoped(spec.path) else [None])
]


async def fill(env: MatrixEnv, path: str, key: str, session: FreshSession | None, method: str = "GET") -> str:
    values: dict[str, str] = {}
    for name in PLACEHOLDER.findall(path):
        if name == "visit_id":
            values[name] = env.world.visit_id
        elif name == "session_id":
            assert session is not None
            values[name] = session.id
        elif name == "membership_id":
            values[name] = env.world.members["expert2"].membership_id
        elif name == "login_id":
            values[name] = await env.new_login(key)
        elif name in EXTRA_PLACEHOLDERS:
            values[name] = await EXTRA_PLACEHOLDERS[name](env, key, session)
        elif name in ROUTE_PLACEHOLDERS:
            values[name] = await ROUTE_PLACEHOLDERS[name](env, key, session, method, path)
        else:  # pragma: no cover - caught by test_matrix_covers_every_route_and_event
            raise AssertionError(f"no value for {{{name}}} in {path}")
    return path.format(**values)


# ---- how to emit each event --------------------------------------------------------------


@dataclass
class EventCtx:
    env: MatrixEnv
    client: socketio.AsyncClient
    session: FreshSession
    me: str  # the actor's membership id
    target: str  # a membership the event may name
    allowed: bool


Setup = Callable[[EventCtx], Awaitable[None]]
Payload = Callable[[EventCtx], dict[str, Any]]


async def _nothing(ctx: EventCtx) -> None:
    return None


def _ok(ack: dict[str, Any]) -> None:
    assert ack.get("ok") is True, ack


async def _request_first(ctx: EventCtx) -> None:
    if ctx.allowed:
        _ok(await call(ctx.client, "floor.request", {"session_id": ctx.session.id, "idem": new_idem()}))


async def _give_first(ctx: EventCtx) -> None:
    if ctx.allowed:
        _ok(await call(ctx.client, "floor.give", {"session_id": ctx.session.id, "membership_id": ctx.me}))


async def _start_item_first(ctx: EventCtx) -> None:
    if ctx.allowed:
        _ok(await call(ctx.client, "item.start", {"session_id": ctx.session.id, "item_id": ctx.session.items[0]}))


def _ref(ctx: EventCtx) -> dict[str, Any]:
    return {"session_id": ctx.session.id}


def _idem(ctx: EventCtx) -> dict[str, Any]:
    return {"session_id": ctx.session.id, "idem": new_idem()}


def _target(ctx: EventCtx) -> dict[str, Any]:
    return {"session_id": ctx.session.id, "membership_id": ctx.target, "idem": new_idem()}


@dataclass(frozen=True)
class EventCall:
    payload: Payload
    setup: Setup = _nothing
    lobby: bool = False  # the session requires admission and ``target`` waits in its lobby
    join: bool = True  # the actor joins the room first (when it may)
    # Errors an allowed actor may still get from the room itself, after the policy let the
    # event through (the audio rules read the floor and the booths; this payload names no
    # channel). Never the policy's own refusal: its message differs.
    answers: frozenset[str] = frozenset()


def _media(**fields: Any) -> Payload:
    return lambda c: {"session_id": c.session.id, **fields}


async def _unmute_first(ctx: EventCtx) -> None:
    if ctx.allowed:
        ack = await call(ctx.client, "media.unmute", {"session_id": ctx.session.id, "membership_id": ctx.me})
        assert ack.get("ok") or ack["error"]["code"] == "forbidden", ack


EVENT_CALLS: dict[str, EventCall] = {
    "room.join": EventCall(_ref, join=False),
    "room.leave": EventCall(_ref),
    "room.sync": EventCall(lambda c: {"session_id": c.session.id, "since": 0}),
    "chat.history": EventCall(lambda c: {"session_id": c.session.id, "before": 1}),
    "chat.send": EventCall(lambda c: {"session_id": c.session.id, "text": "Good morning", "idem": new_idem()}),
    "floor.request": EventCall(_idem),
    "floor.withdraw": EventCall(_idem, setup=_request_first),
    # The actor is present after joining, so it is a valid target for itself.
    "floor.give": EventCall(lambda c: {"session_id": c.session.id, "membership_id": c.me, "idem": new_idem()}),
    "floor.end": EventCall(_idem, setup=_give_first),
    "item.start": EventCall(lambda c: {"session_id": c.session.id, "item_id": c.session.items[0], "idem": new_idem()}),
    "item.end": EventCall(_idem, setup=_start_item_first),
    "lobby.admit": EventCall(_target, lobby=True, join=False),
    "lobby.decline": EventCall(_target, lobby=True, join=False),
    "room.typing": EventCall(_ref),
    "media.info": EventCall(_ref),
    "media.publish": EventCall(_media(channel="nowhere", sdp="v=0"), answers=frozenset({"invalid"})),
    "media.unpublish": EventCall(_ref),
    "media.listen": EventCall(_media(channel="nowhere"), answers=frozenset({"invalid"})),
    "media.answer": EventCall(_media(sub=0, sdp="v=0"), answers=frozenset({"conflict"})),
    "media.candidate": EventCall(_media(pc="listen", candidate=None), answers=frozenset({"conflict"})),
    "media.stop": EventCall(_ref),
    "media.cough": EventCall(_media(on=True), answers=frozenset({"conflict"})),
    # A chair unmutes themselves: refused by the room when they may not take the floor.
    "media.unmute": EventCall(lambda c: {"session_id": c.session.id, "membership_id": c.me},
                              answers=frozenset({"forbidden"})),
    "media.mute": EventCall(lambda c: {"session_id": c.session.id, "membership_id": c.me}, setup=_unmute_first,
                            answers=frozenset({"conflict"})),
    # The matrix's visit has no booths: the room refuses everyone who is not a booth's interpreter.
    "booth.handover": EventCall(_ref, answers=frozenset({"forbidden"})),
    "booth.floor": EventCall(_media(carries_floor=True), answers=frozenset({"forbidden"})),
    "booth.slowdown": EventCall(_ref, answers=frozenset({"forbidden"})),
}


@dataclass(frozen=True)
class EventCase:
    name: str
    action: Action
    role: Role
    access: Access

    @property
    def id(self) -> str:
        return f"event-{self.name}-{self.role}-{self.access}"


EVENT_CASES = [
    EventCase(spec.name, spec.action, role, access)
    for spec in EVENTS.values()
    for role, access in product(ROLES, ACCESSES)
]


# ---- fixtures ----------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=BACKENDS)
async def env(
    request: pytest.FixtureRequest, templates: Templates, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MatrixEnv]:
    tmp: Path = tmp_path_factory.mktemp(f"matrix-{request.param}")
    async with matrix_env(request.param, templates, tmp) as e:
        yield e


# ---- coverage ----------------------------------------------------------------------------


async def test_matrix_covers_every_route_and_event() -> None:
    """A route or event added without a way to call it here fails this test."""
    guarded = {(s.method, s.path) for s in GUARDED}
    public = {(s.method, s.path) for s in SPECS if s.action is None}
    assert guarded == set(ROUTE_CALLS), "routes missing from (or stale in) ROUTE_CALLS"
    assert set(KEYED_BODIES) <= guarded, "KEYED_BODIES names a route that does not exist"
    assert public == PUBLIC_ROUTES, "a public route (action=None) must be listed in PUBLIC_ROUTES"
    for method, path in guarded:
        assert set(PLACEHOLDER.findall(path)) <= KNOWN_PLACEHOLDERS, (method, path)
    assert set(EVENTS) == set(EVENT_CALLS), "events missing from (or stale in) EVENT_CALLS"

    # Every generated case is there: each route/event x role (x access when session-scoped).
    for method, path in guarded:
        n = len([c for c in ROUTE_CASES if (c.method, c.path) == (method, path)])
        assert n == len(ROLES) * (len(ACCESSES) if session_scoped(path) else 1), (method, path)
    for name, spec in EVENTS.items():
        assert "session_id" in spec.model.model_fields, f"{name}: every event names its session"
        assert len([c for c in EVENT_CASES if c.name == name]) == len(ROLES) * len(ACCESSES)
    assert len({c.id for c in ROUTE_CASES + EVENT_CASES}) == len(ROUTE_CASES) + len(EVENT_CASES)


async def test_every_app_route_is_in_a_route_table(tmp_path: Path) -> None:
    """Nothing is registered on the app outside the route tables but the fixed public ones."""
    from tests.access.matrix_env import make_settings

    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", tmp_path))
    tabled = {(s.method, s.path) for s in SPECS}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if route.method == "HEAD" or (route.method, path) in tabled:
            continue
        assert path in APP_ROUTES or (path or "").rstrip("/") + "/" in APP_ROUTES, (route.method, path)


# ---- the matrix --------------------------------------------------------------------------


@pytest.mark.parametrize("case", ROUTE_CASES, ids=[c.id for c in ROUTE_CASES])
async def test_route(env: MatrixEnv, case: RouteCase) -> None:
    key = str(case.role)
    session = await env.new_session(case.access) if case.access else None
    url = await fill(env, case.path, key, session, case.method)
    body = await body_for(env, case.method, case.path, key, session)
    allowed, code = expected(case.action, case.role, case.access)
    async with http_client(env.server, env.cookies[key]) as http:
        async with http.request(case.method, url, **send(body), allow_redirects=False) as r:
            text = (await r.read()).decode("utf-8", "replace")  # downloads are binary
            status = r.status
    if allowed:
        assert status < 400, f"{case.id}: allowed by the policy but got {status}: {text[:300]}"
    else:
        assert code is not None
        assert status == STATUS[code], f"{case.id}: denied by the policy but got {status}: {text[:300]}"
        if not case.page:
            assert json.loads(text)["error"]["code"] == code


@pytest.mark.parametrize("case", EVENT_CASES, ids=[c.id for c in EVENT_CASES])
async def test_event(env: MatrixEnv, case: EventCase) -> None:
    how = EVENT_CALLS[case.name]
    key = str(case.role)
    session = await env.new_session(case.access, requires_admission=how.lobby)
    allowed, code = expected(case.action, case.role, case.access)
    may_enter, _ = expected(Action.SESSION_ENTER, case.role, case.access)
    waiting: socketio.AsyncClient | None = None
    client = await socket_client(env.server, env.cookies[key])
    try:
        target = env.world.members["expert2"].membership_id
        if how.lobby:
            # expert2 (who may enter every session) waits in the lobby to be decided on.
            waiting = await socket_client(env.server, env.cookies["expert2"])
            ack = await call(waiting, "room.join", {"session_id": session.id})
            assert ack.get("status") == "waiting", ack
        if how.join and may_enter:
            ack = await call(client, "room.join", {"session_id": session.id})
            assert ack.get("ok") and ack["status"] == "joined", ack
        ctx = EventCtx(env, client, session, env.world.members[key].membership_id, target, allowed)
        await how.setup(ctx)
        ack = await call(client, case.name, how.payload(ctx))
    finally:
        await client.disconnect()
        if waiting is not None:
            await waiting.disconnect()
    if allowed:
        passed = ack.get("ok") is True or (
            ack.get("error", {}).get("code") in how.answers and ack["error"]["message"] != POLICY_REFUSAL
        )
        assert passed, f"{case.id}: allowed by the policy but acknowledged {ack}"
    else:
        assert "error" in ack and ack["error"]["code"] == code, f"{case.id}: denied by the policy but acknowledged {ack}"


# ---- per-session roles are data -------------------------------------------------------


@pytest.mark.parametrize("access", ACCESSES, ids=[str(a) for a in ACCESSES])
async def test_named_chair_replaces_the_secretariat(env: MatrixEnv, access: Access) -> None:
    """A session that names a chair is chaired by them alone: the secretariat no longer chairs."""
    session = await env.new_session(access, chair="expert")
    acks: dict[str, dict[str, Any]] = {}
    for key in ("expert", "secretariat", "delegate"):
        client = await socket_client(env.server, env.cookies[key])
        try:
            joined = await call(client, "room.join", {"session_id": session.id})
            assert joined.get("status") == "joined", joined
            assert joined["is_chair"] is (key == "expert"), (key, joined)
            acks[key] = await call(client, "item.start", {"session_id": session.id, "item_id": session.items[0],
                                                          "idem": new_idem()})
        finally:
            await client.disconnect()
    assert acks["expert"].get("ok") is True, acks
    assert acks["secretariat"]["error"]["code"] == "forbidden", acks
    assert acks["delegate"]["error"]["code"] == "forbidden", acks
    async with http_client(env.server, env.cookies["expert"]) as http:
        async with http.get(f"/api/sessions/{session.id}") as r:
            assert r.status == 200 and (await r.json())["is_chair"] is True


async def test_stakeholder_not_invited_does_not_see_a_stakeholder_session(env: MatrixEnv) -> None:
    """A stakeholder session admits its own stakeholders only: another one is told it does not exist."""
    session = await env.new_session(Access.STAKEHOLDER, invite_stakeholder=False)
    async with http_client(env.server, env.cookies["stakeholder"]) as http:
        for path in (f"/api/sessions/{session.id}", f"/sessions/{session.id}"):
            async with http.get(path, allow_redirects=False) as r:
                assert r.status == 404, (path, r.status)
        async with http.get(f"/api/visits/{env.world.visit_id}") as r:
            listed = {s["id"] for s in (await r.json())["sessions"]}
    assert session.id not in listed
    assert env.world.sessions["stakeholder"] in listed  # the one they are invited to
    client = await socket_client(env.server, env.cookies["stakeholder"])
    try:
        ack = await call(client, "room.join", {"session_id": session.id})
    finally:
        await client.disconnect()
    assert ack["error"]["code"] == "not_found", ack


# ---- outsiders and anonymous callers ----------------------------------------------------


# Routes inside a visit: named by the visit or session, or by a document or version in it.
SCOPED = [s for s in GUARDED if any(f"{{{n}}}" in s.path for n in ("visit_id", "session_id", "version_id",
                                                                     "document_id"))]


@pytest.mark.parametrize("spec", SCOPED, ids=[f"outsider-{s.method}-{s.path}" for s in SCOPED])
async def test_non_member_gets_not_found(env: MatrixEnv, spec: Any) -> None:
    """A member of another visit (its secretariat, even) is told the visit/session does not exist."""
    for access in ACCESSES if session_scoped(spec.path) else [None]:
        session = await env.new_session(access) if access else None
        url = await fill(env, spec.path, "secretariat", session, spec.method)
        body = await body_for(env, spec.method, spec.path, "secretariat", session)
        async with http_client(env.server, env.outsider_cookie) as http:
            async with http.request(spec.method, url, **send(body), allow_redirects=False) as r:
                assert r.status == 404, (url, access, r.status, await r.text())


async def test_non_member_events_get_not_found(env: MatrixEnv) -> None:
    session = await env.new_session(Access.OPEN)
    client = await socket_client(env.server, env.outsider_cookie)
    try:
        for name, how in EVENT_CALLS.items():
            ctx = EventCtx(env, client, session, env.world.members["expert2"].membership_id,
                           env.world.members["expert2"].membership_id, False)
            ack = await call(client, name, how.payload(ctx))
            assert ack.get("error", {}).get("code") == "not_found", (name, ack)
    finally:
        await client.disconnect()


@pytest.mark.parametrize("spec", GUARDED, ids=[f"anonymous-{s.method}-{s.path}" for s in GUARDED])
async def test_anonymous_is_unauthenticated(env: MatrixEnv, spec: Any) -> None:
    """No cookie: API routes answer 401 JSON, page GETs send the browser to /login."""
    session = FreshSession(env.world.sessions["open"], Access.OPEN, env.world.items[env.world.sessions["open"]])
    url = await fill(env, spec.path, "expert", session, spec.method)
    body = await body_for(env, spec.method, spec.path, "expert", session)
    async with http_client(env.server, None) as http:
        async with http.request(spec.method, url, **send(body), allow_redirects=False) as r:
            if spec.page and spec.method == "GET":
                assert r.status == 303, (url, r.status)
                assert r.headers["Location"].startswith("/login"), r.headers["Location"]
            else:
                assert r.status == 401, (url, r.status, await r.text())
                if not spec.page:
                    assert (await r.json())["error"]["code"] == "unauthenticated"


@pytest.mark.parametrize(
    "how", ["no-cookie", "bad-cookie", "foreign-origin", "no-origin"],
)
async def test_socket_connect_refused(env: MatrixEnv, how: str) -> None:
    cookie = {"no-cookie": None, "bad-cookie": "forged"}.get(how, env.cookies["expert"])
    headers = {"Origin": "https://evil.example" if how == "foreign-origin" else env.server.origin}
    if how == "no-origin":
        headers.pop("Origin")
    if cookie:
        headers["Cookie"] = f"parley_session={cookie}"
    async with aiohttp.ClientSession() as http:  # ours, so a refused client leaves nothing open
        client = socketio.AsyncClient(reconnection=False, http_session=http)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(env.server.url, headers=headers, transports=["websocket"], wait_timeout=5)
        assert not client.connected
        await client.disconnect()


# ---- visit-level events (visit.watch) ----------------------------------------------------

VISIT_EVENT_CASES = [(name, role) for name in VISIT_EVENTS for role in ROLES]


@pytest.mark.parametrize(
    ("name", "role"), VISIT_EVENT_CASES, ids=[f"visit-event-{n}-{r}" for n, r in VISIT_EVENT_CASES]
)
async def test_visit_event(env: MatrixEnv, name: str, role: Role) -> None:
    allowed, code = expected(VISIT_EVENTS[name].action, role, None)
    client = await socket_client(env.server, env.cookies[str(role)])
    try:
        ack = await call(client, name, {"visit_id": env.world.visit_id})
    finally:
        await client.disconnect()
    if allowed:
        assert ack.get("ok") is True, ack
    else:
        assert ack["error"]["code"] == code, ack
