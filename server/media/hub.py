"""The room's audio on this process: who publishes, who listens, what is forwarded.

The hub is the service between the realtime handlers (``server/media/events.py``) and
the media engine (``server/media/engine.py``). For each session room it keeps this
process's publishing and listening connections, and after every change that can alter
the answer (a publish, a floor given or ended, a chair's unmute, a booth's hand-over or
floor switch, a booth re-staffed, a connection gone) it asks the policy
(``server/media/policy.py``) afresh and applies the answer at the engine:

* **forwarding**: a publisher is forwarded only while the policy grants it (the floor's
  holder, the chairs, whom a chair unmuted; a booth's *active* interpreter) and it is not
  coughing; a booth channel that carries the floor forwards nobody of its own;
* **subscriptions**: a listener is subscribed to the floor's granted publishers plus the
  granted publishers of the channel it chose (a booth's standby included, not forwarded,
  so a hand-over only switches forwarding); a listener that asked for video also takes
  the video of those it hears that send some (only the floor takes video: booth channels
  and talk-back are audio only). A change of that set renegotiates it;
* **channels heard**: a channel becoming heard or silent is logged (``channel.open`` /
  ``channel.close``) for the minutes.

What each connection must hear about is returned as ``MediaNews`` (``media.offer``,
``media.state``) for the realtime emitter; the hub never touches the transport.
Signalling is never written to the log. The hub's state is this process's: the
connections it serves (a deployment that scales out pins a session's sockets to one
process for audio; see docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.access.facts import AccessChanged
from server.access.guard import SessionScope, may, resolve_session
from server.access.policy import Action
from server.booths import service as booths
from server.booths.service import BoothsChanged, BoothView
from server.config import Settings
from server.core.clock import utcnow
from server.core.errors import DomainError, ErrorCode, conflict, invalid, not_found, unavailable
from server.core.events import DomainEvent, EventBus
from server.core.ratelimit import TokenBucket
from server.media.engine import MediaEngine, MediaError, MediaUnavailable, offers_video
from server.media.ice import ice_servers_for
from server.media.policy import FLOOR, Asker, BoothSeats, Floor, grant
from server.people.models import Membership, Person
from server.room.service import RoomChanged, RoomService
from server.room.state import EventType, RoomState

log = logging.getLogger("parley.media")

# An interpreter's private line to their booth partner: heard by the partner only,
# never by a listener, never logged.
TALKBACK = "talkback"

# How long a new publication may take to bring its media up (ICE, DTLS), and how
# often the engine is asked meanwhile.
LIVE_WAIT_SECONDS = 30.0
LIVE_POLL_SECONDS = 0.2

# Room events after which the answer may differ.
TRIGGERS = frozenset({
    EventType.FLOOR_GIVE, EventType.FLOOR_END, EventType.MEDIA_GRANTED, EventType.MEDIA_REVOKED,
    EventType.BOOTH_HANDOVER, EventType.BOOTH_FLOOR,
})


@dataclass(frozen=True)
class MediaNews(DomainEvent):
    """Something one connection must hear (``media.offer`` or ``media.state``)."""

    conn: str
    event: str
    payload: dict[str, Any]


@dataclass
class _Publisher:
    key: str  # "p:<conn>" (the microphone), "t:<conn>" (an interpreter's talk-back)
    conn: str
    asker: Asker
    channel: str
    video: bool = False  # its offer carried video (the floor only)
    forwarded: bool = True  # as applied at the engine (a new publisher starts forwarded)
    coughing: bool = False
    live: bool = False  # its media reached the engine: listeners can be subscribed to it


@dataclass
class _Listener:
    key: str
    membership: str
    channel: str
    video: bool = False  # takes the video of the floor publishers it hears
    sub: int = 0
    heard: tuple[str, ...] = ()  # publisher keys of its current subscription


@dataclass
class _Room:
    session_id: str
    visit_id: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    publishers: dict[str, _Publisher] = field(default_factory=dict)  # engine key -> publisher
    listeners: dict[str, _Listener] = field(default_factory=dict)  # conn -> listener
    watchers: dict[str, Asker] = field(default_factory=dict)  # conn -> who (gets media.state)
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # conn -> last media.state
    heard: set[str] = field(default_factory=set)  # channels with someone forwarded
    open: bool = False  # the engine's room exists

    def idle(self) -> bool:
        return not (self.publishers or self.listeners or self.watchers)


@dataclass(frozen=True)
class _Facts:
    """What the policy needs, read once per decision."""

    state: RoomState
    booths: list[BoothView]

    @property
    def floor(self) -> Floor:
        holder = self.state.floor["membership_id"] if self.state.floor else None
        return Floor(holder, frozenset(self.state.unmuted))

    @property
    def seats(self) -> list[BoothSeats]:
        return [
            BoothSeats(b.language, tuple(i.membership_id for i in b.interpreters),
                       b.active.membership_id if b.active else None)
            for b in self.booths
        ]

    def carries_floor(self, language: str) -> bool:
        """Does this booth's channel carry the floor? The active interpreter's switch
        for this speaker, else whether the speaker's first language is the booth's."""
        if language in self.state.booth_floor:
            return self.state.booth_floor[language]
        if self.state.floor is None:
            return False
        spoken = (self.state.people.get(self.state.floor["membership_id"]) or {}).get("language")
        return bool(spoken) and str(spoken).split("-")[0].lower() == language.split("-")[0].lower()

    def booth_of(self, membership_id: str) -> BoothView | None:
        return booth_of(self.booths, membership_id)

    def channel_ids(self) -> list[str]:
        return [FLOOR, *(b.language for b in self.booths)]


def booth_of(found: Iterable[BoothView], membership_id: str) -> BoothView | None:
    """The booth this interpreter serves in, if any."""
    return next((b for b in found if any(i.membership_id == membership_id for i in b.interpreters)), None)


def _key(conn: str, channel: str | None) -> str:
    """The engine key of a connection's publication: its microphone, or its talk-back."""
    return f"t:{conn}" if channel == TALKBACK else f"p:{conn}"


def asker_of(scope: SessionScope) -> Asker:
    return Asker(
        scope.actor.membership_id, scope.actor.role,
        may_speak=may(scope, Action.FLOOR_REQUEST), is_chair=may(scope, Action.FLOOR_CHAIR),
    )


def _engine_error(exc: Exception) -> DomainError:
    if isinstance(exc, MediaUnavailable):
        return unavailable(2.0, "The audio server is not answering; try again shortly.")
    return invalid(str(exc)[:300] or "The audio server refused this request.")


class MediaHub:
    def __init__(
        self,
        engine: MediaEngine,
        sessions: async_sessionmaker[AsyncSession],
        rooms: RoomService,
        settings: Settings,
        bus: EventBus,
        *,
        ceiling: int | None = None,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.sessions = sessions
        self.rooms = rooms
        self.settings = settings
        self.ceiling = ceiling
        self._rooms: dict[str, _Room] = {}
        self._watches: set[asyncio.Task[None]] = set()
        self._dirty: set[str] = set()  # rooms whose refresh is due (one task per room at a time)
        # Each negotiation costs the engine real work, and a script could send thousands a
        # second: per connection, a burst then a steady rate well above what a page needs
        # (a publish, a listen, an answer per offer; a few candidates per connection).
        self.negotiations = TokenBucket(rate=2.0, burst=12.0, message="Too many audio requests; slow down.")
        self.candidates = TokenBucket(rate=20.0, burst=60.0, message="Too many ICE candidates; slow down.")

    def install(self) -> None:
        """Follow the room, booth and access news on the bus."""
        bus = self.bus
        bus.subscribe(RoomChanged, self.room_changed)
        bus.subscribe(BoothsChanged, self.booths_changed)
        bus.subscribe(AccessChanged, self.access_changed)

    # ---- facts ------------------------------------------------------------------------

    async def _facts(self, room: _Room) -> _Facts:
        async with self.sessions() as db:
            state = await self.rooms.log.state(db, room.session_id)
            found = await booths.list_booths(db, room.visit_id)
        return _Facts(state, found)

    def _room(self, scope: SessionScope) -> _Room:
        room = self._rooms.get(scope.session.id)
        if room is None:
            room = self._rooms[scope.session.id] = _Room(scope.session.id, scope.visit.id)
        return room

    @staticmethod
    def _joined(facts: _Facts, scope: SessionScope, conn: str) -> None:
        if conn not in facts.state.connections.get(scope.actor.membership_id, set()):
            raise conflict("Join the room first.")

    async def _engine_room(self, room: _Room) -> None:
        if not room.open:
            try:
                await self.engine.open_room(room.session_id)
            except (MediaError, MediaUnavailable) as exc:
                raise _engine_error(exc) from exc
            room.open = True

    # ---- requests -----------------------------------------------------------------------

    async def info(self, scope: SessionScope, conn: str) -> dict[str, Any]:
        """The engine, the ICE servers for this participant and the media state; from
        now on this connection is sent ``media.state`` when it changes."""
        room = self._room(scope)
        async with room.lock:
            facts = await self._facts(room)
            self._joined(facts, scope, conn)
            room.watchers[conn] = asker_of(scope)
            state = self._state_for(room, facts, conn)
            room.sent[conn] = state
        servers = ice_servers_for(
            self.settings.ice_servers, self.settings.turn_secret, scope.actor.membership_id, utcnow()
        )
        return {"engine": self.engine.name, "ceiling": self.ceiling, "ice_servers": servers, **state}

    async def publish(self, scope: SessionScope, conn: str, channel: str, sdp: str) -> dict[str, Any]:
        """Publish this connection's microphone (and camera, if the offer has video)
        into ``channel`` if the policy grants it (``forbidden`` with the reason
        otherwise). Video goes on the floor only: an offer with video into a booth
        channel or the talk-back line is refused (``invalid``)."""
        self.negotiations.take(conn)
        room = self._room(scope)
        async with room.lock:
            facts = await self._facts(room)
            self._joined(facts, scope, conn)
            asker = asker_of(scope)
            if channel == TALKBACK:
                if facts.booth_of(asker.membership_id) is None:
                    raise DomainError(ErrorCode.FORBIDDEN, "Only a booth's interpreters have a talk-back line.")
            elif channel not in facts.channel_ids():
                raise invalid(f"channel: no channel {channel[:40]!r} in this session.")
            else:
                grant(asker, channel, facts.floor, facts.seats)  # forbidden: nothing reaches the engine
            video = offers_video(sdp)
            if video and channel != FLOOR:
                raise invalid("sdp: video is published on the floor only; interpretation channels and the "
                              "talk-back line are audio only (offer audio alone).")
            await self._engine_room(room)
            key = _key(conn, channel)
            try:
                answer = await self.engine.publish(room.session_id, key, channel, sdp)
            except (MediaError, MediaUnavailable) as exc:
                raise _engine_error(exc) from exc
            room.publishers[key] = _Publisher(key, conn, asker, channel, video)
            room.watchers.setdefault(conn, asker)
            news = await self._apply(room, facts)
            forwarded = room.publishers[key].forwarded
        await self.bus.publish(*news)
        self._background(self._until_live(room, key))
        return {"sdp": answer, "channel": channel, "forwarded": forwarded, "video": video}

    async def _until_live(self, room: _Room, key: str) -> None:
        """Listeners are subscribed to a publisher once its media reaches the engine
        (an engine offers only streams it receives): wait for that, then re-decide."""
        deadline = asyncio.get_running_loop().time() + LIVE_WAIT_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(LIVE_POLL_SECONDS)
            pub = room.publishers.get(key)
            if pub is None or self._rooms.get(room.session_id) is not room:
                return  # replaced or gone meanwhile
            try:
                up = key in await self.engine.live(room.session_id)
            except (MediaError, MediaUnavailable):
                continue
            if up:
                async with room.lock:
                    if room.publishers.get(key) is not pub:
                        return
                    pub.live = True
                    news = await self._apply(room, await self._facts(room))
                await self.bus.publish(*news)
                return
        log.info("a publisher in %s never went live", room.session_id)

    async def unpublish(self, scope: SessionScope, conn: str, channel: str | None = None) -> None:
        """Stop the microphone, or with ``channel="talkback"`` the talk-back line only."""
        room = self._room(scope)
        async with room.lock:
            found = room.publishers.pop(_key(conn, channel), None)
            if found is None:
                return
            await self._quietly(self.engine.unpublish(room.session_id, found.key))
            news = await self._apply(room, await self._facts(room))
        await self.bus.publish(*news)

    async def listen(self, scope: SessionScope, conn: str, channel: str, video: bool = False) -> dict[str, Any]:
        """Hear the floor plus ``channel`` (and, with ``video``, see the floor speakers
        that send video): the engine's offer, or ``sdp: None`` while nobody publishes on
        what this listener hears (a ``media.offer`` follows). Called again with the same
        channel and another ``video``, it renegotiates like a change of channel."""
        self.negotiations.take(conn)
        room = self._room(scope)
        async with room.lock:
            facts = await self._facts(room)
            self._joined(facts, scope, conn)
            if channel not in facts.channel_ids():
                raise invalid(f"channel: no channel {channel[:40]!r} in this session.")
            await self._engine_room(room)
            ear = room.listeners.get(conn)
            if ear is None:
                ear = room.listeners[conn] = _Listener(f"l:{conn}", scope.actor.membership_id, channel)
            ear.channel = channel
            ear.video = video
            room.watchers.setdefault(conn, asker_of(scope))
            offer = await self._resubscribe(room, facts, conn, ear, force=True)
            news = await self._apply(room, facts)
        await self.bus.publish(*news)
        return offer

    async def answer(self, scope: SessionScope, conn: str, sub: int, sdp: str) -> None:
        self.negotiations.take(conn)
        room = self._room(scope)
        async with room.lock:
            ear = room.listeners.get(conn)
            if ear is None or ear.sub != sub or not ear.heard:
                raise conflict("This is not the latest offer; answer the newest one.")
            try:
                await self.engine.start(room.session_id, ear.key, sdp)
            except (MediaError, MediaUnavailable) as exc:
                raise _engine_error(exc) from exc

    async def candidate(self, scope: SessionScope, conn: str, pc: str, candidate: dict[str, Any] | None) -> None:
        self.candidates.take(conn)
        room = self._room(scope)
        async with room.lock:
            found = room.listeners.get(conn) if pc == "listen" else room.publishers.get(_key(conn, pc))
            if found is None or (pc == "listen" and not room.listeners[conn].heard):
                raise conflict("No such peer connection.")
            try:
                await self.engine.trickle(room.session_id, found.key, candidate)
            except (MediaError, MediaUnavailable) as exc:
                raise _engine_error(exc) from exc

    async def stop(self, scope: SessionScope, conn: str) -> None:
        room = self._room(scope)
        async with room.lock:
            ear = room.listeners.pop(conn, None)
            if ear is not None and ear.heard:
                await self._quietly(self.engine.unsubscribe(room.session_id, ear.key))

    async def cough(self, scope: SessionScope, conn: str, on: bool) -> None:
        self.candidates.take(conn)  # a held button: cheap, but not unbounded
        room = self._room(scope)
        async with room.lock:
            found = room.publishers.get(_key(conn, None))
            if found is None:
                raise conflict("You are not publishing.")
            found.coughing = on
            news = await self._apply(room, await self._facts(room))
        await self.bus.publish(*news)

    async def booth_for(self, scope: SessionScope) -> BoothView:
        """The booth this participant interprets in (``forbidden`` for anyone else)."""
        async with self.sessions() as db:
            booth = booth_of(await booths.list_booths(db, scope.visit.id), scope.actor.membership_id)
        if booth is None:
            raise DomainError(ErrorCode.FORBIDDEN, "Only a booth's interpreters may do this.")
        return booth

    async def may_take_floor(self, scope: SessionScope, target: str) -> bool:
        """Does the policy let ``target`` (a membership of this visit) take the floor in
        this session? ``not_found`` for someone not in the visit."""
        async with self.sessions() as db:
            membership = await db.get(Membership, target)
            if membership is None or membership.visit_id != scope.visit.id:
                raise not_found("Participant")
            person = await db.get(Person, membership.person_id)
            if person is None:
                raise not_found("Participant")
            try:
                theirs = await resolve_session(db, person, scope.session.id, visit_id=scope.visit.id)
            except DomainError:
                return False
        return may(theirs, Action.FLOOR_REQUEST)

    # ---- connections gone, news ---------------------------------------------------------------

    async def drop(self, conn: str, session_ids: Iterable[str] | None = None) -> None:
        """A connection left (its rooms, or the listed ones): its publisher and listener
        go, and what others hear follows."""
        for session_id in list(session_ids if session_ids is not None else self._rooms):
            room = self._rooms.get(session_id)
            if room is None:
                continue
            news: list[DomainEvent] = []
            async with room.lock:
                pubs = [room.publishers.pop(k) for k in (_key(conn, None), _key(conn, TALKBACK))
                        if k in room.publishers]
                ear = room.listeners.pop(conn, None)
                room.watchers.pop(conn, None)
                room.sent.pop(conn, None)
                for pub in pubs:
                    await self._quietly(self.engine.unpublish(session_id, pub.key))
                if ear is not None and ear.heard:
                    await self._quietly(self.engine.unsubscribe(session_id, ear.key))
                if pubs:
                    news = await self._apply(room, await self._facts(room))
                if room.idle():
                    await self._close(room)
            await self.bus.publish(*news)

    async def _close(self, room: _Room) -> None:
        self._rooms.pop(room.session_id, None)
        if room.open:
            await self._quietly(self.engine.close_room(room.session_id))
        if room.heard:
            await self.bus.publish(*await self.rooms.channels_changed(room.session_id, set(), set(room.heard)))

    async def refresh(self, session_id: str) -> None:
        room = self._rooms.get(session_id)
        if room is None:
            return
        async with room.lock:
            news = await self._apply(room, await self._facts(room))
        await self.bus.publish(*news)

    def _later(self, session_id: str) -> None:
        """Refresh a room in the background: the command that changed the floor is
        acknowledged at once, and a burst of changes costs one pass (re-subscribing
        hundreds of listeners takes the engine a while)."""
        if session_id in self._dirty:
            return
        self._dirty.add(session_id)

        async def run() -> None:
            await asyncio.sleep(0)  # let the burst that scheduled this finish
            self._dirty.discard(session_id)
            try:
                await self.refresh(session_id)
            except Exception:
                log.warning("media refresh failed in %s", session_id, exc_info=True)

        self._background(run())

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside the requests, kept until done (cancelled by ``aclose``)."""
        task = asyncio.create_task(work)
        self._watches.add(task)
        task.add_done_callback(self._watches.discard)

    async def room_changed(self, change: RoomChanged) -> None:
        if change.session_id in self._rooms and any(e.get("type") in TRIGGERS for e in change.events):
            self._later(change.session_id)

    async def booths_changed(self, change: BoothsChanged) -> None:
        for room in list(self._rooms.values()):
            if room.visit_id == change.visit_id:
                self._later(room.session_id)

    async def access_changed(self, change: AccessChanged) -> None:
        """The rules changed (roles, chairs, access): publications are dropped and must
        be asked for again (the room is reset and its clients re-join and re-publish
        under the new rules); listeners keep listening."""
        for session_id in change.session_ids:
            room = self._rooms.get(session_id)
            if room is None:
                continue
            async with room.lock:
                for pub in room.publishers.values():
                    await self._quietly(self.engine.unpublish(session_id, pub.key))
                room.publishers.clear()
                news = await self._apply(room, await self._facts(room))
            await self.bus.publish(*news)

    async def aclose(self) -> None:
        for watch in list(self._watches):
            watch.cancel()
        self._rooms.clear()
        await self.engine.aclose()

    # ---- the decision ----------------------------------------------------------------------

    def _eligible(self, facts: _Facts, pub: _Publisher) -> tuple[bool, bool]:
        """(subscribed to by those who hear its channel, forwarded)."""
        if pub.channel == TALKBACK:  # heard by the booth partner only (see _heard_by)
            return facts.booth_of(pub.asker.membership_id) is not None, True
        try:
            found = grant(pub.asker, pub.channel, facts.floor, facts.seats)
        except DomainError:
            return False, False
        if pub.channel != FLOOR and facts.carries_floor(pub.channel):
            return False, False
        return True, found.forwarded and not pub.coughing

    def _heard_by(self, room: _Room, facts: _Facts, ear: _Listener) -> tuple[str, ...]:
        booth = facts.booth_of(ear.membership)
        partners = {i.membership_id for i in booth.interpreters} - {ear.membership} if booth else set()
        keys = [
            pub.key for pub in room.publishers.values()
            if pub.live and self._eligible(facts, pub)[0] and (
                pub.channel in (FLOOR, ear.channel) if pub.channel != TALKBACK
                else pub.asker.membership_id in partners
            )
        ]
        return tuple(sorted(keys))

    async def _resubscribe(
        self, room: _Room, facts: _Facts, conn: str, ear: _Listener, *, force: bool = False
    ) -> dict[str, Any]:
        """Bring the listener's subscription to what it hears; the offer payload."""
        heard = self._heard_by(room, facts, ear)
        if heard == ear.heard and not force:
            return {}
        channel_of = {pub.key: pub.channel for pub in room.publishers.values()}
        if not heard:
            if ear.heard:
                await self._quietly(self.engine.unsubscribe(room.session_id, ear.key))
            ear.heard = ()
            ear.sub += 1
            return {"channel": ear.channel, "video": ear.video, "sub": ear.sub, "sdp": None, "fresh": True,
                    "tracks": {}}
        try:
            offered = await self.engine.subscribe(room.session_id, ear.key, heard, video=ear.video)
        except (MediaError, MediaUnavailable) as exc:
            raise _engine_error(exc) from exc
        ear.heard = heard
        ear.sub += 1
        tracks = {mid: channel_of.get(key, FLOOR) for mid, key in offered.tracks.items()}
        return {"channel": ear.channel, "video": ear.video, "sub": ear.sub, "sdp": offered.offer,
                "fresh": offered.fresh, "tracks": tracks}

    async def _apply(self, room: _Room, facts: _Facts) -> list[DomainEvent]:
        """Apply the policy's answer at the engine; the news it makes."""
        news: list[DomainEvent] = []
        heard: set[str] = set()
        for pub in room.publishers.values():
            _, forwarded = self._eligible(facts, pub)
            if forwarded != pub.forwarded:
                try:
                    await self.engine.set_forwarding(room.session_id, pub.key, forwarded)
                    pub.forwarded = forwarded
                except (MediaError, MediaUnavailable):
                    log.warning("forwarding change failed in %s", room.session_id, exc_info=True)
            if pub.forwarded and pub.live and pub.channel != TALKBACK:
                heard.add(pub.channel)
        if FLOOR in heard:
            heard |= {b.language for b in facts.booths if facts.carries_floor(b.language)}
        for conn, ear in room.listeners.items():
            try:
                offer = await self._resubscribe(room, facts, conn, ear)
            except DomainError:
                log.warning("re-subscription failed in %s", room.session_id, exc_info=True)
                continue
            if offer:
                news.append(MediaNews(conn, "media.offer", {"session_id": room.session_id, **offer}))
        if heard != room.heard:
            opened, closed = heard - room.heard, room.heard - heard
            room.heard = heard
            try:
                news += await self.rooms.channels_changed(room.session_id, opened, closed)
            except Exception:
                log.warning("could not record channels in %s", room.session_id, exc_info=True)
        for conn in room.watchers:
            state = self._state_for(room, facts, conn)
            if room.sent.get(conn) != state:
                room.sent[conn] = state
                news.append(MediaNews(conn, "media.state", state))
        return news

    def _state_for(self, room: _Room, facts: _Facts, conn: str) -> dict[str, Any]:
        asker = room.watchers.get(conn)
        me = asker.membership_id if asker else None
        channels = [{"id": FLOOR, "name": "Floor", "live": FLOOR in room.heard, "carries_floor": False}]
        channels += [
            {"id": b.language, "name": b.language_name, "live": b.language in room.heard,
             "carries_floor": facts.carries_floor(b.language)}
            for b in facts.booths
        ]
        may_publish: list[str] = []
        reason: str | None = None
        if asker is not None:
            for channel in facts.channel_ids():
                try:
                    grant(asker, channel, facts.floor, facts.seats)
                    may_publish.append(channel)
                except DomainError as err:
                    if channel == FLOOR:
                        reason = err.message
        booth = facts.booth_of(me) if me else None
        pub = room.publishers.get(_key(conn, None))
        ear = room.listeners.get(conn)
        return {
            "session_id": room.session_id,
            "channels": channels,
            "may_publish": may_publish,
            "publish_reason": None if may_publish else reason,
            "booth": None if booth is None else {
                "language": booth.language,
                "active": booth.active is not None and booth.active.membership_id == me,
                "standby": next((i.membership_id for i in booth.interpreters if i.membership_id != me), None),
                "listen_sources": [FLOOR, *(b.language for b in facts.booths if b.language != booth.language)],
                "carries_floor": facts.carries_floor(booth.language),
            },
            "publishing": None if pub is None else {"channel": pub.channel, "forwarded": pub.forwarded},
            "talkback": _key(conn, TALKBACK) in room.publishers,
            "listening": ear.channel if ear else None,
        }

    @staticmethod
    async def _quietly(step: Any) -> None:
        """An engine clean-up that may fail (the engine restarted, the peer is gone)."""
        try:
            await step
        except (MediaError, MediaUnavailable):
            log.info("media clean-up step failed", exc_info=True)

