"""The live room: lobby, presence, agenda item, speakers' list and chat.

Every command validates against the current state under the session's append lock,
stages its events, commits, and only then returns them for broadcast (persist,
then announce). Services take an explicit scope and database session and never
touch the transport.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.access.guard import SessionScope
from server.access.roles import Role
from server.agenda.models import AgendaItem
from server.audit import service as audit
from server.core.clock import iso_z, utcnow
from server.core.errors import DomainError, ErrorCode, conflict, invalid, not_found
from server.core.ratelimit import TokenBucket
from server.room.history import chat_before
from server.room.log import SYNC_LIMIT, RoomLog
from server.room.state import CHAT_WINDOW, EventType, RoomState


class Stage(Protocol):
    def __call__(self, kind: EventType, payload: dict[str, Any], *, primary: bool = True) -> None: ...


Build = Callable[[RoomState, Stage], Awaitable[dict[str, Any] | None]]


@dataclass
class Outcome:
    """What a command produced: events to broadcast and fields for the acknowledgement."""

    events: list[dict[str, Any]] = field(default_factory=list)
    ack: dict[str, Any] = field(default_factory=dict)
    admissions: list[tuple[str, str]] = field(default_factory=list)  # (membership, status)


def _waits(scope: SessionScope, state: RoomState) -> bool:
    if not scope.session.requires_admission:
        return False
    if scope.actor.role == Role.SECRETARIAT or scope.is_chair:
        return False
    return scope.actor.membership_id not in state.admitted


# Chat per participant: a burst of 10, then one message a second. Someone typing fast
# never meets it; a script posting hundreds of messages a second does at once.
CHAT_BURST = 10
CHAT_RATE = 1.0


def make_chat_limit(rate: float = CHAT_RATE, burst: float = CHAT_BURST) -> TokenBucket:
    return TokenBucket(rate, burst, message="You are sending messages too fast; wait a moment.")


class RoomService:
    def __init__(self, log: RoomLog, chat_limit: TokenBucket | None = None) -> None:
        self.log = log
        self.chat_limit = chat_limit or make_chat_limit()

    async def join(
        self,
        db: AsyncSession,
        scope: SessionScope,
        conn: str,
        since: int | None,
        subscribe: Callable[[], Awaitable[None]] | None = None,
    ) -> Outcome:
        """Enter the room, or the lobby when the session requires admission.

        ``subscribe`` (the transport's "start sending me room events") runs under the
        append lock once entry is decided, before the join is committed: every event
        after the state the acknowledgement carries then reaches the joiner live."""
        sid, me = scope.session.id, scope.actor.membership_id
        async with self.log.locked(db, sid) as state:
            out = Outcome()
            if _waits(scope, state):
                if me not in state.lobby:
                    out.events.append(
                        self.log.add(
                            db, state, sid, EventType.LOBBY_WAIT, me, {"person": scope.actor.public()}
                        )
                    )
                    await db.commit()
                out.ack = {"status": "waiting", "seq": state.seq}
                return out
            if subscribe is not None:
                await subscribe()
            out.events.append(
                self.log.add(
                    db, state, sid, EventType.JOIN, me, {"person": scope.actor.public(), "conn": conn}
                )
            )
            await db.commit()
            out.ack = {"status": "joined", **await self._catch_up(db, state, sid, since)}
            return out

    async def _catch_up(
        self, db: AsyncSession, state: RoomState, session_id: str, since: int | None
    ) -> dict[str, Any]:
        base: dict[str, Any] = {"seq": state.seq, "server_now": iso_z(utcnow())}
        if since is not None and since <= state.seq and state.seq - since <= SYNC_LIMIT:
            events = await self.log.since(db, session_id, since)
            # A replay is never heavier than the state: past a window of chat, the
            # snapshot (and chat.history for the rest) is what a late client gets.
            if sum(e["type"] == EventType.CHAT for e in events) <= CHAT_WINDOW:
                base["events"] = events
                return base
        base["state"] = state.snapshot()
        return base

    async def sync(self, db: AsyncSession, scope: SessionScope, since: int) -> dict[str, Any]:
        """Events after ``since`` (or the whole state when too far behind)."""
        state = await self.log.state(db, scope.session.id)
        if _waits(scope, state):
            # The lobby is not the room: no history before the chair admits.
            raise DomainError(ErrorCode.WAITING, "Wait until the chair admits you.")
        return await self._catch_up(db, state, scope.session.id, since)

    async def history(self, db: AsyncSession, scope: SessionScope, before: int, limit: int) -> dict[str, Any]:
        """Chat messages older than seq ``before`` (``limit`` at most, newest last) and
        whether there are more: what a state's chat window no longer holds."""
        state = await self.log.state(db, scope.session.id)
        if _waits(scope, state):
            raise DomainError(ErrorCode.WAITING, "Wait until the chair admits you.")
        messages, more = await chat_before(db, scope.session.id, before, limit)
        return {"messages": messages, "more": more}

    async def leave(self, db: AsyncSession, session_id: str, membership_id: str, conn: str) -> Outcome:
        """Record that a connection left. Needs no permission: it only closes what a
        permitted ``join`` opened (a login revoked meanwhile must still leave)."""
        sid, me = session_id, membership_id
        async with self.log.locked(db, sid) as state:
            out = Outcome()
            if conn in state.connections.get(me, set()):
                out.events.append(self.log.add(db, state, sid, EventType.LEAVE, me, {"conn": conn}))
                await db.commit()
            return out

    async def _present(self, scope: SessionScope, state: RoomState) -> None:
        if not state.present_has(scope.actor.membership_id):
            raise conflict("Join the room first.")

    async def _replay(
        self, db: AsyncSession, scope: SessionScope, idem: str | None
    ) -> Outcome | None:
        """The earlier outcome of a retried command. Called under the append lock, so a
        retry racing its original waits for it instead of storing a second event."""
        if idem is None:
            return None
        earlier = await self.log.find_idempotent(db, scope.session.id, scope.actor.membership_id, idem)
        if earlier is None:
            return None
        return Outcome(events=[earlier], ack={"seq": earlier["seq"], "duplicate": True})

    async def _command(self, db: AsyncSession, scope: SessionScope, idem: str | None, build: Build) -> Outcome:
        """Run one room command: under the session's append lock, replay a retried
        ``idem``; else let ``build`` check the state and stage events, then commit.
        Only the primary event carries the idempotency key."""
        sid, me = scope.session.id, scope.actor.membership_id
        async with self.log.locked(db, sid) as state:
            if (done := await self._replay(db, scope, idem)) is not None:
                return done
            out = Outcome()

            def stage(kind: EventType, payload: dict[str, Any], *, primary: bool = True) -> None:
                out.events.append(self.log.add(db, state, sid, kind, me, payload, idem if primary else None))

            extra = await build(state, stage)
            await db.commit()
        out.ack = {"seq": state.seq, **(extra or {})}
        return out

    async def chat(self, db: AsyncSession, scope: SessionScope, text: str, idem: str) -> Outcome:
        """Post a message. Raises ``rate_limited`` (with ``retry_after``) past the
        participant's chat limit; a retry of a message already stored still gets its
        earlier outcome, and a refused message never reaches the log."""
        text = text.strip()
        if not text:
            raise invalid("text: a message cannot be empty.")
        # Only new messages spend a token: a retry after a lost acknowledgement must not
        # be refused. Refusing before the lock keeps a flood from queueing on it.
        if (done := await self._replay(db, scope, idem)) is not None:
            return done
        self.chat_limit.take(scope.actor.membership_id)

        async def build(state: RoomState, stage: Stage) -> None:
            await self._present(scope, state)
            stage(EventType.CHAT, {"text": text})

        return await self._command(db, scope, idem, build)

    async def request_floor(self, db: AsyncSession, scope: SessionScope, idem: str | None) -> Outcome:
        me = scope.actor.membership_id

        async def build(state: RoomState, stage: Stage) -> dict[str, Any]:
            await self._present(scope, state)
            if me in state.queue:
                raise conflict("You have already requested the floor.")
            if state.floor and state.floor["membership_id"] == me:
                raise conflict("You have the floor.")
            stage(EventType.FLOOR_REQUEST, {})
            return {"position": len(state.queue)}

        return await self._command(db, scope, idem, build)

    async def withdraw_floor(self, db: AsyncSession, scope: SessionScope, idem: str | None) -> Outcome:
        async def build(state: RoomState, stage: Stage) -> None:
            if scope.actor.membership_id not in state.queue:
                raise conflict("You have not requested the floor.")
            stage(EventType.FLOOR_WITHDRAW, {})

        return await self._command(db, scope, idem, build)

    async def give_floor(
        self, db: AsyncSession, scope: SessionScope, target: str, idem: str | None
    ) -> Outcome:
        """Chair: give the floor to someone on the list (ending the current speaker)."""

        async def build(state: RoomState, stage: Stage) -> None:
            if target not in state.queue and not state.present_has(target):
                raise not_found("Participant in the room")
            if state.floor is not None:
                stage(EventType.FLOOR_END, {"target": state.floor["membership_id"]}, primary=False)
            stage(EventType.FLOOR_GIVE, {"target": target})

        return await self._command(db, scope, idem, build)

    async def end_floor(self, db: AsyncSession, scope: SessionScope, idem: str | None) -> Outcome:
        async def build(state: RoomState, stage: Stage) -> None:
            if state.floor is None:
                raise conflict("Nobody has the floor.")
            stage(EventType.FLOOR_END, {"target": state.floor["membership_id"]})

        return await self._command(db, scope, idem, build)

    async def start_item(
        self, db: AsyncSession, scope: SessionScope, item_id: str, idem: str | None
    ) -> Outcome:
        """Chair: make an agenda item current (ending the one before)."""
        item = await db.get(AgendaItem, item_id)
        if item is None or item.session_id != scope.session.id:
            raise not_found("Agenda item")

        async def build(state: RoomState, stage: Stage) -> None:
            if state.current_item and state.current_item["item_id"] == item_id:
                raise conflict("This item is already current.")
            if state.current_item is not None:
                stage(EventType.ITEM_END, {"item_id": state.current_item["item_id"]}, primary=False)
            stage(EventType.ITEM_START, {"item_id": item_id})

        return await self._command(db, scope, idem, build)

    async def end_item(self, db: AsyncSession, scope: SessionScope, idem: str | None) -> Outcome:
        async def build(state: RoomState, stage: Stage) -> None:
            if state.current_item is None:
                raise conflict("No agenda item is current.")
            stage(EventType.ITEM_END, {"item_id": state.current_item["item_id"]})

        return await self._command(db, scope, idem, build)

    async def decide_admission(
        self, db: AsyncSession, scope: SessionScope, target: str, admit: bool, idem: str | None
    ) -> Outcome:
        """Chair: admit or decline someone waiting in the lobby (recorded in the audit log)."""

        async def build(state: RoomState, stage: Stage) -> None:
            if target not in state.lobby:
                raise not_found("Participant in the lobby")
            stage(EventType.LOBBY_ADMIT if admit else EventType.LOBBY_DECLINE, {"target": target})
            await audit.record(
                db,
                "admission.granted" if admit else "admission.declined",
                actor_person_id=scope.actor.person_id,
                visit_id=scope.visit.id,
                subject=target,
                data={"session": scope.session.id},
            )

        out = await self._command(db, scope, idem, build)
        if not out.ack.get("duplicate"):
            out.admissions.append((target, "admitted" if admit else "declined"))
        return out

    async def items(self, db: AsyncSession, session_id: str) -> list[AgendaItem]:
        rows = await db.execute(
            select(AgendaItem).where(AgendaItem.session_id == session_id).order_by(AgendaItem.position)
        )
        return list(rows.scalars())
