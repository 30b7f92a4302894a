"""Availability: each participant sets their own (page and API), the secretariat anyone's
and imports them as JSON; values are validated with the field named; changes are audited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.people.models import Person
from server.scheduling.models import Unavailability
from tests.conftest import LiveServer, http_client
from tests.fixtures.world import World
from tests.scheduling.conftest import Cookie


async def person(sessions: Any, person_id: str) -> Person:
    async with sessions() as db:
        found = await db.get(Person, person_id)
        assert found is not None
        return found


async def unavailable(sessions: Any, person_id: str) -> list[tuple[str, str, str]]:
    async with sessions() as db:
        rows = await db.execute(select(Unavailability).where(Unavailability.person_id == person_id)
                                .order_by(Unavailability.start_utc))
        return [(u.start_utc.isoformat(), u.end_utc.isoformat(), u.note) for u in rows.scalars()]


async def audit_entries(sessions: Any, action: str) -> list[AuditEntry]:
    async with sessions() as db:
        rows = await db.execute(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq))
        return list(rows.scalars())


async def test_a_participant_sets_their_own_availability_through_the_api(
    server: LiveServer, sessions: Any, world: World, cookie: Cookie
) -> None:
    expert = world.members["expert"]
    url = f"/api/visits/{world.visit_id}/availability"
    async with http_client(server, await cookie("expert")) as http:
        async with http.get(url) as r:
            mine = await r.json()
        assert mine["timezone"] == "Africa/Nairobi" and mine["default_working_hours"] is True
        assert mine["working_hours"]["mon"] == [["09:00", "17:00"]] and mine["working_hours"]["sat"] == []
        body = {
            "working_hours": {"monday": [["13:00", "17:30"], ["08:30", "12:00"]], "tue": [["08:00", "24:00"]]},
            "holidays": ["2027-04-02", "2027-03-29", "2027-04-02"],
            "unavailable": [
                # Without an offset: in the expert's own zone (Nairobi, UTC+3).
                {"start": "2027-03-31T09:00", "end": "2027-03-31T11:30", "note": "Court hearing"},
                {"start": "2027-04-01T06:00:00Z", "end": "2027-04-01T07:00:00Z"},
            ],
        }
        async with http.put(url, json=body) as r:
            assert r.status == 200, await r.text()
            saved = await r.json()
    assert saved["default_working_hours"] is False
    assert saved["working_hours"]["mon"] == [["08:30", "12:00"], ["13:00", "17:30"]]
    assert saved["working_hours"]["wed"] == []  # a day left out has no working hours
    assert saved["holidays"] == ["2027-03-29", "2027-04-02"]
    first = saved["unavailable"][0]
    assert first["start_utc"] == "2027-03-31T06:00:00Z" and first["start_local"] == "2027-03-31T09:00:00+03:00"
    assert first["note"] == "Court hearing"
    stored = await person(sessions, expert.person_id)
    assert stored.working_hours["tue"] == [["08:00", "24:00"]] and stored.holidays == ["2027-03-29", "2027-04-02"]
    assert len(await unavailable(sessions, expert.person_id)) == 2
    logged = await audit_entries(sessions, "availability.changed")
    assert len(logged) == 1 and logged[0].subject == expert.membership_id and logged[0].data["by"] == "self"
    assert logged[0].actor_person_id == expert.person_id and logged[0].data["unavailable"] == {"removed": 0, "added": 2}

    # Changing the zone reads zone-less times in the new zone.
    async with http_client(server, await cookie("expert")) as http:
        async with http.put(url, json={"timezone": "America/Bogota",
                                       "unavailable": [{"start": "2027-03-31T09:00", "end": "2027-03-31T10:00"}]}) as r:
            assert r.status == 200
            assert (await r.json())["unavailable"][0]["start_utc"] == "2027-03-31T14:00:00Z"
    assert (await person(sessions, expert.person_id)).timezone == "America/Bogota"


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"timezone": "America/Bogata"}, "timezone", "unknown time zone"),
    ({"timezone": 5}, "timezone", "unknown time zone"),
    ({"working_hours": {"mon": [["9:00", "17:00"]]}}, "working_hours.mon[0][0]", "HH:MM"),
    ({"working_hours": {"mon": [["09:00", "25:00"]]}}, "working_hours.mon[0][1]", "HH:MM"),
    ({"working_hours": {"mon": [["17:00", "09:00"]]}}, "working_hours.mon[0]", "must be after the start"),
    ({"working_hours": {"mon": [["09:00", "12:00"], ["11:00", "14:00"]]}}, "working_hours.mon", "overlap"),
    ({"working_hours": {"funday": []}}, "working_hours.funday", "unknown weekday"),
    ({"working_hours": []}, "working_hours", "expected an object"),
    ({"holidays": ["29/03/2027"]}, "holidays[0]", "YYYY-MM-DD"),
    ({"unavailable": [{"start": "2027-03-31T10:00", "end": "2027-03-31T09:00"}]}, "unavailable[0].end",
     "must be after the start"),
    ({"unavailable": [{"start": "tomorrow", "end": "2027-03-31T09:00"}]}, "unavailable[0].start", "date and time"),
    ({"unavailable": [{"end": "2027-03-31T09:00"}]}, "unavailable[0].start", "date and time"),
    ({"colour": "blue"}, "colour", "unknown field"),
])
async def test_bad_availability_gets_a_clear_400(
    server: LiveServer, sessions: Any, world: World, cookie: Cookie, body: dict[str, Any], field: str, words: str
) -> None:
    async with http_client(server, await cookie("delegate")) as http:
        async with http.put(f"/api/visits/{world.visit_id}/availability", json=body) as r:
            answer = await r.json()
    assert r.status == 400 and answer["error"]["code"] == "invalid"
    message = answer["error"]["message"]
    assert message.startswith(f"{field}:") and words in message, message
    assert (await person(sessions, world.members["delegate"].person_id)).timezone == "America/Bogota"
    assert await audit_entries(sessions, "availability.changed") == []


async def test_the_availability_page_saves_and_explains_errors(
    server: LiveServer, sessions: Any, world: World, cookie: Cookie
) -> None:
    delegate = world.members["delegate"]
    url = f"/visits/{world.visit_id}/availability"
    async with http_client(server, await cookie("delegate")) as http:
        async with http.get(url) as r:
            page = await r.text()
        assert r.status == 200 and "America/Bogota" in page and 'value="09:00-17:00"' in page
        form = {"timezone": "America/Bogota", "hours_mon": "08:00-12:00, 13:00-16:30", "hours_tue": "08:00 - 16:00",
                "hours_wed": "", "hours_thu": "08:00-16:00", "hours_fri": "08:00-13:00", "hours_sat": "",
                "hours_sun": "", "holidays": "2027-04-01, 2027-04-02",
                "new_start_1": "2027-03-31T07:00", "new_end_1": "2027-03-31T09:30", "new_note_1": "Travel",
                "new_start_2": "", "new_end_2": ""}
        async with http.post(url, data=form, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == f"{url}?saved=1", await r.text()
        async with http.get(f"{url}?saved=1") as r:
            page = await r.text()
        assert "Saved." in page and "Travel" in page and "07:00" in page and "-05" in page
    stored = await person(sessions, delegate.person_id)
    assert stored.working_hours["mon"] == [["08:00", "12:00"], ["13:00", "16:30"]]
    assert stored.working_hours["wed"] == [] and stored.holidays == ["2027-04-01", "2027-04-02"]
    rows = await unavailable(sessions, delegate.person_id)
    assert rows == [("2027-03-31T12:00:00+00:00", "2027-03-31T14:30:00+00:00", "Travel")]

    # Removing one, and a refused form that comes back as typed.
    async with sessions() as db:
        entry_id = (await db.execute(select(Unavailability.id).where(Unavailability.person_id == delegate.person_id))).scalar_one()
    async with http_client(server, await cookie("delegate")) as http:
        async with http.post(url, data={"hours_mon": "17:00-09:00", "remove": entry_id}, allow_redirects=False) as r:
            page = await r.text()
        assert r.status == 400 and "hours_mon" in page and "must be after the start" in page
        assert 'value="17:00-09:00"' in page
        async with http.post(url, data={"new_start_1": "2027-03-31T07:00"}, allow_redirects=False) as r:
            assert r.status == 400 and "new_end_1" in await r.text()
        async with http.post(url, data={"timezone": "Mars/Olympus"}, allow_redirects=False) as r:
            assert r.status == 400 and "unknown time zone" in await r.text()
        async with http.post(url, data={"remove": entry_id}, allow_redirects=False) as r:
            assert r.status == 303
    assert await unavailable(sessions, delegate.person_id) == []
    assert (await person(sessions, delegate.person_id)).working_hours["mon"] == [["08:00", "12:00"], ["13:00", "16:30"]]


async def test_the_secretariat_edits_anyones_availability(
    server: LiveServer, sessions: Any, world: World, cookie: Cookie
) -> None:
    expert = world.members["expert"]
    page = f"/visits/{world.visit_id}/participants/{expert.membership_id}/availability"
    async with http_client(server, await cookie("secretariat")) as http:
        async with http.get(page) as r:
            assert r.status == 200 and "Availability of Expert Person" in await r.text()
        async with http.post(page, data={"holidays": "2027-03-30"}, allow_redirects=False) as r:
            assert r.status == 303
        async with http.put(f"/api{page}", json={"unavailable": [{"start": "2027-03-30T08:00", "end": "2027-03-30T10:00"}]}) as r:
            assert r.status == 200
            # In the expert's zone (Nairobi), not the secretariat's (Vienna).
            assert (await r.json())["unavailable"][0]["start_utc"] == "2027-03-30T05:00:00Z"
        async with http.get(f"/api/visits/{world.visit_id}/participants/someone-else/availability") as r:
            assert r.status == 404
    assert (await person(sessions, expert.person_id)).holidays == ["2027-03-30"]
    logged = await audit_entries(sessions, "availability.changed")
    assert [e.data["by"] for e in logged] == ["secretariat", "secretariat"]
    assert {e.actor_person_id for e in logged} == {world.members["secretariat"].person_id}
    # An expert may not edit someone else's.
    async with http_client(server, await cookie("expert")) as http:
        async with http.put(f"/api/visits/{world.visit_id}/participants/{world.members['delegate'].membership_id}/availability",
                            json={"holidays": []}) as r:
            assert r.status == 403


async def test_import_matches_by_email_or_membership_id(
    server: LiveServer, sessions: Any, world: World, cookie: Cookie
) -> None:
    expert, delegate = world.members["expert"], world.members["delegate"]
    delegate_email = (await person(sessions, delegate.person_id)).email
    problem = {
        "window": {"start": "2027-03-24T00:00:00Z", "end": "2027-04-02T00:00:00Z"},
        "participants": [
            {"id": expert.membership_id, "delegation": "ignored", "timezone": "Africa/Nairobi",
             "working_hours": {"mon": [["08:00", "16:00"]], "tue": [["08:00", "16:00"]]},
             "unavailable": [{"start": "2027-03-25T12:00:00Z", "end": "2027-03-25T14:00:00Z"}]},
            {"id": "col-1", "email": delegate_email.upper(), "timezone": "America/Bogota", "holidays": ["2027-03-29"]},
        ],
        "sessions": [],
    }
    url = f"/api/visits/{world.visit_id}/availability/import"
    async with http_client(server, await cookie("secretariat")) as http:
        async with http.post(url, json=problem) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["imported"] == [expert.membership_id, delegate.membership_id]
    stored = await person(sessions, expert.person_id)
    assert stored.working_hours["mon"] == [["08:00", "16:00"]] and stored.working_hours["wed"] == []
    assert await unavailable(sessions, expert.person_id) == [
        ("2027-03-25T12:00:00+00:00", "2027-03-25T14:00:00+00:00", "")]
    assert (await person(sessions, delegate.person_id)).holidays == ["2027-03-29"]
    logged = await audit_entries(sessions, "availability.imported")
    assert len(logged) == 1 and logged[0].data["participants"] == 2

    # All or nothing: one bad entry and nothing is written.
    bad = [{"id": delegate.membership_id, "holidays": ["2027-01-01"]},
           {"id": "nobody@example.org", "timezone": "UTC"}]
    async with http_client(server, await cookie("secretariat")) as http:
        async with http.post(url, json=bad) as r:
            message = (await r.json())["error"]["message"]
            assert r.status == 400 and message.startswith("participants[1]:") and "nobody@example.org" in message
        assert (await person(sessions, delegate.person_id)).holidays == ["2027-03-29"]  # entry 0 not written
        async with http.post(url, json=[{"id": expert.membership_id, "working_hours": {"mon": [["10:00", "09:00"]]}}]) as r:
            message = (await r.json())["error"]["message"]
            assert r.status == 400 and message.startswith("participants[0].working_hours.mon[0]:")
        async with http.post(url, json={"participants": []}) as r:
            assert r.status == 400
        # The page's import box says what is wrong, and keeps the text.
        async with http.post(f"/visits/{world.visit_id}/availability/import", data={"data": "{not json"},
                             allow_redirects=False) as r:
            page = await r.text()
            assert r.status == 400 and "not valid JSON" in page and "{not json" in page
        async with http.post(f"/visits/{world.visit_id}/availability/import",
                             data={"data": f'[{{"id": "{delegate.membership_id}", "holidays": []}}]'},
                             allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"].endswith("imported=1")
    assert (await person(sessions, delegate.person_id)).holidays == []
    # An expert may not import.
    async with http_client(server, await cookie("expert")) as http:
        async with http.post(url, json=bad) as r:
            assert r.status == 403
