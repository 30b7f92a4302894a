"""Personal calendar feeds: secret subscription links, and what a feed contains.

A feed belongs to one membership. Its URL carries a 256-bit token; only a keyed hash
of it is stored, so a database dump cannot be turned back into working links. A
membership has at most one working link: getting a new one revokes the old one.

A feed lists exactly the sessions its participant may attend (the same rule as
``agenda.visible_sessions``), plus the cancelled sessions they could have attended, so
subscribed calendars remove them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.access.guard import Actor, actor_in_visit
from server.agenda.service import session_items, visible_sessions
from server.audit import service as audit
from server.calendars.ics import FeedContent, build_calendar
from server.calendars.models import CalendarFeed
from server.core.clock import utcnow
from server.core.ids import new_token
from server.core.security import token_hash
from server.people.models import Membership, Person
from server.visits.models import Visit, VisitStatus

# Longer than any token we issue (43 characters), short enough to refuse junk early.
MAX_TOKEN_CHARS = 100


def feed_path(token: str) -> str:
    return f"/calendar/{token}.ics"


async def active_feed(db: AsyncSession, membership_id: str) -> CalendarFeed | None:
    """The membership's working subscription link, if it has one."""
    return (
        await db.execute(
            select(CalendarFeed)
            .where(CalendarFeed.membership_id == membership_id, CalendarFeed.revoked_at.is_(None))
            .order_by(CalendarFeed.created_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def _revoke_all(db: AsyncSession, membership_id: str) -> list[str]:
    ids = list(
        (
            await db.execute(
                select(CalendarFeed.id).where(
                    CalendarFeed.membership_id == membership_id, CalendarFeed.revoked_at.is_(None)
                )
            )
        ).scalars()
    )
    if ids:
        await db.execute(update(CalendarFeed).where(CalendarFeed.id.in_(ids)).values(revoked_at=utcnow()))
    return ids


async def create_feed(db: AsyncSession, secret_key: bytes, actor: Actor) -> str:
    """Issue the actor's subscription token (their previous link stops working); audited.

    Returns the token: it is shown once and never stored in clear.
    """
    replaced = await _revoke_all(db, actor.membership_id)
    token = new_token()
    feed = CalendarFeed(membership_id=actor.membership_id, token_hash=token_hash(secret_key, token))
    db.add(feed)
    await db.flush()
    await audit.record(
        db,
        "calendar_feed.created",
        actor_person_id=actor.person_id,
        visit_id=actor.visit_id,
        subject=actor.membership_id,
        data={"feed": feed.id, "replaced": replaced},
    )
    return token


async def revoke_feed(db: AsyncSession, actor: Actor) -> int:
    """Stop the actor's subscription link; returns how many links stopped (0 or 1)."""
    revoked = await _revoke_all(db, actor.membership_id)
    if revoked:
        await audit.record(
            db,
            "calendar_feed.revoked",
            actor_person_id=actor.person_id,
            visit_id=actor.visit_id,
            subject=actor.membership_id,
            data={"feeds": revoked},
        )
    return len(revoked)


@dataclass(frozen=True)
class FeedOwner:
    actor: Actor
    visit: Visit
    person: Person


async def resolve_feed(db: AsyncSession, secret_key: bytes, token: str) -> FeedOwner | None:
    """Whose feed a token opens; None when unknown, revoked, or the visit is archived."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    row = (
        await db.execute(
            select(CalendarFeed, Person, Membership.visit_id)
            .join(Membership, Membership.id == CalendarFeed.membership_id)
            .join(Person, Person.id == Membership.person_id)
            .where(CalendarFeed.token_hash == token_hash(secret_key, token))
        )
    ).first()
    if row is None:
        return None
    feed, person, visit_id = row
    if feed.revoked_at is not None:
        return None
    actor, visit = await actor_in_visit(db, person, visit_id)
    # Access to an archived visit ends everywhere: logins, invitations and feeds.
    if visit.status == VisitStatus.ARCHIVED:
        return None
    return FeedOwner(actor, visit, person)


async def calendar_for(db: AsyncSession, actor: Actor, visit: Visit, *, base_url: str, lang: str) -> bytes:
    """The actor's calendar (feed or download) as iCalendar bytes."""
    # Cancelled sessions stay in the feed, so calendars can mark them cancelled.
    sessions = await visible_sessions(db, actor, visit.id, include_cancelled=True)
    items = await session_items(db, [s.id for s in sessions])
    return build_calendar(FeedContent(visit, sessions, items, base_url, lang))
