"""Session invitation e-mails: the text, in the recipient's language and time zone,
and (when SMTP is configured) sending it.

The text names the session's time in the recipient's own zone, with the zone's
abbreviation and UTC offset (both ends are labelled when a daylight-saving change
falls inside the session), and again in UTC; the room link; and where to get the
session into a calendar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from babel.dates import format_date
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import facts as access_facts
from server.access.policy import Action, decide
from server.access.roles import Access, Role
from server.agenda.models import AgendaItem, AgendaSession
from server.audit import service as audit
from server.calendars.ics import room_url
from server.core.clock import utcnow
from server.core.errors import conflict, not_found
from server.core.i18n import pick_language, translations
from server.core.times import LocalTime, local
from server.mail.smtp import SmtpConfig, deliver
from server.people.models import Membership, Person
from server.visits import service as visits
from server.visits.models import Visit
from server.visits.service import ParticipantRow

Gettext = Callable[[str], str]


@dataclass(frozen=True)
class InvitationEmail:
    membership_id: str
    session_id: str
    visit_id: str
    name: str
    address: str | None
    language: str
    subject: str
    body: str

    @property
    def to(self) -> str:
        """``Name <address>``, or just the name when the person has no address."""
        return formataddr((self.name, self.address)) if self.address else self.name

    def as_json(self) -> dict[str, str | None]:
        return {
            "to": self.to,
            "address": self.address,
            "membership_id": self.membership_id,
            "language": self.language,
            "subject": self.subject,
            "body": self.body,
        }


def _label(t: LocalTime) -> str:
    """"CET (UTC+01:00)"; just "UTC+05:45" where the zone has no letters."""
    return t.abbreviation if t.abbreviation == t.offset else f"{t.abbreviation} ({t.offset})"


def when_text(start: LocalTime, end: LocalTime, lang: str) -> str:
    """A session's span in one zone, e.g. "Sunday, March 28, 2027, 01:30 CET (UTC+01:00)
    – 04:00 CEST (UTC+02:00)" when the clocks change during it."""
    day = format_date(start.value, "full", locale=lang)
    if start.value.date() != end.value.date():
        end_day = format_date(end.value, "full", locale=lang)
        return f"{day}, {start.clock()} {_label(start)} – {end_day}, {end.clock()} {_label(end)}"
    if start.offset != end.offset:
        return f"{day}, {start.clock()} {_label(start)} – {end.clock()} {_label(end)}"
    return f"{day}, {start.clock()}–{end.clock()} {_label(start)}"


def utc_text(session: AgendaSession, lang: str) -> str:
    start, end = local(session.start_utc, "UTC"), local(session.end_utc, "UTC")
    day = format_date(start.value, "full", locale=lang)
    if start.value.date() != end.value.date():
        return f"{day}, {start.clock()} – {format_date(end.value, 'full', locale=lang)}, {end.clock()} UTC"
    return f"{day}, {start.clock()}–{end.clock()} UTC"


async def _attend_facts(db: AsyncSession, session: AgendaSession) -> tuple[set[str], set[str]]:
    """(chair membership ids, invited membership ids) of a session."""
    chairs = await access_facts.chairs(db, session.visit_id, [session.id])
    invited = await access_facts.invitees(db, [session.id])
    return chairs[session.id], invited[session.id]


def _may_attend(role: str, membership_id: str, session: AgendaSession, facts: tuple[set[str], set[str]]) -> bool:
    chairs, invited = facts
    return decide(
        Action.SESSION_VIEW,
        Role(role),
        Access(session.access),
        is_chair=membership_id in chairs,
        is_invited=membership_id in invited,
    )


async def recipients(db: AsyncSession, session: AgendaSession) -> list[ParticipantRow]:
    """The visit's participants who may attend the session (so may be invited to it)."""
    facts = await _attend_facts(db, session)
    return [
        row
        for row in await visits.participants(db, session.visit_id)
        if _may_attend(row.role, row.membership_id, session, facts)
    ]


def _body(
    _: Gettext,
    *,
    person: Person,
    visit: Visit,
    session: AgendaSession,
    items: list[AgendaItem],
    when: str,
    when_utc: str,
    base_url: str,
) -> str:
    lines = [
        _("Dear %(name)s,") % {"name": person.name},
        "",
        _('You are invited to the session "%(session)s" of the visit "%(visit)s".')
        % {"session": session.title, "visit": visit.title},
        "",
        _("Your time (%(zone)s): %(when)s") % {"zone": person.timezone, "when": when},
        _("UTC: %(when)s") % {"when": when_utc},
    ]
    if items:
        lines += ["", _("Agenda:")] + [f"{n}. {item.title}" for n, item in enumerate(items, start=1)]
    if session.articles:
        lines += ["", _("Articles: %(articles)s") % {"articles": ", ".join(session.articles)}]
    lines += [
        "",
        _("Join the session here: %(url)s") % {"url": room_url(base_url, session.id)},
        _("If this device is not signed in to Parley yet, open your personal invitation link first."),
        "",
        _(
            "Add it to your calendar: download your calendar file from %(download)s, or subscribe to "
            "your personal calendar link (see %(page)s); a subscribed calendar follows every change of time."
        )
        % {
            "download": f"{base_url}/visits/{visit.id}/calendar.ics",
            "page": f"{base_url}/visits/{visit.id}/calendar",
        },
        "",
        _("This visit is confidential: please do not forward this message."),
    ]
    return "\n".join(lines) + "\n"


async def compose_invitation(
    db: AsyncSession,
    session: AgendaSession,
    visit: Visit,
    membership_id: str,
    *,
    base_url: str,
    default_language: str,
) -> InvitationEmail:
    """The invitation text for one participant of the session's visit who may attend it."""
    membership = await db.get(Membership, membership_id)
    if membership is None or membership.visit_id != visit.id:
        raise not_found("Participant")
    person = await db.get(Person, membership.person_id)
    if person is None:  # pragma: no cover - the foreign key forbids it
        raise not_found("Participant")
    if not _may_attend(membership.role, membership.id, session, await _attend_facts(db, session)):
        raise conflict("This participant may not attend this session; invite them to it first.")
    items = list(
        (
            await db.execute(
                select(AgendaItem).where(AgendaItem.session_id == session.id).order_by(AgendaItem.position)
            )
        ).scalars()
    )
    lang = pick_language(person.languages, default_language)
    _ = translations(lang).gettext
    start, end = local(session.start_utc, person.timezone), local(session.end_utc, person.timezone)
    subject = _("Invitation: %(session)s, %(day)s %(time)s %(zone)s") % {
        "session": session.title,
        "day": format_date(start.value, "medium", locale=lang),
        "time": start.clock(),
        "zone": start.abbreviation,
    }
    body = _body(
        _,
        person=person,
        visit=visit,
        session=session,
        items=items,
        when=when_text(start, end, lang),
        when_utc=utc_text(session, lang),
        base_url=base_url,
    )
    return InvitationEmail(
        membership_id=membership.id,
        session_id=session.id,
        visit_id=visit.id,
        name=person.name,
        address=person.email,
        language=lang,
        subject=subject,
        body=body,
    )


def to_message(email: InvitationEmail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain="parley")
    message["Content-Language"] = email.language
    message.set_content(email.body)
    return message


async def send_invitation(
    db: AsyncSession, config: SmtpConfig, email: InvitationEmail, *, actor_person_id: str
) -> str:
    """Send the invitation through SMTP and record it in the audit log; returns the
    Message-ID. The caller commits."""
    if not email.address:
        raise conflict("This participant has no e-mail address.")
    message = to_message(email, config.sender)
    await deliver(config, message)
    await audit.record(
        db,
        "invitation_email.sent",
        actor_person_id=actor_person_id,
        visit_id=email.visit_id,
        subject=email.membership_id,
        data={"session": email.session_id, "message_id": str(message["Message-ID"])},
    )
    return str(message["Message-ID"])
