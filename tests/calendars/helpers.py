"""Shared steps for the calendar tests: feed links, fetching and parsing feeds, and
changing sessions the way the scheduler does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from icalendar import Calendar, Event
from sqlalchemy import select

from server.access.guard import Actor, actor_in_visit
from server.access.roles import Access
from server.agenda.models import AgendaItem, AgendaSession, SessionInvitee
from server.calendars import service as calendars
from server.config import Settings
from server.core.clock import utcnow
from server.people.models import Person
from tests.conftest import LiveServer
from tests.fixtures.world import World


async def actor_of(db: Any, world: World, key: str) -> Actor:
    person = await db.get(Person, world.members[key].person_id)
    actor, _ = await actor_in_visit(db, person, world.visit_id)
    return actor


async def feed_token(sessions: Any, settings: Settings, world: World, key: str) -> str:
    """A fresh subscription token for a member, issued through the service."""
    async with sessions() as db:
        token = await calendars.create_feed(db, settings.secret_key, await actor_of(db, world, key))
        await db.commit()
    return token


@dataclass
class Fetched:
    status: int
    content_type: str
    headers: Any
    text: str


async def fetch(server: LiveServer, path: str, *, cookie: str | None = None, accept: str | None = None) -> Fetched:
    """A GET as a calendar program does it: no Origin, no cookie unless given."""
    headers = {"Accept": accept} if accept else {}
    cookies = {"parley_session": cookie} if cookie else None
    async with aiohttp.ClientSession(base_url=server.url, cookies=cookies) as http:
        async with http.get(path, headers=headers, allow_redirects=False) as r:
            return Fetched(r.status, r.content_type, r.headers, await r.text())


async def fetch_feed(server: LiveServer, token: str) -> Fetched:
    return await fetch(server, f"/calendar/{token}.ics")


def events(text: str) -> dict[str, Event]:
    """The feed's VEVENTs by UID (each UID exactly once)."""
    cal = Calendar.from_ical(text)
    out: dict[str, Event] = {}
    for event in cal.walk("VEVENT"):
        uid = str(event["UID"])
        assert uid not in out, f"UID {uid} appears twice"
        out[uid] = event
    return out


def uid(session_id: str) -> str:
    return f"{session_id}@parley"


async def add_session(
    sessions: Any,
    world: World,
    *,
    title: str,
    start: datetime,
    end: datetime,
    access: Access = Access.OPEN,
    invite: list[str] | None = None,
    items: list[str] | None = None,
) -> str:
    async with sessions() as db:
        s = AgendaSession(visit_id=world.visit_id, title=title, start_utc=start, end_utc=end, access=access)
        db.add(s)
        await db.flush()
        for n, item in enumerate(items or []):
            db.add(AgendaItem(session_id=s.id, position=n, title=item))
        for key in invite or []:
            db.add(SessionInvitee(session_id=s.id, membership_id=world.members[key].membership_id))
        await db.commit()
        return s.id


async def move_session(sessions: Any, session_id: str, start: datetime, end: datetime) -> None:
    """What the scheduler does when it moves a session."""
    async with sessions() as db:
        s = await db.get(AgendaSession, session_id)
        s.start_utc, s.end_utc = start, end
        s.sequence = (s.sequence or 0) + 1
        s.updated_at = utcnow()
        await db.commit()


async def cancel_session(sessions: Any, session_id: str) -> None:
    """A removed session stays as a tombstone, its sequence raised."""
    async with sessions() as db:
        s = await db.get(AgendaSession, session_id)
        s.cancelled_at = utcnow()
        s.sequence = (s.sequence or 0) + 1
        await db.commit()


async def all_sessions(sessions: Any, visit_id: str) -> dict[str, AgendaSession]:
    async with sessions() as db:
        rows = await db.execute(select(AgendaSession).where(AgendaSession.visit_id == visit_id))
        return {s.id: s for s in rows.scalars()}
