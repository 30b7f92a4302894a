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
