"""Invitation links: a GET shows "Join" and spends nothing; a POST spends the link once
and signs the browser in; spent, expired, replaced and unknown links get a clear 410
page; the secretariat re-issues links; tokens are long and stored only as hashes."""

from __future__ import annotations

import asyncio
import base64
import re
from datetime import timedelta
from typing import Any

import aiohttp
from sqlalchemy import func, select, text

from server.audit.models import AuditEntry
from server.core import clock
from server.core.security import token_hash
from server.db.registry import Base
from server.people.models import Invitation, LoginSession
from tests.conftest import LiveServer, http_client, login
from tests.fixtures.world import World

JOIN_BUTTON = re.compile(r"<button[^>]*type=\"submit\"[^>]*>\s*Join\s*</button>")


def browser(server: LiveServer) -> aiohttp.ClientSession:
    """A cookie-keeping client that sends the page's Origin, as a browser form post does."""
    return aiohttp.ClientSession(
        base_url=server.url, headers={"Origin": server.origin}, cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


async def invitation_row(sessions: Any, server: LiveServer, token: str) -> Invitation:
    async with sessions() as db:
        row = (
            await db.execute(
                select(Invitation).where(Invitation.token_hash == token_hash(server.settings.secret_key, token))
            )
        ).scalar_one()
        return row


def token_of(invite_url: str) -> str:
    return invite_url.rsplit("/invite/", 1)[1]


async def reissue(server: LiveServer, cookie: str, world: World, key: str) -> str:
    member = world.members[key]
    async with http_client(server, cookie) as http:
        async with http.post(
            f"/api/visits/{world.visit_id}/participants/{member.membership_id}/invitation"
        ) as r:
            assert r.status == 201, await r.text()
            url = (await r.json())["invite_url"]
    assert url.startswith(f"{server.url}/invite/")
    return token_of(url)


async def test_get_shows_join_and_does_not_spend(server: LiveServer, world: World, sessions: Any) -> None:
    token = world.members["expert"].invite_token
    async with browser(server) as b:
        for _ in range(2):  # a mail scanner fetching the link, then the person
            async with b.get(f"/invite/{token}", allow_redirects=False) as r:
                assert r.status == 200
                page = await r.text()
            assert JOIN_BUTTON.search(page), page
            assert f'action="/invite/{token}"' in page and 'method="post"' in page
            assert "parley_session" not in {c.key for c in b.cookie_jar}
    row = await invitation_row(sessions, server, token)
    assert row.spent_at is None and row.revoked_at is None


async def test_post_spends_sets_cookie_and_redirects(server: LiveServer, world: World, sessions: Any) -> None:
    member = world.members["expert"]
    async with browser(server) as b:
        async with b.post(f"/invite/{member.invite_token}", allow_redirects=False) as r:
            assert r.status == 303, await r.text()
            assert r.headers["Location"] == f"/visits/{world.visit_id}"
            set_cookie = r.headers.getall("Set-Cookie")
        [cookie] = [c for c in set_cookie if c.startswith("parley_session=")]
        attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
        assert "httponly" in attributes
        assert attributes["samesite"].lower() == "samesite=lax"
        assert attributes["path"] == "Path=/"
        # The browser is now signed in as that person and lands on the visit.
        async with b.get("/api/me") as r:
            assert r.status == 200
            assert (await r.json())["id"] == member.person_id
        async with b.get(f"/visits/{world.visit_id}") as r:
            assert r.status == 200
    row = await invitation_row(sessions, server, member.invite_token)
    assert row.spent_at is not None


async def test_second_post_gets_a_clear_spent_page(server: LiveServer, world: World) -> None:
    token = world.members["delegate"].invite_token
    await login(server, token)
    async with browser(server) as other:  # another browser (or the scanner) tries again
        async with other.post(f"/invite/{token}", allow_redirects=False) as r:
            assert r.status == 410
            page = await r.text()
        assert 'data-state="spent"' in page and "already been used" in page
        assert "Traceback" not in page
        assert "parley_session" not in r.cookies
        async with other.get(f"/invite/{token}") as r:
            assert r.status == 410
            assert 'data-state="spent"' in await r.text()


async def test_expired_link_gets_a_clear_page(server: LiveServer, world: World) -> None:
    token = world.members["observer"].invite_token
    clock.shift(timedelta(days=31))  # world links last 30 days
    async with browser(server) as b:
        async with b.get(f"/invite/{token}") as r:
            assert r.status == 410
            page = await r.text()
        assert 'data-state="expired"' in page and "expired" in page
        async with b.post(f"/invite/{token}", allow_redirects=False) as r:
            assert r.status == 410
            assert 'data-state="expired"' in await r.text()
            assert "parley_session" not in r.cookies


async def test_reissued_link_replaces_the_old_one(server: LiveServer, world: World, sessions: Any) -> None:
    sec = await login(server, world.members["secretariat"].invite_token)
    old = world.members["interpreter"].invite_token
    new = await reissue(server, sec, world, "interpreter")
    assert new != old
    async with browser(server) as b:
        async with b.get(f"/invite/{old}") as r:
            assert r.status == 410
            page = await r.text()
        assert 'data-state="revoked"' in page and "replaced" in page
        async with b.post(f"/invite/{old}", allow_redirects=False) as r:
            assert r.status == 410
        async with b.get(f"/invite/{new}") as r:
            assert r.status == 200 and JOIN_BUTTON.search(await r.text())
        async with b.post(f"/invite/{new}", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == f"/visits/{world.visit_id}"
        async with b.get("/api/me") as r:
            assert (await r.json())["id"] == world.members["interpreter"].person_id
    assert (await invitation_row(sessions, server, old)).revoked_at is not None
    # The visit page's button does the same and shows the new link once.
    async with http_client(server, sec) as http:
        member = world.members["interpreter"]
        async with http.post(f"/visits/{world.visit_id}/participants/{member.membership_id}/invitation") as r:
            assert r.status == 200
            page = await r.text()
    [shown] = re.findall(re.escape(server.url) + r"/invite/([A-Za-z0-9_-]+)", page)
    assert (await invitation_row(sessions, server, shown)).spent_at is None
    assert (await invitation_row(sessions, server, new)).spent_at is not None


async def test_only_the_secretariat_reissues(server: LiveServer, world: World, sessions: Any) -> None:
    target = world.members["expert2"]
    for key in ("expert", "delegate", "interpreter", "stakeholder", "observer"):
        cookie = await login(server, world.members[key].invite_token)
        async with http_client(server, cookie) as http:
            for path in (
                f"/api/visits/{world.visit_id}/participants/{target.membership_id}/invitation",
                f"/visits/{world.visit_id}/participants/{target.membership_id}/invitation",
            ):
                async with http.post(path) as r:
                    assert r.status == 403, (key, path, r.status)
                    if path.startswith("/api/"):
                        assert (await r.json())["error"]["code"] == "forbidden"
    # Nothing changed: expert2's link still works.
    row = await invitation_row(sessions, server, target.invite_token)
    assert row.revoked_at is None and row.spent_at is None


async def test_reissue_for_a_stranger_is_not_found(server: LiveServer, world: World) -> None:
    sec = await login(server, world.members["secretariat"].invite_token)
    async with http_client(server, sec) as http:
        for membership in ("x" * 22, "y" * 300):
            async with http.post(f"/api/visits/{world.visit_id}/participants/{membership}/invitation") as r:
                assert r.status == 404
                assert (await r.json())["error"]["code"] == "not_found"


async def test_unknown_token_gets_a_clear_page(server: LiveServer, world: World) -> None:
    tokens = ["unknown-token-abcdefghijklmnopqrstuvwxyz0123456", "x" * 500, "a", "%E2%98%83"]
    async with browser(server) as b:
        for token in tokens:
            for method in ("GET", "POST"):
                async with b.request(method, f"/invite/{token}", allow_redirects=False) as r:
                    assert r.status == 410, (token, method, r.status)
                    page = await r.text()
                assert 'data-state="unknown"' in page and "not known" in page
                assert "Traceback" not in page


async def test_signed_in_browser_goes_straight_to_the_visit(server: LiveServer, world: World, sessions: Any) -> None:
    sec = await login(server, world.members["secretariat"].invite_token)
    old = world.members["expert"].invite_token
    async with browser(server) as b:
        async with b.post(f"/invite/{old}", allow_redirects=False) as r:
            assert r.status == 303
        new = await reissue(server, sec, world, "expert")
        # Their own new link, and their own spent one: straight in, nothing spent.
        for token in (new, old):
            async with b.get(f"/invite/{token}", allow_redirects=False) as r:
                assert r.status == 303, (token == new, r.status)
                assert r.headers["Location"] == f"/visits/{world.visit_id}"
        # Someone else's link in this browser still shows that person's Join page.
        async with b.get(f"/invite/{world.members['observer'].invite_token}", allow_redirects=False) as r:
            assert r.status == 200
    assert (await invitation_row(sessions, server, new)).spent_at is None


async def test_tokens_are_long_and_stored_only_as_hashes(server: LiveServer, world: World, sessions: Any) -> None:
    cookie = await login(server, world.members["expert"].invite_token)
    secrets_ = [m.invite_token for m in world.members.values()] + [cookie]
    for token in secrets_:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) * 8 >= 128, token
    assert len(set(secrets_)) == len(secrets_)
    async with sessions() as db:
        hashes = set((await db.execute(select(Invitation.token_hash))).scalars())
        assert {token_hash(server.settings.secret_key, m.invite_token) for m in world.members.values()} <= hashes
        login_hashes = set((await db.execute(select(LoginSession.token_hash))).scalars())
        assert token_hash(server.settings.secret_key, cookie) in login_hashes
        # No table holds any raw token anywhere (every column of every row, as text).
        for table in Base.metadata.sorted_tables:
            rows = (await db.execute(select(table))).all()
            dump = repr(rows)
            for token in secrets_:
                assert token not in dump, f"a raw token is stored in {table.name}"
        dump = repr((await db.execute(text("SELECT * FROM invitation"))).all())
        assert not any(token in dump for token in secrets_)


async def test_concurrent_joins_spend_the_link_once(server: LiveServer, world: World, sessions: Any) -> None:
    member = world.members["expert2"]

    async def press_join() -> tuple[int, str | None]:
        async with browser(server) as b:
            async with b.post(f"/invite/{member.invite_token}", allow_redirects=False) as r:
                await r.read()
                cookie = r.cookies.get("parley_session")
                return r.status, cookie.value if cookie else None

    results = await asyncio.gather(*(press_join() for _ in range(4)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [303, 410, 410, 410], results
    assert len([c for _, c in results if c]) == 1
    async with sessions() as db:
        logins = (
            await db.execute(select(func.count()).select_from(LoginSession).where(LoginSession.person_id == member.person_id))
        ).scalar_one()
        spent = (
            await db.execute(
                select(func.count()).select_from(AuditEntry).where(
                    AuditEntry.action == "invitation.spent", AuditEntry.subject == member.membership_id
                )
            )
        ).scalar_one()
    assert logins == 1 and spent == 1
