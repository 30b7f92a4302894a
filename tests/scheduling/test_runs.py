"""Scheduler runs: stored with their alternatives, compared on the page, accepted (the
sessions move, their sequence rises, the run is marked and audited), and refused when
the run is stale or already accepted."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from server.agenda.models import AgendaSession
from server.audit import service as audit
from server.audit.models import AuditEntry
from server.scheduling import problem as problems
from server.scheduling import service
from server.scheduling.models import ScheduleRun
from server.visits.models import Visit
from tests.conftest import LiveServer, http_client
from tests.fixtures.world import World
from tests.scheduling.conftest import DAY, Cookie, place
from tests.scheduling.days import iso_date, z

WINDOW = {"start": z(DAY - timedelta(days=1)), "end": z(DAY + timedelta(days=3))}


async def agenda_rows(sessions: Any, world: World) -> dict[str, AgendaSession]:
    async with sessions() as db:
        rows = await db.execute(select(AgendaSession).where(AgendaSession.visit_id == world.visit_id))
        return {s.id: s for s in rows.scalars()}


async def audit_of(sessions: Any, action: str) -> list[AuditEntry]:
    async with sessions() as db:
        rows = await db.execute(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq))
        return list(rows.scalars())


async def new_run(server: LiveServer, cookie: str, **body: Any) -> dict[str, Any]:
    async with http_client(server, cookie) as http:
        async with http.post("/api/visits/{}/schedule/runs".format(body.pop("visit_id")),
                             json={"window": WINDOW, **body}) as r:
            assert r.status == 201, await r.text()
            return dict(await r.json())


async def test_a_run_is_stored_with_its_alternatives(
    server: LiveServer, sessions: Any, agenda_on_day: World, cookie: Cookie
) -> None:
    world = agenda_on_day
    sec = await cookie("secretariat")
    run = await new_run(server, sec, visit_id=world.visit_id, alternatives=2, keep_order=False)
    result = run["result"]
    assert len(result["sessions"]) == 3 and len(result["alternatives"]) == 2
    assert result["proven_optimal"] is True and "infeasible" not in result
    # The alternatives are explained too (the engine explains only its best schedule).
    assert all("explanation" in s for alt in result["alternatives"] for s in alt["sessions"])
    # Ranked: no alternative is cheaper than the best.
    assert all(alt["total_cost"] >= result["total_cost"] for alt in result["alternatives"])
    async with sessions() as db:
        stored = await db.get(ScheduleRun, run["id"])
        assert stored is not None and stored.accepted_at is None
        assert stored.problem["window"] == WINDOW and stored.result == result
        assert len(service.proposals(stored)) == 3
    logged = await audit_of(sessions, "schedule.run")
    assert [e.subject for e in logged] == [run["id"]] and logged[0].data["sessions"] == 3
    # Nothing moved yet.
    assert {s.sequence for s in (await agenda_rows(sessions, world)).values()} == {0}
    async with http_client(server, sec) as http, http.get(f"/api/visits/{world.visit_id}/schedule/runs/{run['id']}") as r:
        assert r.status == 200 and (await r.json())["stale"] is False


async def test_accepting_moves_the_sessions_and_raises_their_sequence(
    server: LiveServer, sessions: Any, agenda_on_day: World, cookie: Cookie
) -> None:
    world = agenda_on_day
    sec = await cookie("secretariat")
    run = await new_run(server, sec, visit_id=world.visit_id, alternatives=1)
    chosen = run["result"]["alternatives"][0]
    before = await agenda_rows(sessions, world)
    async with http_client(server, sec) as http:
        async with http.post(f"/api/visits/{world.visit_id}/schedule/runs/{run['id']}/accept", json={"index": 1}) as r:
            assert r.status == 200, await r.text()
            answer = await r.json()
    after = await agenda_rows(sessions, world)
    moved = {m["id"]: m for m in answer["moved"]}
    for placed in chosen["sessions"]:
        s = after[placed["id"]]
        assert (z(s.start_utc), z(s.end_utc)) == (placed["start_utc"], placed["end_utc"])
        changed = (before[s.id].start_utc, before[s.id].end_utc) != (s.start_utc, s.end_utc)
        assert s.sequence == (1 if changed else 0)
        assert (s.updated_at is not None) is changed
        assert (s.id in moved) is changed
        if changed:
            assert moved[s.id] == {"id": s.id, "start_utc": placed["start_utc"], "end_utc": placed["end_utc"],
                                   "sequence": 1}
    assert moved, "the proposal moves at least one session"
    async with sessions() as db:
        stored = await db.get(ScheduleRun, run["id"])
        assert stored is not None and stored.accepted_index == 1 and stored.accepted_at is not None
        assert (await audit.verify(db)).ok
    logged = await audit_of(sessions, "schedule.accepted")
    assert len(logged) == 1 and logged[0].subject == run["id"] and logged[0].data["proposal"] == 1
    assert {m["id"] for m in logged[0].data["moved"]} == set(moved)

    # Accepting again, this proposal or another, is a conflict; nothing moves.
    async with http_client(server, sec) as http:
        for index in (0, 1):
            async with http.post(f"/api/visits/{world.visit_id}/schedule/runs/{run['id']}/accept",
                                 json={"index": index}) as r:
                assert r.status == 409 and (await r.json())["error"]["code"] == "conflict"
    assert {s.id: s.sequence for s in (await agenda_rows(sessions, world)).values()} == \
        {s.id: s.sequence for s in after.values()}


async def test_a_stale_run_cannot_be_accepted(
    server: LiveServer, sessions: Any, agenda_on_day: World, cookie: Cookie
) -> None:
    world = agenda_on_day
    sec = await cookie("secretariat")
    first = await new_run(server, sec, visit_id=world.visit_id, alternatives=0)
    second = await new_run(server, sec, visit_id=world.visit_id, alternatives=0)
    # The agenda changes under the second run: the first run's acceptance moves sessions.
    async with http_client(server, sec) as http:
        async with http.post(f"/api/visits/{world.visit_id}/schedule/runs/{first['id']}/accept", json={"index": 0}) as r:
            assert r.status == 200
        async with http.post(f"/api/visits/{world.visit_id}/schedule/runs/{second['id']}/accept", json={"index": 0}) as r:
            assert r.status == 409
            assert "agenda changed" in (await r.json())["error"]["message"]
        async with http.get(f"/api/visits/{world.visit_id}/schedule/runs/{second['id']}") as r:
            assert (await r.json())["stale"] is True
    # A session edited by hand makes a run stale too.
    third = await new_run(server, sec, visit_id=world.visit_id, alternatives=0)
    await place(sessions, world.sessions["closed"], DAY + timedelta(hours=20))
    async with http_client(server, sec) as http:
        async with http.post(f"/api/visits/{world.visit_id}/schedule/runs/{third['id']}/accept", json={"index": 0}) as r:
            assert r.status == 409
    async with sessions() as db:
        stale = await db.get(ScheduleRun, third["id"])
        assert stale is not None and stale.accepted_at is None


async def test_bad_acceptances_and_runs_are_refused(
    server: LiveServer, sessions: Any, agenda_on_day: World, cookie: Cookie
) -> None:
    world = agenda_on_day
    sec = await cookie("secretariat")
    run = await new_run(server, sec, visit_id=world.visit_id, alternatives=1)
    base = f"/api/visits/{world.visit_id}/schedule"
    async with http_client(server, sec) as http:
        for body, status in (({"index": 5}, 400), ({"index": "0"}, 400), ({"index": True}, 400), ({}, 400)):
            async with http.post(f"{base}/runs/{run['id']}/accept", json=body) as r:
                assert r.status == status, (body, await r.text())
        async with http.post(f"{base}/runs/unknownrun/accept", json={"index": 0}) as r:
            assert r.status == 404
        for body, field in (
            ({"window": {"start": z(DAY + timedelta(days=3)), "end": z(DAY + timedelta(days=1))}}, "window"),
            ({"window": {"start": "soon", "end": z(DAY + timedelta(days=1))}}, "window.start"),
            ({"session_ids": ["nope"]}, "session_ids"),
            ({"alternatives": 99}, "alternatives"),
            ({"keep_order": "yes"}, "keep_order"),
        ):
            async with http.post(f"{base}/runs", json=body) as r:
                assert r.status == 400, (body, await r.text())
                assert (await r.json())["error"]["message"].startswith(field), await r.text()


async def test_nothing_feasible_is_reported(
    server: LiveServer, sessions: Any, agenda_on_day: World, cookie: Cookie
) -> None:
    world = agenda_on_day
    sec = await cookie("secretariat")
    run = await new_run(server, sec, visit_id=world.visit_id,
                        window={"start": z(DAY + timedelta(hours=10)), "end": z(DAY + timedelta(hours=14))})
    assert run["result"]["sessions"] == [] and run["result"]["infeasible"]
    async with http_client(server, sec) as http:
        async with http.get(f"/visits/{world.visit_id}/schedule/runs/{run['id']}") as r:
            page = await r.text()
        assert r.status == 200 and "No schedule fits" in page and "Accept this proposal" not in page
        async with http.post(f"/api/visits/{world.visit_id}/schedule/runs/{run['id']}/accept", json={"index": 0}) as r:
            assert r.status == 400


async def test_the_pages_run_compare_and_accept(
    server: LiveServer, sessions: Any, agenda_on_day: World, cookie: Cookie
) -> None:
    world = agenda_on_day
    sec = await cookie("secretariat")
    async with http_client(server, sec) as http:
        async with http.get(f"/visits/{world.visit_id}/schedule") as r:
            page = await r.text()
        assert r.status == 200
        assert f'name="window_first" value="{iso_date(-2)}"' in page and f'name="window_last" value="{iso_date(2)}"' in page
        assert "Expert Person" in page and "Edit" in page
        form = {"tz": "mine", "sessions_listed": "1", "window_first": iso_date(-1), "window_last": iso_date(2),
                "alternatives": "2", "keep_order": "1",
                "session_ids": [world.sessions["open"], world.sessions["closed"]]}
        data = [(k, v) for k, vs in form.items() for v in (vs if isinstance(vs, list) else [vs])]
        async with http.post(f"/visits/{world.visit_id}/schedule", data=data, allow_redirects=False) as r:
            assert r.status == 303, await r.text()
            location = r.headers["Location"]
        run_id = re.search(r"/schedule/runs/([^/?]+)", location)[1]  # type: ignore[index]
        async with http.get(location) as r:
            page = await r.text()
        assert r.status == 200
        for text in ("Proposal 1 (best)", "Proposal 2", "Proposal 3", "Burden per delegation", "<rect",
                     "Accept this proposal", "Within working hours", "Kenya"):
            assert text in page, text
        assert page.count("Accept this proposal") == 3
        assert ' style="' not in page  # the CSP forbids inline styles
        # Every time in the viewer's zone (Vienna, CEST after the change) with its offset.
        assert "CEST" in page and "UTC+02:00" in page
        async with http.get(f"{location.split('?')[0]}?tz=utc") as r:
            assert "UTC+00:00" in await r.text()
        async with sessions() as db:
            run = await db.get(ScheduleRun, run_id)
            assert run is not None
            assert [s["id"] for s in run.problem["sessions"]] == [world.sessions["open"], world.sessions["closed"]]
            assert run.problem["parley"]["fixed"] == [world.sessions["stakeholder"]]
            chosen = run.result["alternatives"][0]["sessions"]
        async with http.post(f"/visits/{world.visit_id}/schedule/runs/{run_id}/accept",
                             data={"index": "1", "tz": "mine"}, allow_redirects=False) as r:
            assert r.status == 303, await r.text()
        async with http.get(r.headers["Location"]) as r:
            page = await r.text()
        assert "Proposal 2 was accepted" in page and "Accept this proposal" not in page
        async with http.post(f"/visits/{world.visit_id}/schedule/runs/{run_id}/accept",
                             data={"index": "0"}, allow_redirects=False) as r:
            assert r.status == 409 and "already accepted" in await r.text()
    rows = await agenda_rows(sessions, world)
    for placed in chosen:
        assert z(rows[placed["id"]].start_utc) == placed["start_utc"]
    # The expert's agenda (page and live fragment) shows the new time in Nairobi.
    expert = await cookie("expert")
    moved = rows[world.sessions["open"]]
    nairobi = moved.start_utc.astimezone(ZoneInfo("Africa/Nairobi"))
    async with http_client(server, expert) as http:
        async with http.get(f"/visits/{world.visit_id}/agenda-fragment") as r:
            fragment = await r.text()
        assert r.status == 200 and "<html" not in fragment
        assert nairobi.strftime("%H:%M") in fragment and "EAT" in fragment
        async with http.get(f"/visits/{world.visit_id}/agenda-fragment?tz=utc") as r:
            assert moved.start_utc.strftime("%H:%M") in await r.text()
        # The expert may not schedule.
        async with http.get(f"/visits/{world.visit_id}/schedule", allow_redirects=False) as r:
            assert r.status == 403


async def test_a_run_form_with_errors_comes_back_with_the_message(
    server: LiveServer, agenda_on_day: World, cookie: Cookie
) -> None:
    world = agenda_on_day
    sec = await cookie("secretariat")
    async with http_client(server, sec) as http:
        async with http.post(f"/visits/{world.visit_id}/schedule", allow_redirects=False,
                             data={"sessions_listed": "1", "window_first": iso_date(2), "window_last": iso_date(-1),
                                   "alternatives": "3", "session_ids": world.sessions["open"]}) as r:
            page = await r.text()
        assert r.status == 400 and "last day must not be before" in page and f'value="{iso_date(2)}"' in page
        async with http.post(f"/visits/{world.visit_id}/schedule", allow_redirects=False,
                             data={"sessions_listed": "1", "window_first": iso_date(-1), "window_last": iso_date(1),
                                   "alternatives": "3"}) as r:
            assert r.status == 400 and "choose at least one session" in await r.text()


async def test_the_service_can_be_used_directly(sessions: Any, agenda_on_day: World) -> None:
    world = agenda_on_day
    async with sessions() as db:
        visit = await db.get(Visit, world.visit_id)
        assert visit is not None
        start, end = DAY - timedelta(days=1), DAY + timedelta(days=2)
        run = await service.run_scheduler(db, visit, problems.RunOptions(start, end, alternatives=0),
                                          actor_person_id=world.members["secretariat"].person_id)
        change = await service.accept(db, world.visit_id, run.id, 0,
                                      actor_person_id=world.members["secretariat"].person_id)
    moved = {m.id for m in change.sessions}
    # Members hear only of the moved sessions they may see: no stakeholder hears of the closed one.
    stakeholder = world.members["stakeholder"].membership_id
    observer = world.members["observer"].membership_id
    assert {m.id for m in change.audience.get(stakeholder, [])} == moved - {world.sessions["closed"]}
    assert {m.id for m in change.audience.get(observer, [])} == moved & {world.sessions["open"]}
    assert {m.id for m in change.audience[world.members["expert"].membership_id]} == moved


async def test_concurrent_acceptances_let_one_win(
    server: LiveServer, sessions: Any, agenda_on_day: World, cookie: Cookie
) -> None:
    import asyncio

    world = agenda_on_day
    sec = await cookie("secretariat")
    runs = [await new_run(server, sec, visit_id=world.visit_id, alternatives=1) for _ in range(2)]

    async def accept(run_id: str, index: int) -> int:
        async with http_client(server, sec) as http:
            async with http.post(f"/api/visits/{world.visit_id}/schedule/runs/{run_id}/accept",
                                 json={"index": index}) as r:
                return r.status

    statuses = await asyncio.gather(accept(runs[0]["id"], 0), accept(runs[1]["id"], 1), accept(runs[0]["id"], 1))
    assert sorted(statuses) == [200, 409, 409], statuses
    assert {s.sequence for s in (await agenda_rows(sessions, world)).values()} <= {0, 1}
    assert len(await audit_of(sessions, "schedule.accepted")) == 1
