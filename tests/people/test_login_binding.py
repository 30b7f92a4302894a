"""A login opened by an invitation grants that invitation's visit and nothing else.

The attack (outside probe, defect 2): the secretariat of visit A re-issues the visit-A
link of someone who is also in visit B, spends it, and reads B. Also: one browser
holding several logins in one cookie, per-visit logout, the owner seeing re-issues.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy import select

from server.access.roles import Role
from server.audit.models import AuditEntry
from server.config import Settings
from server.people import service as people
from server.people.logins import login_for_visit
from server.people.models import LoginSession, Membership, Person
from tests.conftest import LiveServer, http_client, login
from tests.fixtures.world import World, build_world

PASSWORD = "a long secretariat passphrase"


@dataclass
class TwoVisits:
    a: World
    b: World
    shared_person: str  # A's expert, also an expert in B
    b_membership: str
    b_token: str  # the shared person's own link to B


async def two_visits(sessions: Any, settings: Settings, world: World) -> TwoVisits:
    async with sessions() as db:
        b = await build_world(db, settings)
        expert = world.members["expert"]
        m = Membership(visit_id=b.visit_id, person_id=expert.person_id, role=Role.EXPERT)
        db.add(m)
        await db.flush()
        token = await people.issue_invitation(db, settings.secret_key, m, days=30, actor_person_id=None)
        await db.commit()
        return TwoVisits(world, b, expert.person_id, m.id, token)


async def reissue(server: LiveServer, sec: str, world: World, membership_id: str) -> str:
    async with http_client(server, sec) as http:
        async with http.post(f"/api/visits/{world.visit_id}/participants/{membership_id}/invitation") as r:
            assert r.status == 201, await r.text()
            return str((await r.json())["invite_url"]).rsplit("/", 1)[1]


def browser(server: LiveServer) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=server.url, headers={"Origin": server.origin}, cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


async def join(b: aiohttp.ClientSession, token: str) -> str:
    """Join through a link; the cookie value the server set."""
    async with b.post(f"/invite/{token}", allow_redirects=False) as r:
        assert r.status == 303, await r.text()
        return r.cookies["parley_session"].value


def cookie_of(b: aiohttp.ClientSession) -> str:
    return next(c.value for c in b.cookie_jar if c.key == "parley_session")


async def test_a_visits_secretariat_cannot_read_another_visit(
    server: LiveServer, world: World, sessions: Any, settings: Settings
) -> None:
    v = await two_visits(sessions, settings, world)
    victim = await login(server, v.b_token)  # the person's own login to B, elsewhere
    sec_a = await login(server, world.members["secretariat"].invite_token)
    stolen = await login(server, await reissue(server, sec_a, world, world.members["expert"].membership_id))

    async with http_client(server, stolen) as http:
        # Visit A, which the link was for, works.
        async with http.get(f"/api/visits/{world.visit_id}") as r:
            assert r.status == 200
        for path in (
            f"/api/visits/{v.b.visit_id}",
            f"/api/visits/{v.b.visit_id}/participants",
            f"/api/visits/{v.b.visit_id}/calendar-feed",
            f"/api/visits/{v.b.visit_id}/availability",
            f"/api/sessions/{v.b.sessions['closed']}",
            f"/api/sessions/{v.b.sessions['open']}",
        ):
            async with http.get(path) as r:
                assert r.status == 404, (path, r.status)
                assert (await r.json())["error"]["code"] == "not_found"
        for page in (f"/visits/{v.b.visit_id}", f"/visits/{v.b.visit_id}/calendar",
                     f"/visits/{v.b.visit_id}/calendar.ics", f"/sessions/{v.b.sessions['open']}"):
            async with http.get(page, allow_redirects=False) as r:
                assert r.status == 404, (page, r.status)
        # Person-scoped pages show only what this login grants.
        async with http.get("/", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == f"/visits/{world.visit_id}"
        async with http.get("/api/me/logins") as r:
            listed = (await r.json())["logins"]
        assert {entry["visit_id"] for entry in listed} == {world.visit_id}
        async with http.get("/me") as r:
            assert v.b.visit_id not in await r.text()
        # Nor can it end the person's logins in B.
        async with sessions() as db:
            b_login = (
                await db.execute(select(LoginSession.id).where(LoginSession.visit_id == v.b.visit_id,
                                                             LoginSession.person_id == v.shared_person))
            ).scalar_one()
        for path in (f"/api/me/logins/{b_login}/revoke",):
            async with http.post(path) as r:
                assert r.status == 404
        async with http.post(f"/me/logins/{b_login}/revoke", allow_redirects=False) as r:
            assert r.status == 404
    async with http_client(server, victim) as http, http.get(f"/api/visits/{v.b.visit_id}") as r:
        assert r.status == 200


async def test_the_owner_sees_the_reissue(
    server: LiveServer, world: World, sessions: Any, settings: Settings
) -> None:
    v = await two_visits(sessions, settings, world)
    expert = world.members["expert"]
    own_a = await login(server, expert.invite_token)
    own_b = await login(server, v.b_token)
    sec_a = await login(server, world.members["secretariat"].invite_token)
    stolen = await login(server, await reissue(server, sec_a, world, expert.membership_id))
    notice = "A new invitation link for Test visit was issued on"
    async with http_client(server, own_a) as http:
        async with http.get(f"/visits/{world.visit_id}") as r:
            page = await r.text()
        assert notice in page and "by Secretariat Person" in page and "earlier links stopped working" in page
        # Expert's zone is Nairobi (EAT): the time is shown in the owner's zone.
        assert "EAT" in page.split(notice, 1)[1][:80]
        async with http.get("/me") as r:
            me = await r.text()
        assert notice in me
        # And the attacker's login is listed there, to be ended.
        async with http.get("/api/me/logins") as r:
            ids = {entry["id"] for entry in (await r.json())["logins"]}
    async with sessions() as db:
        logins = (await db.execute(select(LoginSession).where(LoginSession.person_id == expert.person_id,
                                                            LoginSession.visit_id == world.visit_id))).scalars().all()
        assert {s.id for s in logins} == ids and len(ids) == 2
        [issued] = (
            await db.execute(
                select(AuditEntry).where(AuditEntry.action == "invitation.issued",
                                         AuditEntry.actor_person_id == world.members["secretariat"].person_id)
            )
        ).scalars().all()
        assert issued.subject == expert.membership_id and issued.data["person"] == expert.person_id
    # The B visit page, untouched, has no notice.
    async with http_client(server, own_b) as http, http.get(f"/visits/{v.b.visit_id}") as r:
        assert "A new invitation link" not in await r.text()
    assert stolen


async def test_one_browser_holds_a_login_per_visit(
    server: LiveServer, world: World, sessions: Any, settings: Settings
) -> None:
    v = await two_visits(sessions, settings, world)
    sec_a = await login(server, world.members["secretariat"].invite_token)
    own_b = ""
    async with browser(server) as b:
        await join(b, world.members["expert"].invite_token)
        own_b = (await join(b, v.b_token)).split(".")[-1]
        assert len(cookie_of(b).split(".")) == 2
        for visit in (world.visit_id, v.b.visit_id):
            async with b.get(f"/api/visits/{visit}") as r:
                assert r.status == 200
        async with b.get("/") as r:
            home = await r.text()
        assert home.count('href="/visits/') == 2
        # Joining a visit again replaces that visit's login; the cookie does not grow.
        await join(b, await reissue(server, sec_a, world, world.members["expert"].membership_id))
        assert len(cookie_of(b).split(".")) == 2
        # Logging out of visit A keeps B.
        async with b.post("/logout", data={"visit_id": world.visit_id}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/"
        async with b.get(f"/api/visits/{world.visit_id}") as r:
            assert r.status == 404
        async with b.get(f"/api/visits/{v.b.visit_id}") as r:
            assert r.status == 200
        assert len(cookie_of(b).split(".")) == 1
        # Logging out of everything clears the cookie.
        async with b.post("/logout", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/login"
        async with b.get("/api/me") as r:
            assert r.status == 401
    dead = own_b
    # Garbage and dead tokens in the cookie are ignored, and dropped on the next change.
    async with aiohttp.ClientSession(
        base_url=server.url, headers={"Origin": server.origin},
        cookies={"parley_session": f"forged..x.{'y' * 300}.{dead}"},
    ) as b:
        assert "." not in await join(b, world.members["delegate"].invite_token)


async def test_a_password_login_spans_its_persons_visits(
    server: LiveServer, world: World, sessions: Any, settings: Settings
) -> None:
    v = await two_visits(sessions, settings, world)
    async with sessions() as db:
        person = await db.get(Person, world.members["secretariat"].person_id)
        assert person and person.email
        await people.create_admin(db, person.email, PASSWORD)
        db.add(Membership(visit_id=v.b.visit_id, person_id=person.id, role=Role.SECRETARIAT))
        await db.commit()
    async with browser(server) as b:
        async with b.post("/login", data={"email": person.email, "password": PASSWORD}, allow_redirects=False) as r:
            assert r.status == 303
        for visit in (world.visit_id, v.b.visit_id):
            async with b.get(f"/api/visits/{visit}/participants") as r:
                assert r.status == 200
        # Joining through a link adds a login; the password login stays.
        await join(b, world.members["expert"].invite_token)
        assert len(cookie_of(b).split(".")) == 2
        async with b.get("/api/me") as r:
            assert (await r.json())["id"] == person.id  # the password login speaks for the browser
        async with b.get(f"/api/visits/{world.visit_id}") as r:
            assert (await r.json())["me"]["role"] == "expert"  # visit A: its own invitation login


def test_login_for_visit_prefers_the_visits_own_login() -> None:
    def login(via: str, visit: str | None) -> tuple[Person, LoginSession]:
        return Person(id=f"p-{via}"), LoginSession(
            id=f"{via}-{visit}", via=via, visit_id=visit, membership_id=f"m-{visit}" if visit else None
        )

    a, b, pw = login("invitation", "A"), login("invitation", "B"), login("password", None)
    assert login_for_visit([a, b], "A") is a
    assert login_for_visit([a, b], "C") is None
    assert login_for_visit([pw, b], "B") is b
    assert login_for_visit([pw, b], "C") is pw
    assert login_for_visit([], "A") is None
