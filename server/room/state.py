"""Room state as a fold over the session event log.

The log is the only truth; this module turns events into the state every client
shows. client_web/js/room_state.js applies the same rules in the browser, and
tests/room/test_state.py checks the two agree on a recorded log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from server.core.clock import iso_z

# Chat messages a state keeps: what a join or a sync snapshot carries. Older ones stay
# in the log and load on demand (``chat.history``); without a window one flood made
# every join carry megabytes and every cached state grow for ever.
CHAT_WINDOW = 100


class EventType(StrEnum):
    JOIN = "join"
    LEAVE = "leave"
    LOBBY_WAIT = "lobby.wait"
    LOBBY_ADMIT = "lobby.admit"
    LOBBY_DECLINE = "lobby.decline"
    ITEM_START = "item.start"
    ITEM_END = "item.end"
    FLOOR_REQUEST = "floor.request"
    FLOOR_WITHDRAW = "floor.withdraw"
    FLOOR_GIVE = "floor.give"
    FLOOR_END = "floor.end"
    CHAT = "chat"
    # The room's audio decisions (the minutes need them; signalling is never logged).
    MEDIA_GRANTED = "media.publish_granted"
    MEDIA_REVOKED = "media.publish_revoked"
    BOOTH_HANDOVER = "booth.handover"
    BOOTH_FLOOR = "booth.floor"
    CHANNEL_OPEN = "channel.open"
    CHANNEL_CLOSE = "channel.close"


@dataclass
class RoomState:
    seq: int = 0
    people: dict[str, dict[str, Any]] = field(default_factory=dict)  # membership -> public info
    connections: dict[str, set[str]] = field(default_factory=dict)  # membership -> connection ids
    lobby: dict[str, str] = field(default_factory=dict)  # membership -> waiting since
    admitted: set[str] = field(default_factory=set)
    current_item: dict[str, str] | None = None  # {"item_id", "since"}
    items: dict[str, dict[str, str | None]] = field(default_factory=dict)  # id -> started/ended
    queue: list[str] = field(default_factory=list)
    floor: dict[str, str] | None = None  # {"membership_id", "since"}
    chat: list[dict[str, Any]] = field(default_factory=list)  # the last CHAT_WINDOW messages
    chat_more: bool = False  # older messages than those in ``chat`` exist
    unmuted: set[str] = field(default_factory=set)  # whom a chair let speak on the floor
    booth_floor: dict[str, bool] = field(default_factory=dict)  # booth language -> carries the floor
    channels: set[str] = field(default_factory=set)  # channels someone is heard on now

    @property
    def present(self) -> list[str]:
        return [m for m, conns in self.connections.items() if conns]

    def apply(self, event: dict[str, Any]) -> None:
        """Apply one serialised event (see ``serialize_event``); events arrive in seq order."""
        kind = event["type"]
        who: str | None = event.get("membership_id")
        data: dict[str, Any] = event.get("payload") or {}
        at: str = event["at"]
        self.seq = event["seq"]
        if "person" in data and who:
            self.people[who] = data["person"]
        if kind == EventType.JOIN and who:
            self.connections.setdefault(who, set()).add(data.get("conn", ""))
            self.lobby.pop(who, None)
        elif kind == EventType.LEAVE and who:
            # A request for the floor survives a reload or a dropped connection.
            self.connections.get(who, set()).discard(data.get("conn", ""))
        elif kind == EventType.LOBBY_WAIT and who:
            self.lobby.setdefault(who, at)
        elif kind == EventType.LOBBY_ADMIT:
            target = data["target"]
            self.lobby.pop(target, None)
            self.admitted.add(target)
        elif kind == EventType.LOBBY_DECLINE:
            self.lobby.pop(data["target"], None)
        elif kind == EventType.ITEM_START:
            self.current_item = {"item_id": data["item_id"], "since": at}
            self.items.setdefault(data["item_id"], {"started": at, "ended": None})["ended"] = None
        elif kind == EventType.ITEM_END:
            if self.current_item:
                self.items.setdefault(self.current_item["item_id"], {"started": at})["ended"] = at
            self.current_item = None
        elif kind == EventType.FLOOR_REQUEST and who:
            if who not in self.queue:
                self.queue.append(who)
        elif kind == EventType.FLOOR_WITHDRAW and who:
            self._drop_request(who)
        elif kind == EventType.FLOOR_GIVE:
            target = data["target"]
            self._drop_request(target)
            self.floor = {"membership_id": target, "since": at}
            self.booth_floor.clear()  # an interpreter's switch holds for one speaker
        elif kind == EventType.FLOOR_END:
            self.floor = None
            self.booth_floor.clear()
        elif kind == EventType.MEDIA_GRANTED:
            self.unmuted.add(data["target"])
        elif kind == EventType.MEDIA_REVOKED:
            self.unmuted.discard(data["target"])
        elif kind == EventType.BOOTH_FLOOR:
            self.booth_floor[data["language"]] = bool(data["carries_floor"])
        elif kind == EventType.CHANNEL_OPEN:
            self.channels.add(data["channel"])
        elif kind == EventType.CHANNEL_CLOSE:
            self.channels.discard(data["channel"])
        elif kind == EventType.CHAT and who:
            self.chat.append({"seq": event["seq"], "membership_id": who, "text": data["text"], "at": at})
            if len(self.chat) > CHAT_WINDOW:
                del self.chat[: len(self.chat) - CHAT_WINDOW]
                self.chat_more = True

    def present_has(self, who: str) -> bool:
        return bool(self.connections.get(who))

    def _drop_request(self, who: str) -> None:
        if who in self.queue:
            self.queue.remove(who)

    def snapshot(self) -> dict[str, Any]:
        """The JSON form sent to clients.

        ``connections`` (already public in join/leave events) lets a client that
        starts from a snapshot tell whether a later ``leave`` empties someone's
        presence, exactly as this fold does. It is a copy: an acknowledgement carrying
        it is serialised only after other commands may have changed this state."""
        return {
            "seq": self.seq,
            "people": dict(self.people),
            "present": sorted(self.present),
            "connections": {m: sorted(c) for m, c in self.connections.items() if c},
            "lobby": [{"membership_id": m, "since": s} for m, s in self.lobby.items()],
            "current_item": dict(self.current_item) if self.current_item else None,
            "items": {i: dict(times) for i, times in self.items.items()},
            "queue": list(self.queue),
            "floor": dict(self.floor) if self.floor else None,
            "chat": list(self.chat),
            "chat_more": self.chat_more,
            "unmuted": sorted(self.unmuted),
            "booth_floor": dict(self.booth_floor),
            "channels": sorted(self.channels),
        }


def serialize_event(
    *,
    seq: int,
    type_: str,
    membership_id: str | None,
    payload: dict[str, Any],
    created_at: datetime,
) -> dict[str, Any]:
    return {
        "seq": seq,
        "type": type_,
        "membership_id": membership_id,
        "payload": payload,
        "at": iso_z(created_at),
        "at_ms": int(created_at.timestamp() * 1000),
    }
