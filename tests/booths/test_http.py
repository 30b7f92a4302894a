"""The booth API and the secretariat's page: who may do what, the error shape, strict
bodies (nothing stored on a refusal) and the audit trail."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from server.audit.models import AuditEntry
from server.booths import service as booths
from server.booths.models import Booth
from tests.conftest import LiveServer, http_client, login
from tests.fixtures.world import World, build_world
from tests.web.test_security import assert_error_shape


def m(world: World, key: str) -> str:
    return world.members[key].membership_id


async def booth_count(sessions: Any) -> int:
    async with sessions() as db:
        return int((await db.execute(select(func.count()).select_from(Booth))).scalar_one())


async def test_secretariat_manages_booths(server: LiveServer, world: World, sessions: Any) -> None:
    base = f"/api/visits/{world.visit_id}/booths"
    cookie = await login(server, world.members["secretariat"].invite_token)
    async with http_client(server, cookie) as http:
        async with http.post(base, json={"language": "es", "interpreters": [m(world, "interpreter"), m(world, "interpreter2")]}) as r:
            assert r.status == 201, await r.text()
            es = await r.json()
        assert es["language"] == "es" and es["language_name"] == "Spanish"
        assert [i["membership_id"] for i in es["interpreters"]] == [m(world, "interpreter"), m(world, "interpreter2")]
        assert es["interpreters"][0]["name"] == "Interpreter Person" and es["active"] == m(world, "interpreter")
        async with http.post(base, json={"language": "pt-br"}) as r:
            assert r.status == 201, await r.text()
            pt = await r.json()
        assert pt["language"] == "pt-BR" and pt["language_name"] == "Portuguese (Brazil)" and pt["active"] is None

        async with http.post(f"{base}/{es['id']}/handover") as r:
            assert r.status == 200 and (await r.json())["active"] == m(world, "interpreter2")
        async with http.post(f"{base}/{pt['id']}/handover") as r:
            assert r.status == 409
            assert_error_shape(await r.json(), "conflict")
        async with http.patch(f"{base}/{pt['id']}", json={"interpreters": [m(world, "interpreter3")], "language": "en"}) as r:
            assert r.status == 200, await r.text()
            pt = await r.json()
        assert pt["language"] == "en" and pt["active"] == m(world, "interpreter3")
        async with http.patch(f"{base}/{es['id']}", json={"active": m(world, "interpreter")}) as r:
            assert r.status == 200 and (await r.json())["active"] == m(world, "interpreter")
        async with http.patch(f"{base}/{es['id']}", json={"interpreters": [m(world, "interpreter3")]}) as r:
            assert r.status == 409, "interpreter3 serves in the English booth"
            assert_error_shape(await r.json(), "conflict")
        async with http.post(base, json={"language": "ES"}) as r:
            assert r.status == 409
            assert_error_shape(await r.json(), "conflict")
        async with http.post(base, json={"language": "fr", "interpreters": [m(world, "expert")]}) as r:
            assert r.status == 400
            assert_error_shape(await r.json(), "invalid")

        async with http.delete(f"{base}/{pt['id']}") as r:
            assert r.status == 204
        async with http.delete(f"{base}/{pt['id']}") as r:
            assert r.status == 404
            assert_error_shape(await r.json(), "not_found")
        async with http.get(base) as r:
            assert r.status == 200
            listed = (await r.json())["booths"]
    assert [b["language"] for b in listed] == ["es"]
    assert set(listed[0]) == {"id", "language", "language_name", "interpreters", "active"}
    async with sessions() as db:
        actions = list((await db.execute(
            select(AuditEntry.action).where(AuditEntry.action.like("booth.%")).order_by(AuditEntry.seq))).scalars())
    assert actions == ["booth.created", "booth.created", "booth.handed_over", "booth.changed", "booth.changed",
                       "booth.removed"]


@pytest.mark.parametrize("key", ["expert", "interpreter", "delegate", "stakeholder", "observer"])
async def test_only_the_secretariat_manages(server: LiveServer, world: World, sessions: Any, key: str) -> None:
    base = f"/api/visits/{world.visit_id}/booths"
    async with sessions() as db:
        booth = await booths.create_booth(db, world.visit_id, "en", [m(world, "interpreter"), m(world, "interpreter2")],
                                          actor_person_id=None)
        await db.commit()
    cookie = await login(server, world.members[key].invite_token)
    async with http_client(server, cookie) as http:
        async with http.get(base) as r:
            assert r.status == 200, "every member sees the booths"
            assert [b["id"] for b in (await r.json())["booths"]] == [booth.id]
        for method, path, body in [("POST", base, {"language": "fr"}),
                                   ("PATCH", f"{base}/{booth.id}", {"language": "fr"}),
                                   ("POST", f"{base}/{booth.id}/handover", None),
                                   ("DELETE", f"{base}/{booth.id}", None)]:
            async with http.request(method, path, json=body) as r:
                assert r.status == 403, (method, path)
                assert_error_shape(await r.json(), "forbidden")
        async with http.get(f"/visits/{world.visit_id}/booths", allow_redirects=False) as r:
            assert r.status == 403
        async with http.get(f"/visits/{world.visit_id}") as r:
            assert f"/visits/{world.visit_id}/booths" not in await r.text()
    async with sessions() as db:
        assert [b.language for b in (await db.execute(select(Booth))).scalars()] == ["en"]


async def test_another_visits_member_gets_not_found(
    server: LiveServer, world: World, sessions: Any, settings: Any
) -> None:
    async with sessions() as db:
        other = await build_world(db, settings, extra_experts=0)
    async with sessions() as db:
        booth = await booths.create_booth(db, world.visit_id, "en", [], actor_person_id=None)
        await db.commit()
    cookie = await login(server, other.members["secretariat"].invite_token)
    base = f"/api/visits/{world.visit_id}/booths"
    async with http_client(server, cookie) as http:
        for method, path, body in [("GET", base, None), ("POST", base, {"language": "fr"}),
                                   ("PATCH", f"{base}/{booth.id}", {"language": "fr"}),
                                   ("POST", f"{base}/{booth.id}/handover", None),
                                   ("DELETE", f"{base}/{booth.id}", None)]:
            async with http.request(method, path, json=body) as r:
                assert r.status == 404, (method, path)
                assert_error_shape(await r.json(), "not_found")
        # their own visit does not reach this visit's booth either
        async with http.post(f"/api/visits/{other.visit_id}/booths/{booth.id}/handover") as r:
            assert r.status == 404


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"language": "\xff\xfe"}',
        b"\xc3\x28",
        b'{"language": "fr", "colour": "blue"}',
        b'{"language": 7}',
        b'{"language": "fr", "interpreters": "x"}',
        b'{"language": "fr", "interpreters": ["a", "b", "c"]}',
        b'{"language": "fr", "interpreters": ["bad id!"]}',
        b'{"language": "english"}',
        b'{"language": "fr\\u0000"}',
        b"[]",
        b"",
    ],
)
async def test_bad_bodies_are_refused_and_store_nothing(
    server: LiveServer, world: World, sessions: Any, body: bytes
) -> None:
    cookie = await login(server, world.members["secretariat"].invite_token)
    async with http_client(server, cookie) as http:
        async with http.post(f"/api/visits/{world.visit_id}/booths", data=body,
                             headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400, await r.text()
            assert_error_shape(await r.json(), "invalid")
    assert await booth_count(sessions) == 0


async def test_bad_patch_changes_nothing(server: LiveServer, world: World, sessions: Any) -> None:
    async with sessions() as db:
        booth = await booths.create_booth(db, world.visit_id, "en", [m(world, "interpreter")], actor_person_id=None)
        await db.commit()
    cookie = await login(server, world.members["secretariat"].invite_token)
    path = f"/api/visits/{world.visit_id}/booths/{booth.id}"
    async with http_client(server, cookie) as http:
        for body in [b'{"language": "fr", "extra": 1}', b'{"interpreters": []}', b'{"active": "' + m(world, "interpreter2").encode() + b'"}',
                     b'{"language": "\xff"}', b'{"language": "fr", "interpreters": ["' + m(world, "expert").encode() + b'"]}']:
            async with http.patch(path, data=body, headers={"Content-Type": "application/json"}) as r:
                assert r.status == 400, (body, await r.text())
                assert_error_shape(await r.json(), "invalid")
        async with http.get(f"/api/visits/{world.visit_id}/booths") as r:
            listed = (await r.json())["booths"]
    assert listed == [booth.as_json()]


def browser(server: LiveServer, cookie: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=server.url, cookies={"parley_session": cookie},
        headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    )


async def test_the_secretariat_page(server: LiveServer, world: World, sessions: Any) -> None:
    cookie = await login(server, world.members["secretariat"].invite_token)
    page = f"/visits/{world.visit_id}/booths"
    async with http_client(server, cookie) as http:
        async with http.get(f"/visits/{world.visit_id}") as r:
            assert f'href="{page}"' in await r.text(), "the visit page links the booths for the secretariat"
        async with http.get(page) as r:
            assert r.status == 200
            html = await r.text()
    assert 'id="no-booths"' in html and "<script" not in html.split("</header>")[-1].split("<footer")[0]
    async with browser(server, cookie) as http:
        form = {"language": "es", "interpreter_1": m(world, "interpreter"), "interpreter_2": m(world, "interpreter2")}
        async with http.post(page, data=form, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == page
        async with http.post(page, data={"language": "nonsense", "interpreter_1": "", "interpreter_2": ""}) as r:
            assert r.status == 400
            assert 'id="form-error"' in await r.text()
        async with http.get(page) as r:
            html = await r.text()
        assert "Spanish" in html and "Interpreter2 Person" in html
        booth_id = re.search(r'id="booth-([A-Za-z0-9_-]+)"', html)
        assert booth_id is not None
        async with http.post(f"{page}/{booth_id[1]}/handover", allow_redirects=False) as r:
            assert r.status == 303
        async with http.post(f"{page}/{booth_id[1]}", data={"language": "es", "interpreter_1": m(world, "interpreter3"),
                                                            "interpreter_2": ""}, allow_redirects=False) as r:
            assert r.status == 303
        async with http.get(f"/api/visits/{world.visit_id}/booths") as r:
            (booth,) = (await r.json())["booths"]
        assert [i["membership_id"] for i in booth["interpreters"]] == [m(world, "interpreter3")]
        async with http.post(f"{page}/{booth_id[1]}/delete", allow_redirects=False) as r:
            assert r.status == 303
    assert await booth_count(sessions) == 0
    async with sessions() as db:
        handed = (await db.execute(select(AuditEntry).where(AuditEntry.action == "booth.handed_over"))).scalar_one()
    assert handed.data == {"from": m(world, "interpreter"), "to": m(world, "interpreter2")}
