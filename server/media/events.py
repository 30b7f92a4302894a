"""The room's audio events (``media.*``, ``booth.*``): thin handlers over ``MediaHub``
and ``RoomService``. Signalling is ephemeral (never logged); the decisions the minutes
need (a chair's unmute or mute, a booth's hand-over or floor switch) are room commands
and reach everyone as ``room.event``. docs/realtime.md lists payloads and errors."""

from __future__ import annotations

from server.access.guard import SessionScope
from server.access.policy import Action
from server.core.errors import DomainError, ErrorCode
from server.media import schemas
from server.realtime.registry import Call, Reply, session_event
from server.room.schemas import SessionRef


@session_event("media.info", Action.SESSION_ENTER, SessionRef, ephemeral=True)
async def info(call: Call[SessionScope]) -> Reply:
    """The engine, this participant's ICE servers and the media state; ``media.state``
    follows whenever it changes."""
    return Reply(await call.services.media.info(call.scope, call.conn))


@session_event("media.publish", Action.SESSION_ENTER, schemas.PublishPayload, ephemeral=True)
async def publish(call: Call[SessionScope]) -> Reply:
    """Publish the microphone (with the camera, on the floor only) into a channel, if
    the policy grants it, or an interpreter's talk-back line (``channel: "talkback"``).
    Ack ``{sdp, channel, forwarded, video}``; ``forbidden`` with the reason otherwise,
    ``invalid`` for video anywhere but the floor."""
    p = call.payload
    return Reply(await call.services.media.publish(call.scope, call.conn, p.channel, p.sdp))


@session_event("media.unpublish", Action.SESSION_ENTER, schemas.UnpublishPayload, ephemeral=True)
async def unpublish(call: Call[SessionScope]) -> Reply:
    """Stop publishing (``channel: "talkback"``: only the talk-back line)."""
    await call.services.media.unpublish(call.scope, call.conn, call.payload.channel)
    return Reply()


@session_event("media.listen", Action.SESSION_ENTER, schemas.ListenPayload, ephemeral=True)
async def listen(call: Call[SessionScope]) -> Reply:
    """Hear the floor plus a channel, and with ``video`` see the floor. Ack ``{channel,
    video, sub, sdp (offer or null), fresh, tracks}``."""
    p = call.payload
    return Reply(await call.services.media.listen(call.scope, call.conn, p.channel, p.video))


@session_event("media.answer", Action.SESSION_ENTER, schemas.AnswerPayload, ephemeral=True)
async def answer(call: Call[SessionScope]) -> Reply:
    """The browser's answer to offer ``sub``."""
    p = call.payload
    await call.services.media.answer(call.scope, call.conn, p.sub, p.sdp)
    return Reply()


@session_event("media.candidate", Action.SESSION_ENTER, schemas.CandidatePayload, ephemeral=True)
async def candidate(call: Call[SessionScope]) -> Reply:
    """A local ICE candidate of the publishing or listening peer connection."""
    p = call.payload
    found = p.candidate.model_dump() if p.candidate is not None else None
    await call.services.media.candidate(call.scope, call.conn, p.pc, found)
    return Reply()


@session_event("media.stop", Action.SESSION_ENTER, SessionRef, ephemeral=True)
async def stop(call: Call[SessionScope]) -> Reply:
    """Stop listening."""
    await call.services.media.stop(call.scope, call.conn)
    return Reply()


@session_event("media.cough", Action.SESSION_ENTER, schemas.CoughPayload, ephemeral=True)
async def cough(call: Call[SessionScope]) -> Reply:
    """While ``on``, this connection's publication is not forwarded."""
    await call.services.media.cough(call.scope, call.conn, call.payload.on)
    return Reply()


@session_event("media.unmute", Action.FLOOR_CHAIR, schemas.MemberPayload)
async def unmute(call: Call[SessionScope]) -> Reply:
    """Chair: let a participant speak on the floor (logged ``media.publish_granted``)."""
    target = call.payload.membership_id
    may_speak = await call.services.media.may_take_floor(call.scope, target)
    out = await call.services.rooms.unmute(call.scope, target, may_speak)
    return Reply(out.ack, out.news)


@session_event("media.mute", Action.FLOOR_CHAIR, schemas.MemberPayload)
async def mute(call: Call[SessionScope]) -> Reply:
    """Chair: withdraw an unmute (logged ``media.publish_revoked``)."""
    out = await call.services.rooms.mute(call.scope, call.payload.membership_id)
    return Reply(out.ack, out.news)


@session_event("booth.handover", Action.SESSION_ENTER, SessionRef)
async def handover(call: Call[SessionScope]) -> Reply:
    """The booth's active interpreter passes the microphone to the standby (logged
    ``booth.handover``); only forwarding switches at the engine."""
    booth = await call.services.media.booth_for(call.scope)
    out = await call.services.rooms.hand_over_booth(call.scope, booth.id, booth.language)
    return Reply(out.ack, out.news)


@session_event("booth.floor", Action.SESSION_ENTER, schemas.BoothFloorPayload)
async def booth_floor(call: Call[SessionScope]) -> Reply:
    """The active interpreter switches their booth's channel to carry the floor, or
    back (logged ``booth.floor``)."""
    booth = await call.services.media.booth_for(call.scope)
    if booth.active is None or booth.active.membership_id != call.scope.actor.membership_id:
        raise DomainError(ErrorCode.FORBIDDEN, "Only the booth's active interpreter switches its channel.")
    out = await call.services.rooms.booth_floor(call.scope, booth.language, call.payload.carries_floor)
    return Reply(out.ack, out.news)


@session_event("booth.slowdown", Action.SESSION_ENTER, SessionRef, ephemeral=True)
async def slowdown(call: Call[SessionScope]) -> Reply:
    """An interpreter asks the floor to slow down: ``room.signal`` ``{type:
    "slowdown", data: {language}}`` to the room."""
    booth = await call.services.media.booth_for(call.scope)
    signal = await call.services.rooms.signal(call.scope, "slowdown", {"language": booth.language})
    return Reply({}, [signal])
