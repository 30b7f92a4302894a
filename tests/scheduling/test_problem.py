"""Building the engine's problem from a visit: who is required where, durations, order,
the window, working hours, holidays and unavailable times, and sessions left in place."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from schedules import parse_problem
from server.agenda.models import AgendaSession
from server.core.errors import DomainError
from server.people.models import Person
from server.scheduling import problem as problems
from server.scheduling.models import Unavailability
from server.visits.models import Visit
from tests.fixtures.world import World
from tests.scheduling.conftest import DAY
from tests.scheduling.days import iso_date, z


def at(hour: int, minute: int = 0) -> str:
    return z(DAY + timedelta(hours=hour, minutes=minute))


def window(days: int = 3) -> tuple[datetime, datetime]:
    return DAY - timedelta(days=1), DAY + timedelta(days=days)


async def build(sessions: Any, world: World, **kw: Any) -> dict[str, Any]:
    start, end = window()
    async with sessions() as db:
        visit = await db.get(Visit, world.visit_id)
        assert visit is not None
        return await problems.build_problem(db, visit, problems.RunOptions(start, end, **kw))


async def test_required_participants_follow_the_policy(sessions: Any, agenda_on_day: World) -> None:
    world = agenda_on_day
    data = await build(sessions, world, keep_order=False)
    parse_problem(data)  # the engine accepts it as it is
    m = {key: member.membership_id for key, member in world.members.items()}
    by_id = {s["id"]: s for s in data["sessions"]}
    everyone_but = lambda *left: {m[k] for k in m if k not in left}  # noqa: E731
    # Observers may attend the open session but are never required.
    assert set(by_id[world.sessions["open"]]["participants"]) == everyone_but("observer")
    # The stakeholder session: the review team plus its invited stakeholder.
    assert set(by_id[world.sessions["stakeholder"]]["participants"]) == everyone_but("observer")
    # A closed session admits no stakeholder.
    assert set(by_id[world.sessions["closed"]]["participants"]) == everyone_but("observer", "stakeholder")
    assert m["observer"] not in {p["id"] for p in data["participants"]}
    # Agenda order, current durations, no order imposed.
    assert [s["id"] for s in data["sessions"]] == [world.sessions[k] for k in ("open", "stakeholder", "closed")]
    assert all(s["duration_minutes"] == 120 and "after" not in s for s in data["sessions"])
    assert by_id[world.sessions["open"]]["title"] == "open session"
    # Delegations by name, zones from the people; the default working hours are implied.
    expert = next(p for p in data["participants"] if p["id"] == m["expert"])
    assert expert["delegation"] == "Kenya" and expert["timezone"] == "Africa/Nairobi"
    assert "working_hours" not in expert and "unavailable" not in expert
    assert data["grid_minutes"] == 15 and data["min_gap_minutes"] == 15
    assert data["night"] == {"start": "22:00", "end": "07:00", "weight": 3}
    assert data["window"] == {"start": z(DAY - timedelta(days=1)), "end": z(DAY + timedelta(days=3))}
    assert data["parley"]["agenda"] == sorted(data["parley"]["agenda"])
    assert len(data["parley"]["agenda"]) == 3


async def test_keep_the_order_chains_the_sessions(sessions: Any, agenda_on_day: World) -> None:
    world = agenda_on_day
    data = await build(sessions, world, keep_order=True)
    ids = [world.sessions[k] for k in ("open", "stakeholder", "closed")]
    assert [s.get("after") for s in data["sessions"]] == [None, ids[0], ids[1]]


async def test_durations_round_out_to_whole_minutes(sessions: Any, agenda_on_day: World) -> None:
    world = agenda_on_day
    start = DAY + timedelta(hours=11, seconds=20)
    async with sessions() as db:
        await db.execute(update(AgendaSession).where(AgendaSession.id == world.sessions["open"])
                         .values(start_utc=start, end_utc=start + timedelta(minutes=45)))
        await db.commit()
    data = await build(sessions, world)
    assert data["sessions"][0]["duration_minutes"] == 46  # 11:00 to 11:46, covering it all
    parse_problem(data)


async def test_availability_goes_into_the_problem(sessions: Any, agenda_on_day: World) -> None:
    world = agenda_on_day
    delegate = world.members["delegate"]
    async with sessions() as db:
        await db.execute(update(Person).where(Person.id == delegate.person_id).values(
            working_hours={"mon": [["08:00", "12:00"], ["13:00", "16:00"]], "tue": [], "wed": [["08:00", "16:00"]]},
            holidays=[iso_date(1)]))
        db.add_all([
            # Inside the window, with seconds: widened to whole minutes.
            Unavailability(person_id=delegate.person_id, start_utc=DAY + timedelta(hours=13, seconds=30),
                           end_utc=DAY + timedelta(hours=14, seconds=1), note="Cabinet"),
            # Outside the window: left out.
            Unavailability(person_id=delegate.person_id, start_utc=DAY + timedelta(days=30),
                           end_utc=DAY + timedelta(days=30, hours=2)),
        ])
        await db.commit()
    data = await build(sessions, world)
    entry = next(p for p in data["participants"] if p["id"] == delegate.membership_id)
    assert entry["working_hours"] == {"mon": [["08:00", "12:00"], ["13:00", "16:00"]], "tue": [],
                                      "wed": [["08:00", "16:00"]]}
    assert entry["holidays"] == [iso_date(1)]
    assert entry["unavailable"] == [{"start": z(DAY + timedelta(hours=13)), "end": z(DAY + timedelta(hours=14, minutes=1))}]
    problem = parse_problem(data)
    parsed = problem.participant_by_id[delegate.membership_id]
    assert parsed.holidays == {(DAY + timedelta(days=1)).date()} and len(parsed.unavailable) == 1


async def test_sessions_left_out_stay_put_and_block_their_time(sessions: Any, agenda_on_day: World) -> None:
    world = agenda_on_day
    open_id = world.sessions["open"]
    data = await build(sessions, world, session_ids=(open_id,))
    assert [s["id"] for s in data["sessions"]] == [open_id]
    assert set(data["parley"]["fixed"]) == {world.sessions["stakeholder"], world.sessions["closed"]}
    stakeholder = next(p for p in data["participants"] if p["id"] == world.members["stakeholder"].membership_id)
    expert = next(p for p in data["participants"] if p["id"] == world.members["expert"].membership_id)
    # The stakeholder attends the stakeholder session (14:00-16:00): blocked with the gap;
    # not the closed one (17:00-19:00): blocked without it, since sessions never overlap.
    assert stakeholder["unavailable"] == [
        {"start": at(13, 45), "end": at(16, 15)},
        {"start": at(17), "end": at(19)},
    ]
    assert expert["unavailable"] == [
        {"start": at(13, 45), "end": at(16, 15)},
        {"start": at(16, 45), "end": at(19, 15)},
    ]
    parse_problem(data)


async def test_bad_options_are_refused(sessions: Any, agenda_on_day: World) -> None:
    world = agenda_on_day
    with pytest.raises(DomainError, match="session_ids: 'nope' is not a session"):
        await build(sessions, world, session_ids=("nope",))
    with pytest.raises(DomainError, match="choose at least one session"):
        await build(sessions, world, session_ids=())
    with pytest.raises(DomainError, match="alternatives"):
        await build(sessions, world, alternatives=9)
    with pytest.raises(DomainError, match="last day must not be before"):
        problems.window_from_dates(date(2027, 4, 2), date(2027, 4, 1), "Europe/Vienna")


async def test_cancelled_sessions_are_not_scheduled(sessions: Any, agenda_on_day: World) -> None:
    world = agenda_on_day
    async with sessions() as db:
        await db.execute(update(AgendaSession).where(AgendaSession.id == world.sessions["closed"])
                         .values(cancelled_at=DAY))
        await db.commit()
    data = await build(sessions, world)
    assert world.sessions["closed"] not in {s["id"] for s in data["sessions"]}
    assert len(data["parley"]["agenda"]) == 2


async def test_default_window_is_the_agenda_days_and_a_margin(sessions: Any, agenda_on_day: World) -> None:
    async with sessions() as db:
        agenda = await problems.agenda_sessions(db, agenda_on_day.visit_id)
    day = DAY.date()
    first, last = day - timedelta(days=2), day + timedelta(days=2)
    assert problems.default_window(agenda, "Europe/Vienna", day - timedelta(days=30)) == (first, last)
    # Never before today.
    assert problems.default_window(agenda, "Europe/Vienna", day - timedelta(days=1)) == (day - timedelta(days=1), last)
    # Local days of the zone: midnight in Vienna (summer time) is 22:00 UTC the day before.
    start, end = problems.window_from_dates(first, last, "Europe/Vienna")
    assert z(start) == z(DAY - timedelta(days=2, hours=2)) and z(end) == z(DAY + timedelta(days=3, hours=-2))
