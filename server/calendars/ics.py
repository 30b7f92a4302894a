"""One participant's sessions as an iCalendar (RFC 5545) feed.

Times are written in UTC (``...Z``), so no VTIMEZONE is needed and every calendar
program shows them in its user's own zone. Each session keeps one UID for its whole
life; its SEQUENCE is the session's ``sequence``, raised whenever it moves or is
cancelled, so subscribed calendars replace the old copy instead of adding another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from icalendar import Calendar, Event, vDuration

from server.agenda.models import AgendaItem, AgendaSession
from server.core.clock import utcnow
from server.core.i18n import translations
from server.visits.models import Visit
from server.web.words import word

PRODID = "-//UNODC//Parley//EN"
UID_DOMAIN = "parley"
# How often subscribed calendars are asked to look again (programs may poll less often).
REFRESH = timedelta(hours=1)


def event_uid(session_id: str) -> str:
    return f"{session_id}@{UID_DOMAIN}"


def room_url(base_url: str, session_id: str) -> str:
    return f"{base_url}/sessions/{session_id}"


@dataclass(frozen=True)
class FeedContent:
    visit: Visit
    sessions: Sequence[AgendaSession]
    items: dict[str, list[AgendaItem]]
    base_url: str
    lang: str


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(microsecond=0)


def _description(
    _: Callable[[str], str], visit: Visit, session: AgendaSession, items: list[AgendaItem], url: str
) -> str:
    lines = [
        f"{_('Visit')}: {visit.title}",
        f"{_('Access')}: {word(_, session.access)}",
    ]
    if session.cancelled_at is not None:
        lines.insert(0, _("This session has been cancelled."))
    if session.articles:
        lines.append(f"{_('Articles')}: {', '.join(session.articles)}")
    if items:
        lines.append(f"{_('Agenda')}:")
        lines += [f"{n}. {item.title}" for n, item in enumerate(items, start=1)]
    lines.append(f"{_('Room')}: {url}")
    return "\n".join(lines)


def build_calendar(content: FeedContent, *, now: datetime | None = None) -> bytes:
    """The feed as bytes (UTF-8, CRLF line endings, folded as RFC 5545 requires)."""
    _ = translations(content.lang).gettext
    stamp = _utc(now or utcnow())
    visit = content.visit
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", f"Parley · {visit.title}")
    cal.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    # An X- property is text to the library: give it the RFC 5545 duration spelling.
    ttl = vDuration(REFRESH).to_ical()  # type: ignore[no-untyped-call]  # icalendar leaves vDuration.to_ical unannotated
    cal.add("x-published-ttl", ttl.decode())
    for session in content.sessions:
        url = room_url(content.base_url, session.id)
        cancelled = session.cancelled_at is not None
        changed = [t for t in (session.updated_at, session.cancelled_at) if t is not None]
        event = Event()
        event.add("uid", event_uid(session.id))
        event.add("dtstamp", stamp)
        event.add("dtstart", _utc(session.start_utc))
        event.add("dtend", _utc(session.end_utc))
        event.add("summary", session.title)
        event.add("description", _description(_, visit, session, content.items.get(session.id, []), url))
        event.add("url", url)
        event.add("location", url)
        event.add("sequence", session.sequence or 0)
        event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
        event.add("transp", "TRANSPARENT" if cancelled else "OPAQUE")
        # Details stay out of free/busy views shared with colleagues.
        event.add("class", "PRIVATE")
        event.add("last-modified", _utc(max(changed) if changed else visit.created_at))
        cal.add_component(event)
    feed: bytes = cal.to_ical()  # icalendar's Component.to_ical has no return annotation
    return feed
