"""Calendar feeds and session invitation e-mails: pages and API.

* ``GET /calendar/{token}.ics``: the personal subscription feed; public, the token is
  the credential (unknown or stopped links get a plain 404).
* ``/visits/{visit_id}/calendar...``: download one's calendar, and get or stop one's
  own subscription link (``VISIT_VIEW``: everyone manages only their own).
* ``/sessions/{session_id}/invitation-email...``: the secretariat's invitation text for
  one participant, and sending it when SMTP is configured (``SESSION_MANAGE``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from server.access.guard import SessionScope, VisitScope
from server.access.policy import Action
from server.calendars import service as calendars
from server.config import Settings
from server.core.clock import iso_z
from server.core.errors import DomainError, ErrorCode, invalid
from server.core.i18n import pick_language
from server.core.ids import is_id
from server.core.times import local
from server.mail import service as mail
from server.mail.smtp import smtp_config
from server.people.models import Person
from server.web.bodies import read_json
from server.web.keys import SESSIONS, SETTINGS
from server.web.routing import RouteTable
from server.web.templating import render

routes = RouteTable()

SENDING_OFF = "E-mail sending is off: set PARLEY_SMTP_HOST to send invitations from Parley."


# ---- helpers -----------------------------------------------------------------------------


async def _language(db: AsyncSession, person_id: str, settings: Settings) -> str:
    person = await db.get(Person, person_id)
    return pick_language(person.languages if person else None, settings.default_language)


def _ics(body: bytes, *, filename: str | None = None) -> web.Response:
    # What a participant may attend is confidential: no shared cache keeps it.
    headers = {"Cache-Control": "private, no-store"}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return web.Response(body=body, content_type="text/calendar", charset="utf-8", headers=headers)


def _feed_gone(request: web.Request) -> web.StreamResponse:
    """Calendar programs get a short plain-text 404 (JSON for JSON clients)."""
    err = DomainError(ErrorCode.NOT_FOUND, "Calendar not found: this link is unknown or has been stopped.")
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response(err.as_payload(), status=404)
    return web.Response(text=err.message + "\n", status=404, content_type="text/plain")


def _feed_url(settings: Settings, token: str) -> str:
    return settings.base_url + calendars.feed_path(token)


def _download_path(visit_id: str) -> str:
    return f"/visits/{visit_id}/calendar.ics"


# ---- the feed and the download -----------------------------------------------------------


@routes.get("/calendar/{token}.ics", action=None)
async def feed(request: web.Request, _: Any) -> web.StreamResponse:
    """The subscription feed: the sessions its owner may attend, cancelled ones as such."""
    token = request.match_info["token"]
    if not is_id(token):
        return _feed_gone(request)
    settings = request.app[SETTINGS]
    async with request.app[SESSIONS]() as db:
        owner = await calendars.resolve_feed(db, settings.secret_key, token)
        if owner is None:
            return _feed_gone(request)
        lang = pick_language(owner.person.languages, settings.default_language)
        body = await calendars.calendar_for(db, owner.actor, owner.visit, base_url=settings.base_url, lang=lang)
    return _ics(body)


@routes.get("/visits/{visit_id}/calendar.ics", action=Action.VISIT_VIEW, page=True)
async def download(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """The same calendar as the feed, as a file, for the signed-in participant."""
    settings = request.app[SETTINGS]
    async with request.app[SESSIONS]() as db:
        lang = await _language(db, scope.actor.person_id, settings)
        body = await calendars.calendar_for(db, scope.actor, scope.visit, base_url=settings.base_url, lang=lang)
    return _ics(body, filename="parley-calendar.ics")


# ---- one's own subscription link: page ---------------------------------------------------


async def _page(
    request: web.Request, scope: VisitScope, *, feed_url: str | None = None, stopped: bool = False
) -> web.Response:
    settings = request.app[SETTINGS]
    async with request.app[SESSIONS]() as db:
        active = await calendars.active_feed(db, scope.actor.membership_id)
        lang = await _language(db, scope.actor.person_id, settings)
    return render(
        request,
        "calendar.html",
        {
            "visit": scope.visit,
            "actor": scope.actor,
            "active": active,
            "active_since": local(active.created_at, scope.actor.timezone) if active else None,
            "feed_url": feed_url,
            "stopped": stopped,
            "download_url": _download_path(scope.visit.id),
        },
        lang=lang,
    )


@routes.get("/visits/{visit_id}/calendar", action=Action.VISIT_VIEW, page=True)
async def calendar_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    return await _page(request, scope, stopped=request.query.get("stopped") == "1")


@routes.post("/visits/{visit_id}/calendar/new", action=Action.VISIT_VIEW, page=True)
async def new_link_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """A new subscription link, shown once (the previous one stops working)."""
    settings = request.app[SETTINGS]
    async with request.app[SESSIONS]() as db:
        token = await calendars.create_feed(db, settings.secret_key, scope.actor)
        await db.commit()
    return await _page(request, scope, feed_url=_feed_url(settings, token))


@routes.post("/visits/{visit_id}/calendar/revoke", action=Action.VISIT_VIEW, page=True)
async def stop_link_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        await calendars.revoke_feed(db, scope.actor)
        await db.commit()
    raise web.HTTPSeeOther(f"/visits/{scope.visit.id}/calendar?stopped=1")


# ---- one's own subscription link: API ----------------------------------------------------


@routes.get("/api/visits/{visit_id}/calendar-feed", action=Action.VISIT_VIEW)
async def feed_state_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        active = await calendars.active_feed(db, scope.actor.membership_id)
    return web.json_response(
        {
            "active": active is not None,
            "created_at": iso_z(active.created_at) if active else None,
            "download_url": request.app[SETTINGS].base_url + _download_path(scope.visit.id),
        }
    )


@routes.post("/api/visits/{visit_id}/calendar-feed", action=Action.VISIT_VIEW)
async def new_link_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """201 ``{feed_url, created_at}``; any previous link of the caller stops working."""
    settings = request.app[SETTINGS]
    async with request.app[SESSIONS]() as db:
        token = await calendars.create_feed(db, settings.secret_key, scope.actor)
        active = await calendars.active_feed(db, scope.actor.membership_id)
        await db.commit()
    assert active is not None
    return web.json_response(
        {"feed_url": _feed_url(settings, token), "created_at": iso_z(active.created_at)}, status=201
    )


@routes.post("/api/visits/{visit_id}/calendar-feed/revoke", action=Action.VISIT_VIEW)
async def stop_link_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        revoked = await calendars.revoke_feed(db, scope.actor)
        await db.commit()
    return web.json_response({"revoked": revoked})


# ---- invitation e-mail -------------------------------------------------------------------


def _recipient(request: web.Request, scope: SessionScope) -> str:
    """``?membership_id=``; without it, the caller's own (the text as they would get it)."""
    value = request.query.get("membership_id") or scope.actor.membership_id
    if not is_id(value):
        raise invalid("membership_id: not an id.")
    return value


async def _compose(request: web.Request, scope: SessionScope, membership_id: str) -> mail.InvitationEmail:
    settings = request.app[SETTINGS]
    async with request.app[SESSIONS]() as db:
        return await mail.compose_invitation(
            db,
            scope.session,
            scope.visit,
            membership_id,
            base_url=settings.base_url,
            default_language=settings.default_language,
        )


@routes.get("/api/sessions/{session_id}/invitation-email", action=Action.SESSION_MANAGE)
async def invitation_api(request: web.Request, scope: SessionScope) -> web.StreamResponse:
    email = await _compose(request, scope, _recipient(request, scope))
    return web.json_response(email.as_json())


@routes.get("/sessions/{session_id}/invitation-email", action=Action.SESSION_MANAGE, page=True)
async def invitation_page(request: web.Request, scope: SessionScope) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    chosen = request.query.get("membership_id")
    if chosen is not None and not is_id(chosen):
        raise invalid("membership_id: not an id.")
    email = await _compose(request, scope, chosen) if chosen else None
    async with request.app[SESSIONS]() as db:
        people = await mail.recipients(db, scope.session)
        lang = await _language(db, scope.actor.person_id, settings)
    return render(
        request,
        "invitation_email.html",
        {
            "visit": scope.visit,
            "actor": scope.actor,
            "session": scope.session,
            "recipients": people,
            "chosen": chosen,
            "email": email,
            "sending": smtp_config(settings) is not None,
        },
        lang=lang,
    )


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    membership_id: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    # Compose and check everything a send would, without sending (works with sending off).
    dry_run: bool = False


@routes.post("/api/sessions/{session_id}/invitation-email/send", action=Action.SESSION_MANAGE)
async def send_api(request: web.Request, scope: SessionScope) -> web.StreamResponse:
    """``{membership_id, dry_run?}`` -> ``{sent, to, subject, message_id}``; 409 when sending is off."""
    try:
        body = SendRequest.model_validate(await read_json(request))
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise invalid(f"{field}: {first['msg']}.") from None
    settings = request.app[SETTINGS]
    config = smtp_config(settings)
    email = await _compose(request, scope, body.membership_id)
    answer: dict[str, Any] = {"to": email.to, "subject": email.subject, "sending": config is not None}
    if not email.address:
        raise DomainError(ErrorCode.CONFLICT, "This participant has no e-mail address.")
    if body.dry_run:
        return web.json_response(answer | {"sent": False, "body": email.body})
    if config is None:
        raise DomainError(ErrorCode.CONFLICT, SENDING_OFF)
    async with request.app[SESSIONS]() as db:
        message_id = await mail.send_invitation(db, config, email, actor_person_id=scope.actor.person_id)
        await db.commit()
    return web.json_response(answer | {"sent": True, "message_id": message_id})
