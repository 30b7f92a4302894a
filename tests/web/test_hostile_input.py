"""Hostile input: data with markup and format characters is shown escaped, and
malformed bodies, deep nesting and absurd dates are refused with 400, storing nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import update

from server.people.models import Person
from server.visits.models import Delegation, Visit
from tests.conftest import LiveServer, http_client, login
from tests.fixtures.world import World

TEMPLATES = Path(__file__).resolve().parents[2] / "server" / "templates"
HOSTILE = '<script>alert(1)</script> %s %(x)s %d 100%'


def test_templates_never_translate_data() -> None:
    """``_`` in a template is a format string marked safe: only literals may go through it."""
    offenders = []
    for path in sorted(TEMPLATES.glob("*.html")):
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            offenders += [f"{path.name}:{n}: {m}" for m in re.findall(r"\b_\(\s*[^\s\"')][^)]*\)", line)]
    assert not offenders, offenders


async def test_markup_and_percent_in_data_are_shown_as_text(
    server: LiveServer, world: World, sessions: Any
) -> None:
    sec = world.members["secretariat"]
    async with sessions() as db:
        await db.execute(update(Visit).where(Visit.id == world.visit_id).values(
            title=HOSTILE, cycle=HOSTILE[:50], state_under_review=HOSTILE))
        await db.execute(update(Person).where(Person.id == sec.person_id).values(name=HOSTILE))
        await db.execute(update(Delegation).where(Delegation.visit_id == world.visit_id).values(name=HOSTILE))
        await db.commit()
    cookie = await login(server, sec.invite_token)
    v, s = world.visit_id, world.sessions["open"]
    pages = ["/", f"/visits/{v}", f"/sessions/{s}", f"/visits/{v}/schedule", f"/visits/{v}/availability",
             f"/visits/{v}/calendar", f"/sessions/{s}/invitation-email", "/me", f"/visits/{v}/agenda-fragment"]
    async with http_client(server, cookie) as http:
        for path in pages:
            async with http.get(path) as r:
                html = await r.text()
                assert r.status == 200, (path, r.status, html[:300])
            assert "<script>alert(1)" not in html, path
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
        async with http.get(f"/visits/{v}") as r:
            assert "%s %(x)s %d 100%" in (await r.text()).replace("&#34;", '"')
        async with http.get(f"/visits/{v}/calendar.ics") as r:
            assert r.status == 200


# ---- malformed bodies ------------------------------------------------------------------------

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


def json_routes(world: World) -> list[tuple[str, str]]:
    v, s = world.visit_id, world.sessions["open"]
    member = world.members["expert2"].membership_id
    return [
        ("PATCH", f"/api/visits/{v}/participants/{member}"),
        ("PATCH", f"/api/sessions/{s}"),
        ("PUT", f"/api/visits/{v}/availability"),
        ("PUT", f"/api/visits/{v}/participants/{member}/availability"),
        ("POST", f"/api/visits/{v}/availability/import"),
        ("POST", f"/api/visits/{v}/schedule/runs"),
        ("POST", f"/api/visits/{v}/schedule/runs/{'r' * 22}/accept"),
        ("POST", f"/api/sessions/{s}/invitation-email/send"),
    ]


async def stored_state(sessions: Any, world: World) -> tuple[Any, ...]:
    """What a refused request must not have changed: roles, access, availability, audit."""
    from sqlalchemy import func, select

    from server.agenda.models import AgendaSession
    from server.audit.models import AuditEntry
    from server.people.models import Membership
    from server.scheduling.models import Unavailability

    async with sessions() as db:
        roles = sorted((await db.execute(select(Membership.id, Membership.role))).all())
        access = sorted((await db.execute(select(AgendaSession.id, AgendaSession.access))).all())
        people = sorted((await db.execute(select(Person.id, Person.timezone, Person.holidays))).all(), key=str)
        unavailable = (await db.execute(select(func.count()).select_from(Unavailability))).scalar_one()
        audit = (await db.execute(select(func.count()).select_from(AuditEntry))).scalar_one()
    return roles, access, people, unavailable, audit


async def test_malformed_json_bodies_are_400_and_change_nothing(
    server: LiveServer, world: World, sessions: Any
) -> None:
    from tests.web.test_security import assert_error_shape, assert_no_leak

    cookie = await login(server, world.members["secretariat"].invite_token)
    before = await stored_state(sessions, world)
    bodies = [
        b'{"role": "\xff\xfe"}',                  # invalid UTF-8 inside a string
        b'\xc3\x28',                              # invalid UTF-8 sequence alone
        DEEP,                                     # 100k-deep lists
        DEEP_OBJECT,                              # 100k-deep objects
        b'{"participants": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
        b'{"index": NaN}',
        b"{not json",
    ]
    async with http_client(server, cookie) as http:
        for method, path in json_routes(world):
            for body in bodies:
                async with http.request(method, path, data=body, headers=JSON) as r:
                    text = await r.text()
                    assert r.status == 400, (method, path, body[:20], r.status, text[:300])
                    assert_no_leak(text)
                    assert_error_shape(await r.json(), "invalid")
    assert await stored_state(sessions, world) == before


async def test_malformed_forms_are_400_pages_and_change_nothing(
    server: LiveServer, world: World, sessions: Any
) -> None:
    from tests.web.test_security import assert_no_leak

    cookie = await login(server, world.members["secretariat"].invite_token)
    before = await stored_state(sessions, world)
    v = world.visit_id
    forms = [
        b"email=\xff\xfe&password=x",             # raw invalid UTF-8
        b"email=%FF%FE&password=x",               # percent-encoded invalid UTF-8
        b"holidays=2027-01-01%C3%28",
        b"&".join(b"f%d=1" % i for i in range(5000)),
    ]
    paths = ["/login", f"/visits/{v}/availability", f"/visits/{v}/availability/import", f"/visits/{v}/schedule"]
    async with http_client(server, cookie) as http:
        for path in paths:
            for body in forms:
                async with http.post(path, data=body, headers=FORM, allow_redirects=False) as r:
                    text = await r.text()
                    assert r.status == 400, (path, body[:24], r.status, text[:300])
                    assert r.content_type == "text/html", path
                    assert_no_leak(text)
        # The import box's JSON text, deeply nested, comes back on the schedule page.
        deep = "[" * 100_000 + "]" * 100_000
        async with http.post(f"/visits/{v}/availability/import", data={"data": deep}) as r:
            assert r.status == 400 and "nested" in await r.text()
    assert await stored_state(sessions, world) == before


async def test_a_raw_body_read_that_fails_is_400_not_500(settings: Any) -> None:
    """The middleware safety net: a handler that still reads the body the aiohttp way."""
    import aiohttp
    from aiohttp import web

    from server.app import create_app
    from tests.web.test_security import assert_error_shape

    async def raw_json(request: web.Request) -> web.Response:
        return web.json_response({"got": await request.json()})

    async def raw_form(request: web.Request) -> web.Response:
        return web.json_response({"got": dict(await request.post())})

    app = create_app(settings)
    app.router.add_post("/api/raw-json", raw_json)
    app.router.add_post("/api/raw-form", raw_form)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    try:
        headers = {"Origin": settings.allowed_origins[0]}
        async with aiohttp.ClientSession(base_url=settings.base_url, headers=headers) as http:
            for path, body, kind in [("/api/raw-json", DEEP, JSON), ("/api/raw-json", b'"\xff"', JSON),
                                     ("/api/raw-form", b"a=\xff", FORM)]:
                async with http.post(path, data=body, headers=kind) as r:
                    assert r.status == 400, (path, body[:10], r.status)
                    assert_error_shape(await r.json(), "invalid")
    finally:
        await runner.cleanup()


# ---- dates -------------------------------------------------------------------------------

ABSURD = ["0001-01-01T00:30", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:00-05:00", "1969-12-31T23:00Z",
          "2201-01-01T00:00"]


async def test_absurd_dates_are_refused_and_never_stored(
    server: LiveServer, world: World, sessions: Any
) -> None:
    from tests.web.test_security import assert_error_shape

    v = world.visit_id
    delegate = world.members["delegate"]
    cookie = await login(server, delegate.invite_token)
    sec = await login(server, world.members["secretariat"].invite_token)
    before = await stored_state(sessions, world)
    async with http_client(server, cookie) as http:
        for when in ABSURD:
            good = "2027-03-25T09:00"
            for start, end in [(when, good), (good, when), (when, when)]:
                interval = {"start": start, "end": end}
                async with http.put(f"/api/visits/{v}/availability", json={"unavailable": [interval]}) as r:
                    assert r.status == 400, (interval, r.status, await r.text())
                    assert_error_shape(await r.json(), "invalid")
                form = {"new_start_1": start, "new_end_1": end}
                async with http.post(f"/visits/{v}/availability", data=form, allow_redirects=False) as r:
                    assert r.status == 400, (form, r.status)
            async with http.put(f"/api/visits/{v}/availability", json={"holidays": [when[:10]]}) as r:
                assert r.status == 400, (when, r.status)
        async with http.get(f"/visits/{v}/availability") as r:
            assert r.status == 200
        async with http.get(f"/api/visits/{v}/availability") as r:
            assert r.status == 200 and (await r.json())["unavailable"] == []

    async with http_client(server, sec) as http:
        for when in ABSURD:
            entry = {"membership_id": delegate.membership_id, "unavailable": [{"start": when, "end": "2027-01-01T00:00"}]}
            async with http.post(f"/api/visits/{v}/availability/import", json=[entry]) as r:
                assert r.status == 400, (when, r.status, await r.text())
            async with http.post(f"/api/visits/{v}/schedule/runs", json={"window": {"start": when, "end": "2027-01-02T00:00Z"}}) as r:
                assert r.status == 400, (when, r.status, await r.text())
                assert_error_shape(await r.json(), "invalid")
        for first, last in [("0001-01-01", "0001-01-05"), ("9999-12-30", "9999-12-31"), ("2027-01-01", "9999-12-31")]:
            async with http.post(f"/visits/{v}/schedule", data={"window_first": first, "window_last": last},
                                 allow_redirects=False) as r:
                assert r.status == 400, (first, last, r.status)
    assert await stored_state(sessions, world) == before
