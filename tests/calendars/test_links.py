"""Subscription links: created and replaced through the page and the API, shown once,
stored only as keyed hashes, stopped on request (audited); stopped, replaced, unknown or
malformed links answer 404; the signed-in download."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
from sqlalchemy import select, update

from server.audit.models import AuditEntry
from server.calendars.models import CalendarFeed
from server.core.security import token_hash
from server.visits.models import Visit, VisitStatus
from tests.calendars.helpers import events, feed_token, fetch, fetch_feed, uid
from tests.conftest import LiveServer, http_client, login
from tests.fixtures.world import World
from tests.web.test_security import assert_error_shape, blocked_by_csp

FEED_URL = re.compile(r'value="(http://[^"]+/calendar/([A-Za-z0-9_-]+)\.ics)"')


def browser(server: LiveServer, cookie: str) -> aiohttp.ClientSession:
    """Form posts from the page, as a browser sends them."""
    return aiohttp.ClientSession(
        base_url=server.url, cookies={"parley_session": cookie},
        headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    )


async def audit_entries(sessions: Any, action: str) -> list[AuditEntry]:
    async with sessions() as db:
        rows = await db.execute(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq))
        return list(rows.scalars())


async def test_api_create_replace_and_stop(server: LiveServer, world: World, sessions: Any) -> None:
    member = world.members["delegate"]
    cookie = await login(server, member.invite_token)
    async with http_client(server, cookie) as http:
        async with http.get(f"/api/visits/{world.visit_id}/calendar-feed") as r:
            assert r.status == 200 and (await r.json())["active"] is False
        async with http.post(f"/api/visits/{world.visit_id}/calendar-feed") as r:
            assert r.status == 201, await r.text()
            first = (await r.json())["feed_url"]
        assert first.startswith(f"{server.url}/calendar/") and first.endswith(".ics")
        assert (await fetch(server, first.removeprefix(server.url))).status == 200

        async with http.post(f"/api/visits/{world.visit_id}/calendar-feed") as r:
            assert r.status == 201
            second = (await r.json())["feed_url"]
        assert second != first
        old = await fetch(server, first.removeprefix(server.url))
        assert old.status == 404 and old.content_type == "text/plain", "a replaced link stops working"
        assert "BEGIN:VCALENDAR" not in old.text
        assert (await fetch(server, second.removeprefix(server.url))).status == 200
        async with http.get(f"/api/visits/{world.visit_id}/calendar-feed") as r:
            state = await r.json()
        assert state["active"] is True and state["created_at"].endswith("Z")
        assert state["download_url"] == f"{server.url}/visits/{world.visit_id}/calendar.ics"

        async with http.post(f"/api/visits/{world.visit_id}/calendar-feed/revoke") as r:
            assert r.status == 200 and (await r.json()) == {"revoked": 1}
        async with http.post(f"/api/visits/{world.visit_id}/calendar-feed/revoke") as r:
            assert (await r.json()) == {"revoked": 0}, "stopping twice is harmless"
    gone = await fetch(server, second.removeprefix(server.url), accept="application/json")
    assert gone.status == 404
    assert_error_shape(json.loads(gone.text), "not_found")

    created = await audit_entries(sessions, "calendar_feed.created")
    revoked = await audit_entries(sessions, "calendar_feed.revoked")
    assert len(created) == 2 and len(revoked) == 1
    assert all(e.subject == member.membership_id and e.actor_person_id == member.person_id for e in created + revoked)
    assert created[1].data["replaced"] == [created[0].data["feed"]]
    assert revoked[0].data["feeds"] == [created[1].data["feed"]]
    for entry in created + revoked:
        for url in (first, second):
            assert url.rsplit("/", 1)[1].removesuffix(".ics") not in json.dumps(entry.data), "no token in the log"


async def test_tokens_are_long_and_stored_only_as_hashes(
    server: LiveServer, world: World, sessions: Any
) -> None:
    token = await feed_token(sessions, server.settings, world, "expert")
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    async with sessions() as db:
        rows = list((await db.execute(select(CalendarFeed))).scalars())
    assert len(rows) == 1
    assert rows[0].token_hash == token_hash(server.settings.secret_key, token)
    assert token not in rows[0].token_hash
    assert rows[0].membership_id == world.members["expert"].membership_id


async def test_unknown_and_malformed_links_are_not_found(server: LiveServer, world: World, sessions: Any) -> None:
    token = await feed_token(sessions, server.settings, world, "expert")
    for path in (
        "/calendar/" + "A" * 43 + ".ics",
        "/calendar/" + token[:-1] + ".ics",
        "/calendar/" + token + "x.ics",
        "/calendar/" + "x" * 300 + ".ics",
        "/calendar/%00.ics",
        "/calendar/a.b.ics",
    ):
        got = await fetch(server, path)
        assert got.status == 404, (path, got.status)
        assert "BEGIN:VCALENDAR" not in got.text
        got = await fetch(server, path, accept="application/json")
        assert got.status == 404 and json.loads(got.text)["error"]["code"] == "not_found"
    assert (await fetch_feed(server, token)).status == 200


async def test_an_archived_visit_stops_its_feeds(server: LiveServer, world: World, sessions: Any) -> None:
    token = await feed_token(sessions, server.settings, world, "expert")
    assert (await fetch_feed(server, token)).status == 200
    async with sessions() as db:
        await db.execute(update(Visit).where(Visit.id == world.visit_id).values(status=VisitStatus.ARCHIVED))
        await db.commit()
    assert (await fetch_feed(server, token)).status == 404


async def test_page_shows_the_link_once(server: LiveServer, world: World, sessions: Any) -> None:
    cookie = await login(server, world.members["observer"].invite_token)
    page_path = f"/visits/{world.visit_id}/calendar"
    async with browser(server, cookie) as http:
        async with http.get(page_path) as r:
            assert r.status == 200
            page = await r.text()
        assert "Download calendar" in page and "Get a new subscription link" in page
        assert f'action="/visits/{world.visit_id}/calendar.ics"' in page
        assert "Stop the subscription link" not in page, "nothing to stop yet"
        assert not blocked_by_csp(page)

        async with http.post(f"{page_path}/new") as r:
            assert r.status == 200, await r.text()
            assert "no-store" in r.headers["Cache-Control"]
            shown = await r.text()
        match = FEED_URL.search(shown)
        assert match, shown
        url, token = match.groups()
        assert url == f"{server.url}/calendar/{token}.ics"
        assert set(events((await fetch_feed(server, token)).text)) == {uid(world.sessions["open"])}

        async with http.get(page_path) as r:
            again = await r.text()
        assert token not in again, "the link is shown only once"
        assert 'id="feed-active"' in again and "Stop the subscription link" in again

        async with http.post(f"{page_path}/revoke", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == f"{page_path}?stopped=1"
        async with http.get(f"{page_path}?stopped=1") as r:
            stopped = await r.text()
        assert 'id="feed-stopped"' in stopped
    assert (await fetch_feed(server, token)).status == 404
    assert len(await audit_entries(sessions, "calendar_feed.revoked")) == 1


async def test_each_member_manages_only_their_own_link(server: LiveServer, world: World, sessions: Any) -> None:
    """The secretariat stopping *their* link leaves the expert's working."""
    expert = await feed_token(sessions, server.settings, world, "expert")
    cookie = await login(server, world.members["secretariat"].invite_token)
    async with http_client(server, cookie) as http:
        async with http.post(f"/api/visits/{world.visit_id}/calendar-feed") as r:
            assert r.status == 201
        async with http.post(f"/api/visits/{world.visit_id}/calendar-feed/revoke") as r:
            assert (await r.json()) == {"revoked": 1}
    assert (await fetch_feed(server, expert)).status == 200


async def test_download_for_the_signed_in_participant(server: LiveServer, world: World, sessions: Any) -> None:
    cookie = await login(server, world.members["stakeholder"].invite_token)
    got = await fetch(server, f"/visits/{world.visit_id}/calendar.ics", cookie=cookie)
    assert got.status == 200 and got.content_type == "text/calendar"
    assert got.headers["Content-Disposition"] == 'attachment; filename="parley-calendar.ics"'
    assert set(events(got.text)) == {uid(world.sessions["open"]), uid(world.sessions["stakeholder"])}
    # No login: a browser is sent to sign in; another visit's id names nothing.
    anonymous = await fetch(server, f"/visits/{world.visit_id}/calendar.ics")
    assert anonymous.status == 303 and anonymous.headers["Location"].startswith("/login")
    assert (await fetch(server, f"/visits/{'x' * 22}/calendar.ics", cookie=cookie)).status == 404
