"""Login sessions live on the server: they can be listed and revoked, end at logout and
when the visit is archived; secretariat accounts log in with an Argon2id password;
ids in URLs are random."""

from __future__ import annotations

import asyncio
import itertools
import re
from datetime import timedelta
from typing import Any

import aiohttp
import socketio
from sqlalchemy import select, update

from server.audit.models import AuditEntry
from server.core import clock
from server.people import service as people
from server.people.models import LoginSession, Membership, Person
from server.visits.models import Visit, VisitStatus
from tests.conftest import LiveServer, http_client, login, socket_client
from tests.fixtures.world import World

PASSWORD = "a long secretariat passphrase"
URLSAFE_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


async def reissue(server: LiveServer, world: World, sec: str, key: str) -> str:
    member = world.members[key]
    async with http_client(server, sec) as http:
        async with http.post(f"/api/visits/{world.visit_id}/participants/{member.membership_id}/invitation") as r:
            assert r.status == 201
            return (await r.json())["invite_url"].rsplit("/", 1)[1]


async def status_of(server: LiveServer, cookie: str, path: str = "/api/me") -> int:
    async with http_client(server, cookie) as http, http.get(path, allow_redirects=False) as r:
        return r.status


async def logins_of(server: LiveServer, cookie: str) -> list[dict[str, Any]]:
    async with http_client(server, cookie) as http, http.get("/api/me/logins") as r:
        assert r.status == 200
        return list((await r.json())["logins"])


async def socket_refused(server: LiveServer, cookie: str) -> bool:
    async with aiohttp.ClientSession() as session:
        client = socketio.AsyncClient(reconnection=False, http_session=session)
        try:
            await client.connect(
                server.url, headers={"Cookie": f"parley_session={cookie}", "Origin": server.origin},
                transports=["websocket"], wait_timeout=5,
            )
        except socketio.exceptions.ConnectionError:
            return True
        await client.disconnect()
        return False


async def two_browsers(server: LiveServer, world: World, key: str = "expert") -> tuple[str, str]:
    """The same person signed in in two browsers (their link re-issued in between)."""
    sec = await login(server, world.members["secretariat"].invite_token)
    first = await login(server, world.members[key].invite_token)
    second = await login(server, await reissue(server, world, sec, key))
    return first, second


async def test_logins_are_listed_and_revoked(server: LiveServer, world: World) -> None:
    first, second = await two_browsers(server, world)
    listed = await logins_of(server, first)
    assert len(listed) == 2
    assert [entry["current"] for entry in listed].count(True) == 1
    for entry in listed:
        assert set(entry) >= {"id", "via", "user_agent", "created_at", "last_seen_at", "current"}
        assert entry["via"] == "invitation"
        assert URLSAFE_ID.match(entry["id"])
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", entry["created_at"])
    other = next(entry["id"] for entry in listed if not entry["current"])

    client = await socket_client(server, second)  # a live connection of the browser to revoke
    try:
        async with http_client(server, first) as http:
            async with http.post(f"/api/me/logins/{other}/revoke") as r:
                assert r.status == 200 and (await r.json()) == {"ok": True}
        assert await status_of(server, second) == 401
        assert await status_of(server, second, f"/visits/{world.visit_id}") == 303  # back to /login
        assert await socket_refused(server, second)
        # An already open connection of that login is closed by the server.
        for _ in range(500):
            if not client.connected:
                break
            await asyncio.sleep(0.01)
        assert not client.connected
    finally:
        await client.disconnect()
    assert await status_of(server, first) == 200
    remaining = await logins_of(server, first)
    assert len(remaining) == 1 and remaining[0]["id"] != other and remaining[0]["current"]


async def test_revoking_another_persons_login_is_not_found(server: LiveServer, world: World) -> None:
    expert = await login(server, world.members["expert"].invite_token)
    delegate = await login(server, world.members["delegate"].invite_token)
    [theirs] = await logins_of(server, delegate)
    async with http_client(server, expert) as http:
        for login_id in (theirs["id"], "no-such-login", "z" * 200):
            async with http.post(f"/api/me/logins/{login_id}/revoke") as r:
                assert r.status in (400, 404), r.status
                body = await r.json()
                assert set(body["error"]) == {"code", "message"}
    assert await status_of(server, delegate) == 200


async def test_revoke_from_the_page(server: LiveServer, world: World) -> None:
    first, second = await two_browsers(server, world, "observer")
    other = next(entry["id"] for entry in await logins_of(server, first) if not entry["current"])
    async with http_client(server, first) as http:
        async with http.get("/me") as r:
            assert r.status == 200
            assert f"/me/logins/{other}/revoke" in await r.text()
        async with http.post(f"/me/logins/{other}/revoke", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/me"
    assert await status_of(server, second) == 401
    assert await status_of(server, first) == 200


async def test_logout_ends_the_session(server: LiveServer, world: World, sessions: Any) -> None:
    cookie = await login(server, world.members["delegate"].invite_token)
    async with http_client(server, cookie) as http:
        async with http.post("/logout", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/login"
            cleared = [c for c in r.headers.getall("Set-Cookie") if c.startswith("parley_session=")]
            assert cleared and ("Max-Age=0" in cleared[0] or "expires=" in cleared[0].lower())
    assert await status_of(server, cookie) == 401
    assert await socket_refused(server, cookie)
    async with sessions() as db:
        row = (
            await db.execute(select(LoginSession).where(LoginSession.person_id == world.members["delegate"].person_id))
        ).scalar_one()
        assert row.revoked_at is not None
    # Logging out without a session is harmless.
    async with http_client(server, None) as http, http.post("/logout", allow_redirects=False) as r:
        assert r.status == 303


async def create_admin(sessions: Any, email: str = "Head.Secretariat@Example.org") -> Person:
    async with sessions() as db:
        person = await people.create_admin(db, email, PASSWORD)
        await db.commit()
        return person


async def password_login(server: LiveServer, email: str, password: str, next_: str = "/me") -> aiohttp.ClientResponse:
    async with http_client(server, None) as http:
        async with http.post(
            "/login", data={"email": email, "password": password, "next": next_}, allow_redirects=False
        ) as r:
            await r.read()
            return r


async def test_password_login(server: LiveServer, world: World, sessions: Any) -> None:
    person = await create_admin(sessions)
    async with sessions() as db:
        stored = (await db.get(Person, person.id)).password_hash  # type: ignore[union-attr]
    assert stored and stored.startswith("$argon2id$") and PASSWORD not in stored
    r = await password_login(server, "head.secretariat@example.org", PASSWORD)
    assert r.status == 303 and r.headers["Location"] == "/me"
    cookie = r.cookies["parley_session"]
    assert cookie["httponly"] and cookie["samesite"].lower() == "lax"
    async with http_client(server, cookie.value) as http:
        async with http.get("/api/me") as me:
            assert (await me.json())["id"] == person.id
        async with http.get("/api/me/logins") as listed:
            assert [entry["via"] for entry in (await listed.json())["logins"]] == ["password"]
    # A password login lasts hours, not forever.
    clock.shift(timedelta(hours=13))
    assert await status_of(server, cookie.value) == 401


async def test_password_login_refused(server: LiveServer, world: World, sessions: Any) -> None:
    await create_admin(sessions)
    for email, password in [
        ("head.secretariat@example.org", "wrong password, long enough"),
        ("nobody@example.org", PASSWORD),  # an unknown address gets the same answer
        (world.members["expert"].name, PASSWORD),
        ("", ""),
    ]:
        r = await password_login(server, email, password)
        assert r.status == 401, email
        assert "parley_session" not in r.cookies
        async with http_client(server, None) as http:
            async with http.post("/login", data={"email": email, "password": password}) as page:
                assert page.status == 401
                html = await page.text()
        assert 'role="alert"' in html and "Wrong e-mail address or password" in html
    async with sessions() as db:
        failed = (await db.execute(select(AuditEntry).where(AuditEntry.action == "login.failed"))).scalars().all()
    assert len(failed) >= 2


async def test_login_never_redirects_off_site(server: LiveServer, world: World, sessions: Any) -> None:
    await create_admin(sessions)
    for target in ("//evil.example/x", "https://evil.example/", "javascript:alert(1)"):
        r = await password_login(server, "head.secretariat@example.org", PASSWORD, next_=target)
        assert r.status == 303 and r.headers["Location"] == "/", target


async def test_archiving_the_visit_ends_its_sessions(server: LiveServer, world: World, sessions: Any) -> None:
    cookie = await login(server, world.members["expert"].invite_token)
    client = await socket_client(server, cookie)
    try:
        assert await status_of(server, cookie) == 200
        async with sessions() as db:
            await db.execute(
                update(Visit).where(Visit.id == world.visit_id).values(
                    status=VisitStatus.ARCHIVED, archived_at=clock.utcnow()
                )
            )
            await db.commit()
        assert await status_of(server, cookie) == 401
        assert await socket_refused(server, cookie)
        ack = await client.call("room.join", {"session_id": world.sessions["open"]}, timeout=10)
        assert ack["error"]["code"] == "unauthenticated", ack
    finally:
        await client.disconnect()
    # Unspent links of an archived visit no longer open it either.
    async with http_client(server, None) as http:
        async with http.get(f"/invite/{world.members['observer'].invite_token}") as r:
            assert r.status == 410


async def test_ids_in_urls_are_random(server: LiveServer, world: World, sessions: Any) -> None:
    first, _ = await two_browsers(server, world)
    async with sessions() as db:
        memberships = list((await db.execute(select(Membership.id))).scalars())
        logins = list((await db.execute(select(LoginSession.id))).scalars())
    ids = [world.visit_id, *world.sessions.values(), *memberships, *logins]
    ids += [item for items in world.items.values() for item in items]
    async with http_client(server, first) as http, http.get(f"/api/visits/{world.visit_id}") as r:
        ids += [s["id"] for s in (await r.json())["sessions"]]
    for value in ids:
        assert URLSAFE_ID.match(value), value
        assert not value.isdigit()
    # Nothing sequential: ids made one after another share no long common prefix.
    ordered = sorted(set(memberships))
    shared = [len(_common_prefix(a, b)) for a, b in itertools.pairwise(ordered)]
    assert max(shared, default=0) < 8


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]
