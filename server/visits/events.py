"""The visit's realtime events."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from server.access.guard import VisitScope
from server.access.policy import Action
from server.realtime.names import member_room, visit_room
from server.realtime.registry import Call, Reply, visit_event
from server.room import schemas


class VisitRef(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    visit_id: schemas.Id


@visit_event("visit.watch", Action.VISIT_VIEW, VisitRef)
async def watch(call: Call[VisitScope]) -> Reply:
    """Follow a visit's news: this socket then receives ``agenda.changed`` ``{visit_id,
    sessions: [{id, start_utc, end_utc, sequence}]}`` whenever sessions it may see move.
    Ack: ``{"ok": true, "visit_id"}``; errors: ``invalid``, ``unauthenticated``,
    ``not_found`` (not a member of the visit). Watching again is harmless; a reconnected
    socket must watch again (and re-read the agenda: it may have missed news)."""
    scope = call.scope
    await call.link.enter(visit_room(scope.visit.id))
    await call.link.enter(member_room(scope.visit.id, scope.actor.membership_id))
    return Reply({"visit_id": scope.visit.id})
