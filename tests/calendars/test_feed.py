"""The personal iCalendar feed, parsed with the icalendar library and checked event by
event against the database: who gets which sessions, UTC times (across a DST change),
stable UIDs, SEQUENCE on moves, cancelled sessions sent as cancelled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from server.access.guard import actor_in_visit
from server.access.roles import Access, Role
from server.agenda import service as agenda
from server.agenda.models import AgendaSession
from server.calendars import service as calendars
from server.config import Settings
from server.people.models import Membership, Person
from server.visits.models import Visit
from tests.calendars.helpers import (
    actor_of,
    add_session,
    all_sessions,
    cancel_session,
    events,
    feed_token,
    fetch_feed,
    move_session,
    uid,
)
from tests.conftest import LiveServer
from tests.fixtures.world import World, build_world

# What each member of tests/fixtures/world.py may attend (its stakeholder is invited to
# the stakeholder session; observers attend open sessions only).
MAY_ATTEND = {
    "secretariat": {"open", "stakeholder", "closed"},
    "expert": {"open", "stakeholder", "closed"},
    "expert2": {"open", "stakeholder", "closed"},
    "delegate": {"open", "stakeholder", "closed"},
    "interpreter": {"open", "stakeholder", "closed"},
    "stakeholder": {"open", "stakeholder"},
    "observer": {"open"},
}
DST_START = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)  # Vienna: 01:30 CET
DST_END = datetime(2027, 3, 28, 2, 0, tzinfo=UTC)  # Vienna: 04:00 CEST (clocks jump at 01:00 UTC)


def check_event(event: Any, session: AgendaSession, visit: Visit, base_url: str) -> None:
    """One VEVENT against its database row."""
    assert str(event["UID"]) == uid(session.id)
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    assert start.utcoffset() == timedelta(0) and end.utcoffset() == timedelta(0), "times are UTC"
    # iCalendar counts in whole seconds (the world's sessions carry microseconds).
    assert start == session.start_utc.replace(microsecond=0)
    assert end == session.end_utc.replace(microsecond=0)
    assert int(event["SEQUENCE"]) == session.sequence
    assert str(event["STATUS"]) == ("CANCELLED" if session.cancelled_at else "CONFIRMED")
    assert str(event["SUMMARY"]) == session.title
    assert str(event["URL"]) == f"{base_url}/sessions/{session.id}"
    description = str(event["DESCRIPTION"])
    assert visit.title in description and f"{base_url}/sessions/{session.id}" in description
    assert session.access in description
    assert event.decoded("DTSTAMP").utcoffset() == timedelta(0)
    changed = [t for t in (session.updated_at, session.cancelled_at) if t is not None]
    expected = max(changed) if changed else visit.created_at
    assert event.decoded("LAST-MODIFIED") == expected.replace(microsecond=0)


async def test_each_member_gets_exactly_what_they_may_attend(
    server: LiveServer, world: World, sessions: Any, settings: Settings
) -> None:
    """Every role's feed lists exactly its sessions (agenda.visible_sessions), each event
    matching the database; the calendar itself says what it is."""
    db_sessions = await all_sessions(sessions, world.visit_id)
    async with sessions() as db:
        visit = await db.get(Visit, world.visit_id)
    for key, allowed in MAY_ATTEND.items():
        token = await feed_token(sessions, settings, world, key)
        got = await fetch_feed(server, token)
        assert got.status == 200, got.text
        assert got.content_type == "text/calendar"
        assert "no-store" in got.headers["Cache-Control"]
        assert "\r\n" in got.text and got.text.startswith("BEGIN:VCALENDAR")
        by_uid = events(got.text)
        expected = {uid(world.sessions[a]) for a in allowed}
        assert set(by_uid) == expected, key
        async with sessions() as db:
            visible = await agenda.visible_sessions(db, await actor_of(db, world, key), world.visit_id)
        assert {uid(s.id) for s in visible} == expected, "the feed follows agenda.visible_sessions"
        for event_uid, event in by_uid.items():
            check_event(event, db_sessions[event_uid.split("@")[0]], visit, settings.base_url)
            items = [f"{n}. Item {n}" for n in (1, 2)]
            assert all(i in str(event["DESCRIPTION"]) for i in items)

    from icalendar import Calendar

    cal = Calendar.from_ical(got.text)
    assert str(cal["VERSION"]) == "2.0"
    assert str(cal["METHOD"]) == "PUBLISH"
    assert "Parley" in str(cal["PRODID"])
    assert str(cal["X-WR-CALNAME"]) == "Parley · Test visit"
    # Subscribed calendars are asked to look again hourly (RFC 7986 and the common X- spelling).
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n" in got.text
    assert "X-PUBLISHED-TTL:PT1H\r\n" in got.text


async def test_session_across_the_dst_change(
    server: LiveServer, world: World, sessions: Any, settings: Settings
) -> None:
    """Vienna's clocks jump from 02:00 CET to 03:00 CEST at 01:00 UTC on 2027-03-28: the
    feed carries the exact UTC instants, and a calendar converting them to the
    participant's zone shows 01:30 CET to 04:00 CEST (Vienna) or 19:30 to 21:00 (Bogota)."""
    sid = await add_session(sessions, world, title="Chapter V", start=DST_START, end=DST_END,
                            items=["Asset recovery"])
    token = await feed_token(sessions, settings, world, "secretariat")
    got = await fetch_feed(server, token)
    assert "DTSTART:20270328T003000Z" in got.text and "DTEND:20270328T020000Z" in got.text
    event = events(got.text)[uid(sid)]
    db_sessions = await all_sessions(sessions, world.visit_id)
    async with sessions() as db:
        visit = await db.get(Visit, world.visit_id)
    check_event(event, db_sessions[sid], visit, settings.base_url)
    assert "Asset recovery" in str(event["DESCRIPTION"])

    vienna = ZoneInfo("Europe/Vienna")
    start = event.decoded("DTSTART").astimezone(vienna)
    end = event.decoded("DTEND").astimezone(vienna)
    assert (start.hour, start.minute, start.utcoffset()) == (1, 30, timedelta(hours=1))
    assert (end.hour, end.minute, end.utcoffset()) == (4, 0, timedelta(hours=2))
    assert (start.tzname(), end.tzname()) == ("CET", "CEST")
    # 90 minutes elapse, though the wall clock shows 2 h 30 min (Python subtracts
    # same-zone datetimes by wall time, so compare in UTC).
    assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(minutes=90)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(minutes=90)

    bogota = event.decoded("DTSTART").astimezone(ZoneInfo("America/Bogota"))
    assert (bogota.day, bogota.hour, bogota.minute) == (27, 19, 30)


async def test_moving_raises_sequence_and_keeps_the_uid(
    server: LiveServer, world: World, sessions: Any, settings: Settings
) -> None:
    sid = world.sessions["open"]
    token = await feed_token(sessions, settings, world, "delegate")
    before = events((await fetch_feed(server, token)).text)[uid(sid)]
    assert int(before["SEQUENCE"]) == 0

    # Moved across the DST change, twice (as accepting two schedules would).
    await move_session(sessions, sid, DST_START, DST_END)
    await move_session(sessions, sid, DST_START + timedelta(days=1), DST_END + timedelta(days=1))
    after_text = (await fetch_feed(server, token)).text
    by_uid = events(after_text)
    after = by_uid[uid(sid)]
    assert int(after["SEQUENCE"]) == 2
    assert after.decoded("DTSTART") == DST_START + timedelta(days=1)
    assert after.decoded("DTEND") == DST_END + timedelta(days=1)
    assert str(after["STATUS"]) == "CONFIRMED"
    db_sessions = await all_sessions(sessions, world.visit_id)
    async with sessions() as db:
        visit = await db.get(Visit, world.visit_id)
    check_event(after, db_sessions[sid], visit, settings.base_url)
    assert after.decoded("LAST-MODIFIED") >= before.decoded("LAST-MODIFIED")
    assert len(by_uid) == 3, "moved, not duplicated"


async def test_cancelled_sessions_are_sent_cancelled(
    server: LiveServer, world: World, sessions: Any, settings: Settings
) -> None:
    """A removed session stays in the feed of those who could attend it, as STATUS:CANCELLED
    with a higher SEQUENCE; it is no longer on the agenda; others never see it."""
    closed = world.sessions["closed"]
    delegate = await feed_token(sessions, settings, world, "delegate")
    observer = await feed_token(sessions, settings, world, "observer")
    await cancel_session(sessions, closed)

    by_uid = events((await fetch_feed(server, delegate)).text)
    event = by_uid[uid(closed)]
    assert str(event["STATUS"]) == "CANCELLED"
    assert int(event["SEQUENCE"]) == 1
    assert "cancelled" in str(event["DESCRIPTION"]).lower()
    db_sessions = await all_sessions(sessions, world.visit_id)
    async with sessions() as db:
        visit = await db.get(Visit, world.visit_id)
        visible = await agenda.visible_sessions(db, await actor_of(db, world, "delegate"), world.visit_id)
    check_event(event, db_sessions[closed], visit, settings.base_url)
    assert closed not in {s.id for s in visible}
    others = [e for u, e in by_uid.items() if u != uid(closed)]
    assert others and all(str(e["STATUS"]) == "CONFIRMED" for e in others)

    # An observer could never attend the closed session: not even its cancellation shows.
    assert uid(closed) not in events((await fetch_feed(server, observer)).text)

    # Cancelling an open session reaches the observer too.
    await cancel_session(sessions, world.sessions["open"])
    event = events((await fetch_feed(server, observer)).text)[uid(world.sessions["open"])]
    assert str(event["STATUS"]) == "CANCELLED" and int(event["SEQUENCE"]) == 1


async def test_stakeholder_sees_only_invited_sessions(
    server: LiveServer, world: World, sessions: Any, settings: Settings
) -> None:
    start = datetime(2027, 4, 6, 13, 0, tzinfo=UTC)
    invited = await add_session(sessions, world, title="Civil society hearing", start=start,
                                end=start + timedelta(hours=1), access=Access.STAKEHOLDER, invite=["stakeholder"])
    not_invited = await add_session(sessions, world, title="Private sector hearing",
                                    start=start + timedelta(hours=2), end=start + timedelta(hours=3),
                                    access=Access.STAKEHOLDER)
    stakeholder = await feed_token(sessions, settings, world, "stakeholder")
    text = (await fetch_feed(server, stakeholder)).text
    assert set(events(text)) == {uid(world.sessions["open"]), uid(world.sessions["stakeholder"]), uid(invited)}
    assert "Private sector hearing" not in text and "closed session" not in text

    # Even cancelled, an uninvited session stays out of their feed.
    await cancel_session(sessions, not_invited)
    text = (await fetch_feed(server, stakeholder)).text
    assert uid(not_invited) not in events(text) and "Private sector hearing" not in text

    # The review team sees both.
    expert = events((await fetch_feed(server, await feed_token(sessions, settings, world, "expert"))).text)
    assert {uid(invited), uid(not_invited)} <= set(expert)


async def test_feeds_never_leak_another_visit(
    server: LiveServer, world: World, sessions: Any, settings: Settings
) -> None:
    """Each feed holds its own visit's sessions only, for a person in both visits too."""
    async with sessions() as db:
        other = await build_world(db, settings, extra_experts=0)
    mine = events((await fetch_feed(server, await feed_token(sessions, settings, world, "secretariat"))).text)
    theirs = events((await fetch_feed(server, await feed_token(sessions, settings, other, "secretariat"))).text)
    assert set(mine) == {uid(s) for s in world.sessions.values()}
    assert set(theirs) == {uid(s) for s in other.sessions.values()}
    assert not set(mine) & set(theirs)
    for event in theirs.values():
        assert str(event["URL"]).rsplit("/", 1)[1] in other.sessions.values()

    # The world's expert also observes the other visit: two feeds, each its own visit's.
    async with sessions() as db:
        db.add(Membership(visit_id=other.visit_id, person_id=world.members["expert"].person_id,
                          role=Role.OBSERVER))
        await db.commit()
        person = await db.get(Person, world.members["expert"].person_id)
        actor, _ = await actor_in_visit(db, person, other.visit_id)
        observing = await calendars.create_feed(db, settings.secret_key, actor)
        await db.commit()
    as_expert = events((await fetch_feed(server, await feed_token(sessions, settings, world, "expert"))).text)
    as_observer = events((await fetch_feed(server, observing)).text)
    assert set(as_expert) == {uid(s) for s in world.sessions.values()}
    assert set(as_observer) == {uid(other.sessions["open"])}
