"""The one place that turns committed domain events into Socket.IO emits.

It subscribes to the application's ``EventBus``; services and handlers never call
it. Emits go through python-socketio's client manager, so with Redis they reach
every process.
"""

from __future__ import annotations

from server.access.facts import AccessChanged
from server.core.events import EventBus
from server.evidence.devices import DeviceRevoked
from server.evidence.service import EvidenceShared
from server.media.hub import MediaNews
from server.people.service import LoginsEnded
from server.realtime.names import lobby_name, member_room, person_room, room_name
from server.realtime.server import Realtime
from server.room.maintenance import PresenceClosed
from server.room.service import RoomChanged, RoomSignal
from server.scheduling.service import AgendaChanged


class Emitter:
    def __init__(self, rt: Realtime) -> None:
        self.rt = rt
        self.sio = rt.sio

    def install(self, bus: EventBus) -> None:
        bus.subscribe(RoomChanged, self.room_changed)
        bus.subscribe(PresenceClosed, self.presence_closed)
        bus.subscribe(RoomSignal, self.room_signal)
        bus.subscribe(AccessChanged, self.access_changed)
        bus.subscribe(AgendaChanged, self.agenda_changed)
        bus.subscribe(LoginsEnded, self.logins_ended)
        bus.subscribe(MediaNews, self.media_news)
        bus.subscribe(EvidenceShared, self.evidence_shared)
        bus.subscribe(DeviceRevoked, self.device_revoked)

    async def room_changed(self, change: RoomChanged) -> None:
        """``room.event`` ``{session_id, seq, type, membership_id, payload, at, at_ms}``
        to the room, then ``room.admission`` ``{session_id, status}`` to each decided
        person's lobby."""
        room = room_name(change.session_id)
        for item in change.events:
            await self.sio.emit("room.event", {"session_id": change.session_id, **item}, room=room)
        for membership_id, status in change.admissions:
            await self.sio.emit(
                "room.admission",
                {"session_id": change.session_id, "status": status},
                room=lobby_name(change.session_id, membership_id),
            )

    async def presence_closed(self, closed: PresenceClosed) -> None:
        """Leaves recorded for connections whose process is gone (or a previous run's):
        broadcast like any other ``room.event``."""
        await self.room_changed(RoomChanged(closed.session_id, closed.events))

    async def room_signal(self, signal: RoomSignal) -> None:
        """Ephemeral: ``room.signal`` ``{session_id, type, membership_id, data}``."""
        await self.sio.emit(
            "room.signal",
            {"session_id": signal.session_id, "type": signal.type, "membership_id": signal.membership_id,
             "data": signal.data},
            room=room_name(signal.session_id),
        )

    async def access_changed(self, change: AccessChanged) -> None:
        """Empty the affected rooms on every process; each client is told
        (``room.reset``) to join again, which asks the policy anew."""
        self.rt.drop_scopes(change.visit_id)
        for session_id in change.session_ids:
            await self.sio.emit("room.reset", {"session_id": session_id}, room=room_name(session_id))
            await self.sio.close_room(room_name(session_id))

    async def agenda_changed(self, change: AgendaChanged) -> None:
        """``agenda.changed`` to each member watching the visit, naming only the moved
        sessions they may see."""
        for membership_id, moved in change.audience.items():
            await self.sio.emit(
                "agenda.changed",
                {"visit_id": change.visit_id, "sessions": [m.as_json() for m in moved]},
                room=member_room(change.visit_id, membership_id),
            )

    async def logins_ended(self, ended: LoginsEnded) -> None:
        await self.rt.end_logins(set(ended.login_ids))

    async def media_news(self, news: MediaNews) -> None:
        """``media.offer`` / ``media.state`` to the one connection they concern (the hub
        serves this process's connections only)."""
        sid = self.rt.local_sid(news.conn)
        if sid is not None:
            await self.sio.emit(news.event, news.payload, to=sid)

    async def evidence_shared(self, shared: EvidenceShared) -> None:
        """``evidence.shared`` ``{visit, document, version, session}`` to each recipient's
        sockets watching the visit (``visit.watch``)."""
        payload = {"visit": shared.visit_id, "document": shared.document_id, "version": shared.version_id,
                   "session": shared.session_id}
        for membership_id in shared.membership_ids:
            await self.sio.emit("evidence.shared", payload, room=member_room(shared.visit_id, membership_id))

    async def device_revoked(self, revoked: DeviceRevoked) -> None:
        """``evidence.revoked`` ``{device}`` to every socket of the device's person."""
        await self.sio.emit("evidence.revoked", {"device": revoked.device_id}, room=person_room(revoked.person_id))
