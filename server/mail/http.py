"""Invitation e-mail for a session: preview the text a participant would get (in
their zone and language), and send it when SMTP is configured (docs/calendars.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.access.guard import SessionScope
from server.access.policy import Action
from server.core.errors import DomainError, ErrorCode, invalid
from server.core.i18n import pick_language
from server.core.ids import is_id
from server.mail import service as mail
from server.mail.smtp import smtp_config
from server.people.models import Person
from server.web.bodies import read_json, validated
from server.web.keys import SESSIONS, SETTINGS
from server.web.routing import RouteTable
from server.web.templating import render

routes = RouteTable()

SENDING_OFF = "E-mail sending is off: set PARLEY_SMTP_HOST to send invitations from Parley."


async def _language(request: web.Request, person_id: str) -> str:
    async with request.app[SESSIONS]() as db:
        person = await db.get(Person, person_id)
    return pick_language(person.languages if person else None, request.app[SETTINGS].default_language)


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
    lang = await _language(request, scope.actor.person_id)
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
    body = validated(SendRequest, await read_json(request))
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
