"""The time-zone strip: a row per (delegation, zone) of those who may attend, with the
local time and its band (working hours, outside, night) priced by the engine."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from server.people.models import Person
from server.scheduling import problem as problems
from server.scheduling.strip import zone_strip
from tests.conftest import LiveServer, http_client
from tests.fixtures.world import World
from tests.scheduling.conftest import Cookie
from tests.scheduling.days import iso_date


async def strip(sessions: Any, world: World) -> dict[str, dict[tuple[str, str], Any]]:
    async with sessions() as db:
        found = await zone_strip(db, world.visit_id, await problems.agenda_sessions(db, world.visit_id))
    keys = {sid: key for key, sid in world.sessions.items()}
    return {keys[sid]: {(r.delegation, r.zone): r for r in rows} for sid, rows in found.items()}


async def test_bands_follow_working_hours_and_the_night(sessions: Any, agenda_on_day: World) -> None:
    found = await strip(sessions, agenda_on_day)
    # Open session, Wednesday 11:00-13:00 UTC.
    opening = found["open"]
    assert opening[("Colombia", "America/Bogota")].band == "night"  # 06:00-08:00
    assert opening[("Colombia", "America/Bogota")].start.clock() == "06:00"
    assert opening[("Civil society", "America/Bogota")].band == "night"
    assert opening[("Kenya", "Africa/Nairobi")].band == "work"  # 14:00-16:00
    assert opening[("UNODC", "Europe/Vienna")].band == "work"  # 13:00-15:00 CEST
    assert opening[("Observers", "Europe/Paris")].band == "work"  # observers attend, so they are shown
    assert opening[("Kenya", "Africa/Nairobi")].label == "working hours"
    assert opening[("Kenya", "Africa/Nairobi")].people == 2
    # Stakeholder session 14:00-16:00 UTC: Vienna and Nairobi run past five.
    assert found["stakeholder"][("UNODC", "Europe/Vienna")].band == "outside"
    assert found["stakeholder"][("Kenya", "Africa/Nairobi")].band == "outside"
    assert found["stakeholder"][("Colombia", "America/Bogota")].band == "work"
    # Closed session: no stakeholder row, no observer row.
    assert ("Civil society", "America/Bogota") not in found["closed"]
    assert ("Observers", "Europe/Paris") not in found["closed"]
    # Rows run east to west.
    zones = [zone for _, zone in found["open"]]
    assert zones.index("Africa/Nairobi") < zones.index("Europe/Vienna") < zones.index("America/Bogota")


async def test_a_mixed_row_shows_the_worst(sessions: Any, agenda_on_day: World) -> None:
    world = agenda_on_day
    async with sessions() as db:
        await db.execute(update(Person).where(Person.id == world.members["expert2"].person_id)
                         .values(working_hours={"wed": [["15:00", "18:00"]]}))
        await db.commit()
    found = await strip(sessions, world)
    assert found["open"][("Kenya", "Africa/Nairobi")].band == "outside"  # 14:00-15:00 before expert2's hours
    async with sessions() as db:
        await db.execute(update(Person).where(Person.id == world.members["expert"].person_id)
                         .values(holidays=[iso_date(0)]))
        await db.commit()
    assert (await strip(sessions, world))["open"][("Kenya", "Africa/Nairobi")].band == "outside"


async def test_the_visit_page_shows_the_strip_in_words_and_colour(
    server: LiveServer, agenda_on_day: World, cookie: Cookie
) -> None:
    world = agenda_on_day
    async with http_client(server, await cookie("delegate")) as http:
        async with http.get(f"/visits/{world.visit_id}") as r:
            page = await r.text()
    assert r.status == 200
    assert '<tr class="band-night"><th scope="row">Colombia</th>' in page
    assert '<span class="band band-night">night</span>' in page
    assert '<span class="band band-outside">outside working hours</span>' in page
    assert '<span class="band band-work">working hours</span>' in page
    assert 'id="visit-data"' in page and "/static/js/visit.js" in page
    assert "My availability" in page and "Schedule the agenda" not in page  # not for a delegate
