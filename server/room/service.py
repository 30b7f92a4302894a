"""The live room: lobby, presence, agenda item, speakers' list and chat.

Every command validates against the committed state under the room's lock, stages
its events, commits, and only then returns them as ``RoomChanged`` news for the
transport to publish (persist, then announce). The room's unit of work
(``RoomLog.unit``) owns its transaction because the commit must happen under the
room's lock; everywhere else services flush and the transport commits.
Services take an explicit scope and never touch the transport.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.access import facts
from server.access.guard import SessionScope
from server.access.roles import Role
from server.agenda.models import AgendaItem
from server.audit import service as audit
from server.booths import service as booths
from server.core.clock import iso_z, utcnow
from server.core.errors import AccessMoved, DomainError, ErrorCode, conflict, invalid, not_found
from server.core.events import DomainEvent
from server.core.ratelimit import TokenBucket
from server.room.history import chat_before
from server.room.log import SYNC_LIMIT, RoomLog, Unit
from server.room.state import CHAT_WINDOW, EventType, RoomState


class Stage:
    """Stages a command's events on its unit; only the primary one carries ``idem``."""

    def __init__(self, unit: Unit, membership_id: str, idem: str | None) -> None:
        self.unit = unit
        self.membership_id = membership_id
        self.idem = idem

    @property
    def db(self) -> AsyncSession:
        return self.unit.db

    def __call__(self, kind: EventType, payload: dict[str, Any], *, primary: bool = True) -> None:
        self.unit.add(kind, self.membership_id, payload, self.idem if primary else None)


Build = Callable[[RoomState, Stage], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class RoomChanged(DomainEvent):
    """Committed events of one room (broadcast as ``room.event``), and lobby decisions
    for the people they concern (sent as ``room.admission``)."""

    session_id: str
    events: tuple[dict[str, Any], ...]
    admissions: tuple[tuple[str, str], ...] = ()  # (membership, "admitted" | "declined")


@dataclass(frozen=True)
class RoomSignal(DomainEvent):
    """Ephemeral room news (typing; later media signalling and speaking levels):
    broadcast to the room as ``room.signal``, never written to the log."""

    session_id: str
    type: str
    membership_id: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What a command produced: fields for the acknowledgement and committed news."""

    ack: dict[str, Any] = field(default_factory=dict)
    news: list[DomainEvent] = field(default_factory=list)


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
    """Room commands. Each runs in one ``RoomLog.unit``: the room's lock, then a
    transaction that the unit commits before the events reach the cache and before
    the caller publishes them (persist, then announce)."""

    def __init__(self, log: RoomLog, chat_limit: TokenBucket | None = None) -> None:
        self.log = log
        self.chat_limit = chat_limit or make_chat_limit()
        # Ephemeral signals are cheap to send and cost every listener: bound them.
        self.signals = TokenBucket(rate=2.0, burst=5.0, message="Too many signals; slow down.")

    async def signal(self, scope: SessionScope, kind: str, data: dict[str, Any]) -> RoomSignal:
        """An ephemeral signal from someone present in the room (not logged)."""
        me = scope.actor.membership_id
        self.signals.take((scope.session.id, me, kind))
        async with self.log.sessions() as db:
            state = await self.log.state(db, scope.session.id)
        await self._present(scope, state)
        return RoomSignal(scope.session.id, kind, me, data)

    async def join(
        self,
        scope: SessionScope,
        conn: str,
        since: int | None,
        subscribe: Callable[[], Awaitable[None]] | None = None,
        *,
        access_version: int | None = None,
    ) -> Outcome:
        """Enter the room, or the lobby when the session requires admission.

        ``access_version``: the visit's access version the caller's scope was decided
        at; if the rules changed while the join waited for the room, it raises
        ``AccessMoved`` (decide again) instead of letting in someone they now refuse.

        ``subscribe`` (the transport's "start sending me room events") runs under the
        room's lock once entry is decided, before the join is committed: every event
        after the state the acknowledgement carries then reaches the joiner live."""
        return await self.log.retrying(lambda: self._join(scope, conn, since, subscribe, access_version))

    async def _join(
        self,
        scope: SessionScope,
        conn: str,
        since: int | None,
        subscribe: Callable[[], Awaitable[None]] | None,
        access_version: int | None,
    ) -> Outcome:
        sid, me = scope.session.id, scope.actor.membership_id
        out = Outcome()
        async with self.log.unit(sid) as unit:
            if access_version is not None and await facts.version(unit.db, scope.visit.id) != access_version:
                raise AccessMoved()
            state = unit.state
            if _waits(scope, state):
                if me not in state.lobby:
                    unit.add(EventType.LOBBY_WAIT, me, {"person": scope.actor.public()})
                out.ack = {"status": "waiting"}
            else:
                if subscribe is not None:
                    await subscribe()
                unit.add(EventType.JOIN, me, {"person": scope.actor.public(), "conn": conn})
                out.ack = {"status": "joined"}
        if unit.staged:
            out.news.append(RoomChanged(sid, tuple(unit.staged)))
        if out.ack["status"] == "waiting":
            out.ack["seq"] = unit.state.seq
            return out
        async with self.log.sessions() as db:
            out.ack.update(await self._catch_up(db, unit.state, sid, since))
        return out

    async def _catch_up(
        self, db: AsyncSession, state: RoomState, session_id: str, since: int | None
    ) -> dict[str, Any]:
        seq = state.seq
        base: dict[str, Any] = {"seq": seq, "server_now": iso_z(utcnow())}
        # A replay longer than the state costs more to read and send than the state
        # itself (after a restart every rejoin would replay the whole outage): past
        # max(50, people in the room) events, the state is sent instead.
        if since is not None and since <= seq and seq - since <= min(SYNC_LIMIT, max(50, len(state.people))):
            # Only up to the acknowledged seq: later events reach the client live.
            events = [e for e in await self.log.since(db, session_id, since) if e["seq"] <= seq]
            # A replay is never heavier than the state: past a window of chat, the
            # snapshot (and chat.history for the rest) is what a late client gets.
            if sum(e["type"] == EventType.CHAT for e in events) <= CHAT_WINDOW:
                base["events"] = events
                return base
        base["state"] = state.snapshot()
        return base

    async def sync(self, scope: SessionScope, since: int) -> dict[str, Any]:
        """Events after ``since`` (or the whole state when too far behind). Reads only
        committed events: the cache never holds an uncommitted one."""
        async with self.log.sessions() as db:
            state = await self.log.state(db, scope.session.id)
            if _waits(scope, state):
                # The lobby is not the room: no history before the chair admits.
                raise DomainError(ErrorCode.WAITING, "Wait until the chair admits you.")
            return await self._catch_up(db, state, scope.session.id, since)

    async def history(self, scope: SessionScope, before: int, limit: int) -> dict[str, Any]:
        """Chat messages older than seq ``before`` (``limit`` at most, newest last) and
        whether there are more: what a state's chat window no longer holds."""
        async with self.log.sessions() as db:
            state = await self.log.state(db, scope.session.id)
            if _waits(scope, state):
                raise DomainError(ErrorCode.WAITING, "Wait until the chair admits you.")
            messages, more = await chat_before(db, scope.session.id, before, limit)
        return {"messages": messages, "more": more}

    async def leave(self, session_id: str, membership_id: str, conn: str, reason: str | None = None) -> Outcome:
        """Record that a connection left. Needs no permission: it only closes what a
        permitted ``join`` opened (a login revoked meanwhile must still leave)."""
        payload: dict[str, Any] = {"conn": conn}
        if reason:
            payload["reason"] = reason
        return await self.log.retrying(lambda: self._leave(session_id, membership_id, conn, payload))

    async def _leave(self, session_id: str, membership_id: str, conn: str, payload: dict[str, Any]) -> Outcome:
        async with self.log.unit(session_id) as unit:
            if conn in unit.state.connections.get(membership_id, set()):
                unit.add(EventType.LEAVE, membership_id, payload)
        out = Outcome()
        if unit.staged:
            out.news.append(RoomChanged(session_id, tuple(unit.staged)))
        return out

    async def _present(self, scope: SessionScope, state: RoomState) -> None:
        if not state.present_has(scope.actor.membership_id):
            raise conflict("Join the room first.")

    async def _replay(
        self, db: AsyncSession, scope: SessionScope, idem: str | None
    ) -> dict[str, Any] | None:
        """The earlier event of a retried command (``idem`` already stored)."""
        if idem is None:
            return None
        return await self.log.find_idempotent(db, scope.session.id, scope.actor.membership_id, idem)

    async def _command(
        self,
        scope: SessionScope,
        idem: str | None,
        build: Build,
        admissions: tuple[tuple[str, str], ...] = (),
    ) -> Outcome:
        """Run one room command under the room's lock: ``build`` checks the committed
        state and stages events, the unit commits. Only the primary event carries the
        idempotency key, and the log's unique (session, author, key) makes a retry
        store once. The earlier outcome is looked up only when needed (the command was
        refused, or the insert hit the key), so a first send costs no extra query."""
        return await self.log.retrying(lambda: self._command_once(scope, idem, build, admissions))

    async def _command_once(
        self,
        scope: SessionScope,
        idem: str | None,
        build: Build,
        admissions: tuple[tuple[str, str], ...],
    ) -> Outcome:
        sid, me = scope.session.id, scope.actor.membership_id
        try:
            async with self.log.unit(sid) as unit:
                try:
                    extra = await build(unit.state, Stage(unit, me, idem))
                except DomainError:
                    # A retry of a command that already took effect fails the state's
                    # checks ("already requested"): answer with its earlier outcome.
                    earlier = await self._replay(unit.db, scope, idem)
                    if earlier is None:
                        raise
                    return self._replayed(sid, earlier)
        except IntegrityError:
            async with self.log.sessions() as db:
                earlier = await self._replay(db, scope, idem)
            if earlier is None:
                raise
            return self._replayed(sid, earlier)
        last = unit.staged[-1]["seq"] if unit.staged else unit.state.seq
        changed = RoomChanged(sid, tuple(unit.staged), admissions)
        return Outcome(ack={"seq": last, **(extra or {})}, news=[changed])

    @staticmethod
    def _replayed(session_id: str, earlier: dict[str, Any]) -> Outcome:
        # Re-announced: the first broadcast may be what the client missed.
        return Outcome(ack={"seq": earlier["seq"], "duplicate": True}, news=[RoomChanged(session_id, (earlier,))])

    async def chat(self, scope: SessionScope, text: str, idem: str) -> Outcome:
        """Post a message. Raises ``rate_limited`` (with ``retry_after``) past the
        participant's chat limit; a retry of a message already stored still gets its
        earlier outcome, and a refused message never reaches the log."""
        text = text.strip()
        if not text:
            raise invalid("text: a message cannot be empty.")
        # Refused before the lock, so a flood never queues on it. A retry after a lost
        # acknowledgement must not be refused for its own first send: a token spent on
        # a message that turns out to be stored already is given back.
        me = scope.actor.membership_id
        try:
            self.chat_limit.take(me)
        except DomainError:
            async with self.log.sessions() as db:
                earlier = await self._replay(db, scope, idem)
            if earlier is None:
                raise
            return self._replayed(scope.session.id, earlier)

        async def build(state: RoomState, stage: Stage) -> None:
            await self._present(scope, state)
            stage(EventType.CHAT, {"text": text})

        out = await self._command(scope, idem, build)
        if out.ack.get("duplicate"):
            self.chat_limit.refund(me)
        return out

    async def request_floor(self, scope: SessionScope, idem: str | None) -> Outcome:
        me = scope.actor.membership_id

        async def build(state: RoomState, stage: Stage) -> dict[str, Any]:
            await self._present(scope, state)
            if me in state.queue:
                raise conflict("You have already requested the floor.")
            if state.floor and state.floor["membership_id"] == me:
                raise conflict("You have the floor.")
            stage(EventType.FLOOR_REQUEST, {})
            return {"position": len(state.queue) + 1}  # the committed list, plus this request

        return await self._command(scope, idem, build)

    async def withdraw_floor(self, scope: SessionScope, idem: str | None) -> Outcome:
        async def build(state: RoomState, stage: Stage) -> None:
            if scope.actor.membership_id not in state.queue:
                raise conflict("You have not requested the floor.")
            stage(EventType.FLOOR_WITHDRAW, {})

        return await self._command(scope, idem, build)

    async def give_floor(
        self, scope: SessionScope, target: str, idem: str | None
    ) -> Outcome:
        """Chair: give the floor to someone on the list (ending the current speaker)."""

        async def build(state: RoomState, stage: Stage) -> None:
            if target not in state.queue and not state.present_has(target):
                raise not_found("Participant in the room")
            if state.floor is not None:
                stage(EventType.FLOOR_END, {"target": state.floor["membership_id"]}, primary=False)
            stage(EventType.FLOOR_GIVE, {"target": target})

        return await self._command(scope, idem, build)

    async def end_floor(self, scope: SessionScope, idem: str | None) -> Outcome:
        async def build(state: RoomState, stage: Stage) -> None:
            if state.floor is None:
                raise conflict("Nobody has the floor.")
            stage(EventType.FLOOR_END, {"target": state.floor["membership_id"]})

        return await self._command(scope, idem, build)

    # ---- audio decisions (logged; the media hub applies them at the engine) ----------

    async def unmute(self, scope: SessionScope, target: str, may_speak: bool) -> Outcome:
        """Chair: let ``target`` speak on the floor (``media.publish_granted``).
        ``may_speak``: the policy lets the target take the floor in this session."""

        async def build(state: RoomState, stage: Stage) -> None:
            if not state.present_has(target):
                raise not_found("Participant in the room")
            if not may_speak:
                raise DomainError(ErrorCode.FORBIDDEN, "This participant may not take the floor in this session.")
            if target in state.unmuted:
                raise conflict("This participant is already unmuted.")
            stage(EventType.MEDIA_GRANTED, {"target": target})

        return await self._command(scope, None, build)

    async def mute(self, scope: SessionScope, target: str) -> Outcome:
        """Chair: withdraw an unmute (``media.publish_revoked``); their audio stops."""

        async def build(state: RoomState, stage: Stage) -> None:
            if target not in state.unmuted:
                raise conflict("This participant is not unmuted.")
            stage(EventType.MEDIA_REVOKED, {"target": target})

        return await self._command(scope, None, build)

    async def hand_over_booth(self, scope: SessionScope, booth_id: str, language: str) -> Outcome:
        """The booth's active interpreter passes the microphone to the standby: the
        booth row and the logged ``booth.handover`` commit together."""
        async def build(state: RoomState, stage: Stage) -> None:
            after = await booths.hand_over(
                stage.db, scope.visit.id, booth_id, actor_person_id=scope.actor.person_id,
                expected_active=scope.actor.membership_id,
            )
            stage(EventType.BOOTH_HANDOVER, {
                "language": language, "from": scope.actor.membership_id,
                "to": after.active.membership_id if after.active else None,
            })

        return await self._command(scope, None, build)

    async def booth_floor(self, scope: SessionScope, language: str, carries_floor: bool) -> Outcome:
        """The active interpreter switches their booth's channel to the floor, or back."""

        async def build(state: RoomState, stage: Stage) -> None:
            stage(EventType.BOOTH_FLOOR, {"language": language, "carries_floor": carries_floor})

        return await self._command(scope, None, build)

    async def channels_changed(self, session_id: str, opened: set[str], closed: set[str]) -> list[DomainEvent]:
        """Record channels that became heard (``channel.open``) or silent
        (``channel.close``); the server's own events, with no author."""
        async with self.log.unit(session_id) as unit:
            for channel in sorted(opened - unit.state.channels):
                unit.add(EventType.CHANNEL_OPEN, None, {"channel": channel})
            for channel in sorted(closed & unit.state.channels):
                unit.add(EventType.CHANNEL_CLOSE, None, {"channel": channel})
        return [RoomChanged(session_id, tuple(unit.staged))] if unit.staged else []

    async def start_item(
        self, scope: SessionScope, item_id: str, idem: str | None
    ) -> Outcome:
        """Chair: make an agenda item current (ending the one before)."""
        async with self.log.sessions() as db:
            item = await db.get(AgendaItem, item_id)
        if item is None or item.session_id != scope.session.id:
            raise not_found("Agenda item")

        async def build(state: RoomState, stage: Stage) -> None:
            if state.current_item and state.current_item["item_id"] == item_id:
                raise conflict("This item is already current.")
            if state.current_item is not None:
                stage(EventType.ITEM_END, {"item_id": state.current_item["item_id"]}, primary=False)
            stage(EventType.ITEM_START, {"item_id": item_id})

        return await self._command(scope, idem, build)

    async def end_item(self, scope: SessionScope, idem: str | None) -> Outcome:
        async def build(state: RoomState, stage: Stage) -> None:
            if state.current_item is None:
                raise conflict("No agenda item is current.")
            stage(EventType.ITEM_END, {"item_id": state.current_item["item_id"]})

        return await self._command(scope, idem, build)

    async def decide_admission(
        self, scope: SessionScope, target: str, admit: bool, idem: str | None
    ) -> Outcome:
        """Chair: admit or decline someone waiting in the lobby (recorded in the audit log)."""

        async def build(state: RoomState, stage: Stage) -> None:
            if target not in state.lobby:
                raise not_found("Participant in the lobby")
            stage(EventType.LOBBY_ADMIT if admit else EventType.LOBBY_DECLINE, {"target": target})
            await audit.record(
                stage.db,
                "admission.granted" if admit else "admission.declined",
                actor_person_id=scope.actor.person_id,
                visit_id=scope.visit.id,
                subject=target,
                data={"session": scope.session.id},
            )

        # A replayed decision is not sent again to the person (they were told once).
        return await self._command(scope, idem, build, ((target, "admitted" if admit else "declined"),))

    async def items(self, db: AsyncSession, session_id: str) -> list[AgendaItem]:
        rows = await db.execute(
            select(AgendaItem).where(AgendaItem.session_id == session_id).order_by(AgendaItem.position)
        )
        return list(rows.scalars())
