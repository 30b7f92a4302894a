"""The room's realtime events: lobby, presence, agenda item, speakers' list, chat.

Each handler is thin: the transport has validated the payload and authorised the
action for the session; the handler calls ``RoomService`` (which commits) and
returns the acknowledgement plus the committed news, which the transport publishes.
Every acknowledgement is ``{"ok": true, ...}`` or ``{"error": {"code", "message"}}``
(docs/realtime.md lists codes per event).
"""

from __future__ import annotations

from server.access.guard import SessionScope, controls
from server.access.policy import Action
from server.realtime.names import lobby_name, room_name
from server.realtime.registry import Call, Reply, session_event
from server.room import schemas
from server.room.service import Outcome


def _reply(out: Outcome) -> Reply:
    return Reply(out.ack, out.news)


@session_event("room.join", Action.SESSION_ENTER, schemas.JoinPayload)
async def join(call: Call[SessionScope]) -> Reply:
    """Enter a room. Ack: ``status`` "joined" with ``seq``, ``server_now`` and ``state``
    (or ``events`` after ``since``), ``me`` and ``is_chair``; or "waiting" (then a
    ``room.admission`` event follows)."""
    scope = call.scope
    session_id, me = scope.session.id, scope.actor.membership_id
    lobby = lobby_name(session_id, me)

    async def subscribe() -> None:
        await call.link.leave(lobby)
        await call.link.enter(room_name(session_id))
        call.link.remember_room(session_id, me)

    # Subscribed only once entry is decided (never while waiting), before the join is
    # committed, so nothing committed after the acknowledged state is missed.
    out = await call.services.rooms.join(
        scope, call.conn, call.payload.since, subscribe, access_version=call.access_version
    )
    if out.ack["status"] == "waiting":
        await call.link.enter(lobby)
    out.ack["me"] = me
    out.ack["is_chair"] = scope.is_chair
    out.ack["may"] = controls(scope)
    return _reply(out)


@session_event("room.leave", Action.SESSION_ENTER, schemas.SessionRef)
async def leave(call: Call[SessionScope]) -> Reply:
    """Leave a room (as a disconnect does)."""
    session_id = call.scope.session.id
    await call.link.leave(room_name(session_id))
    call.link.forget_room(session_id)
    await call.services.media.drop(call.conn, [session_id])
    return _reply(await call.services.rooms.leave(session_id, call.scope.actor.membership_id, call.conn))


@session_event("room.sync", Action.SESSION_ENTER, schemas.SyncPayload)
async def sync(call: Call[SessionScope]) -> Reply:
    """Events after ``since`` in order (or ``state`` when more than 1000 were missed)."""
    return Reply(await call.services.rooms.sync(call.scope, call.payload.since))


@session_event("chat.history", Action.SESSION_ENTER, schemas.HistoryPayload)
async def history(call: Call[SessionScope]) -> Reply:
    """Older chat: up to ``limit`` (<= 100) messages before seq ``before``, newest last.
    Ack: ``{"ok": true, "messages": [{seq, membership_id, text, at}], "more": bool}``;
    ``waiting`` in the lobby, as ``room.sync``."""
    p = call.payload
    return Reply(await call.services.rooms.history(call.scope, p.before, p.limit))


@session_event("chat.send", Action.CHAT_SEND, schemas.ChatPayload)
async def chat(call: Call[SessionScope]) -> Reply:
    """Post a chat message; ``idem`` makes a retried send store once. Past the chat
    limit: ``rate_limited`` with ``retry_after`` (seconds); nothing is stored."""
    return _reply(await call.services.rooms.chat(call.scope, call.payload.text, call.payload.idem))


@session_event("floor.request", Action.FLOOR_REQUEST, schemas.IdemPayload)
async def request_floor(call: Call[SessionScope]) -> Reply:
    """Join the end of the speakers' list."""
    return _reply(await call.services.rooms.request_floor(call.scope, call.payload.idem))


@session_event("floor.withdraw", Action.FLOOR_REQUEST, schemas.IdemPayload)
async def withdraw_floor(call: Call[SessionScope]) -> Reply:
    """Leave the speakers' list."""
    return _reply(await call.services.rooms.withdraw_floor(call.scope, call.payload.idem))


@session_event("floor.give", Action.FLOOR_CHAIR, schemas.TargetPayload)
async def give_floor(call: Call[SessionScope]) -> Reply:
    """Chair: give the floor to ``membership_id``."""
    p = call.payload
    return _reply(await call.services.rooms.give_floor(call.scope, p.membership_id, p.idem))


@session_event("floor.end", Action.FLOOR_CHAIR, schemas.IdemPayload)
async def end_floor(call: Call[SessionScope]) -> Reply:
    """Chair: end the current intervention."""
    return _reply(await call.services.rooms.end_floor(call.scope, call.payload.idem))


@session_event("item.start", Action.ITEM_MOVE, schemas.ItemPayload)
async def start_item(call: Call[SessionScope]) -> Reply:
    """Chair: make ``item_id`` the current agenda item."""
    p = call.payload
    return _reply(await call.services.rooms.start_item(call.scope, p.item_id, p.idem))


@session_event("item.end", Action.ITEM_MOVE, schemas.IdemPayload)
async def end_item(call: Call[SessionScope]) -> Reply:
    """Chair: close the current agenda item."""
    return _reply(await call.services.rooms.end_item(call.scope, call.payload.idem))


@session_event("lobby.admit", Action.LOBBY_DECIDE, schemas.TargetPayload)
async def admit(call: Call[SessionScope]) -> Reply:
    """Chair: admit ``membership_id`` from the lobby (for this session)."""
    p = call.payload
    return _reply(await call.services.rooms.decide_admission(call.scope, p.membership_id, True, p.idem))


@session_event("lobby.decline", Action.LOBBY_DECIDE, schemas.TargetPayload)
async def decline(call: Call[SessionScope]) -> Reply:
    """Chair: decline ``membership_id``'s request to enter."""
    p = call.payload
    return _reply(await call.services.rooms.decide_admission(call.scope, p.membership_id, False, p.idem))


@session_event("room.typing", Action.CHAT_SEND, schemas.SessionRef, ephemeral=True)
async def typing(call: Call[SessionScope]) -> Reply:
    """Ephemeral: tell the room this participant is typing. Never logged; others receive
    ``room.signal`` ``{session_id, type: "typing", membership_id}``. Only someone present
    in the room may send it."""
    scope = call.scope
    signal = await call.services.rooms.signal(scope, "typing", {})
    return Reply({}, [signal])
