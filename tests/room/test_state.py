"""The room state fold: each event's rule, snapshots, and properties of any valid log."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from server.room.state import CHAT_WINDOW, EventType, RoomState, serialize_event

T0 = datetime(2026, 3, 29, 0, 59, 58, 250000, tzinfo=UTC)  # across the EU DST change
PEOPLE = ["m-chair", "m-expert", "m-delegate", "m-observer"]


class Log:
    """Builds serialised events with increasing seq and time."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, type_: str, who: str | None = None, **payload: Any) -> dict[str, Any]:
        seq = len(self.events) + 1
        event = serialize_event(
            seq=seq, type_=str(type_), membership_id=who, payload=payload,
            created_at=T0 + timedelta(seconds=seq),
        )
        self.events.append(event)
        return event

    def join(self, who: str, conn: str) -> dict[str, Any]:
        return self.add(EventType.JOIN, who, person=person(who), conn=conn)


def person(who: str) -> dict[str, str | None]:
    return {"membership_id": who, "name": who.title(), "role": "expert", "delegation": None}


def fold(events: list[dict[str, Any]]) -> RoomState:
    state = RoomState()
    for event in events:
        state.apply(event)
    return state


def test_serialized_events_carry_utc_times() -> None:
    event = serialize_event(seq=7, type_="chat", membership_id="m", payload={"text": "hi"}, created_at=T0)
    assert event == {
        "seq": 7, "type": "chat", "membership_id": "m", "payload": {"text": "hi"},
        "at": "2026-03-29T00:59:58Z", "at_ms": 1774745998250,
    }
    local = T0.astimezone(datetime.now().astimezone().tzinfo)
    assert serialize_event(seq=1, type_="x", membership_id=None, payload={}, created_at=local)["at"] == event["at"]


def test_empty_state() -> None:
    assert RoomState().snapshot() == {
        "seq": 0, "people": {}, "present": [], "connections": {}, "lobby": [], "current_item": None,
        "items": {}, "queue": [], "floor": None, "chat": [], "chat_more": False,
        "unmuted": [], "booth_floor": {}, "channels": [],
    }


def test_presence_counts_connections() -> None:
    log = Log()
    log.join("m-expert", "c1")
    log.join("m-expert", "c2")  # a second tab
    log.join("m-chair", "c3")
    state = fold(log.events)
    assert state.present == ["m-expert", "m-chair"]
    assert state.people["m-expert"] == person("m-expert")
    state.apply(log.add(EventType.LEAVE, "m-expert", conn="c1"))
    assert state.present_has("m-expert")
    state.apply(log.add(EventType.LEAVE, "m-expert", conn="c2"))
    assert not state.present_has("m-expert") and state.present == ["m-chair"]
    # Who someone is stays known after they leave (the chat still names them).
    assert "m-expert" in state.people
    # A leave for a connection never seen changes nothing.
    state.apply(log.add(EventType.LEAVE, "m-delegate", conn="c9"))
    assert state.present == ["m-chair"]
    assert state.snapshot()["connections"] == {"m-chair": ["c3"]}


def test_speakers_list() -> None:
    log = Log()
    for who, conn in [("m-chair", "c0"), ("m-expert", "c1"), ("m-delegate", "c2")]:
        log.join(who, conn)
    log.add(EventType.FLOOR_REQUEST, "m-expert")
    log.add(EventType.FLOOR_REQUEST, "m-delegate")
    log.add(EventType.FLOOR_REQUEST, "m-expert")  # already listed: keeps its place
    state = fold(log.events)
    assert state.queue == ["m-expert", "m-delegate"]

    state.apply(give := log.add(EventType.FLOOR_GIVE, "m-chair", target="m-expert"))
    assert state.floor == {"membership_id": "m-expert", "since": give["at"]}
    assert state.queue == ["m-delegate"]
    # A request survives a reload or a dropped connection.
    state.apply(log.add(EventType.LEAVE, "m-delegate", conn="c2"))
    assert state.queue == ["m-delegate"]
    state.apply(log.add(EventType.FLOOR_END, "m-chair", target="m-expert"))
    assert state.floor is None
    state.apply(log.add(EventType.FLOOR_WITHDRAW, "m-delegate"))
    assert state.queue == []
    state.apply(log.add(EventType.FLOOR_WITHDRAW, "m-delegate"))  # nothing to withdraw
    # The chair may give the floor to someone who never asked.
    state.apply(log.add(EventType.FLOOR_GIVE, "m-chair", target="m-chair"))
    assert state.floor is not None and state.floor["membership_id"] == "m-chair" and state.queue == []


def test_agenda_items() -> None:
    log = Log()
    one = log.add(EventType.ITEM_START, "m-chair", item_id="i1")
    state = fold(log.events)
    assert state.current_item == {"item_id": "i1", "since": one["at"]}
    assert state.items == {"i1": {"started": one["at"], "ended": None}}
    end = log.add(EventType.ITEM_END, "m-chair", item_id="i1")
    two = log.add(EventType.ITEM_START, "m-chair", item_id="i2")
    for event in (end, two):
        state.apply(event)
    assert state.current_item == {"item_id": "i2", "since": two["at"]}
    assert state.items["i1"] == {"started": one["at"], "ended": end["at"]}
    # Coming back to an item keeps when it first started and reopens it.
    state.apply(log.add(EventType.ITEM_END, "m-chair", item_id="i2"))
    state.apply(log.add(EventType.ITEM_START, "m-chair", item_id="i1"))
    assert state.items["i1"] == {"started": one["at"], "ended": None}
    state.apply(last := log.add(EventType.ITEM_END, "m-chair", item_id="i1"))
    assert state.current_item is None and state.items["i1"]["ended"] == last["at"]
    state.apply(log.add(EventType.ITEM_END, "m-chair"))  # nothing current: no change
    assert state.current_item is None and set(state.items) == {"i1", "i2"}


def test_lobby() -> None:
    log = Log()
    first = log.add(EventType.LOBBY_WAIT, "m-delegate", person=person("m-delegate"))
    log.add(EventType.LOBBY_WAIT, "m-expert", person=person("m-expert"))
    log.add(EventType.LOBBY_WAIT, "m-delegate", person=person("m-delegate"))  # asks again
    state = fold(log.events)
    assert state.snapshot()["lobby"] == [
        {"membership_id": "m-delegate", "since": first["at"]},
        {"membership_id": "m-expert", "since": state.lobby["m-expert"]},
    ]
    assert "m-delegate" in state.people and state.present == []
    state.apply(log.add(EventType.LOBBY_ADMIT, "m-chair", target="m-delegate"))
    state.apply(log.add(EventType.LOBBY_DECLINE, "m-chair", target="m-expert"))
    assert state.lobby == {} and state.admitted == {"m-delegate"}
    state.apply(log.join("m-delegate", "c1"))
    assert state.present == ["m-delegate"]
    # Joining directly (no admission needed) also clears a stale lobby entry.
    state.apply(log.add(EventType.LOBBY_WAIT, "m-observer"))
    state.apply(log.join("m-observer", "c2"))
    assert state.lobby == {} and "m-observer" not in state.admitted


def test_chat_keeps_author_seq_and_time() -> None:
    log = Log()
    log.join("m-expert", "c1")
    said = log.add(EventType.CHAT, "m-expert", text="Good morning")
    state = fold(log.events)
    assert state.chat == [{"seq": 2, "membership_id": "m-expert", "text": "Good morning", "at": said["at"]}]
    assert state.seq == 2


def test_chat_keeps_a_window_of_the_latest_messages() -> None:
    """Thousands of messages folded: the state (cached per process, sent with every
    join) keeps the last CHAT_WINDOW, in order, and says older ones exist."""
    log = Log()
    log.join("m-expert", "c1")
    state = fold(log.events)
    for n in range(CHAT_WINDOW):
        state.apply(log.add(EventType.CHAT, "m-expert", text=f"m{n}"))
    assert len(state.chat) == CHAT_WINDOW and state.chat_more is False
    for n in range(CHAT_WINDOW, 5000):
        state.apply(log.add(EventType.CHAT, "m-expert", text=f"m{n}"))
        assert len(state.chat) <= CHAT_WINDOW
    snap = state.snapshot()
    assert [c["text"] for c in snap["chat"]] == [f"m{n}" for n in range(5000 - CHAT_WINDOW, 5000)]
    assert [c["seq"] for c in snap["chat"]] == list(range(state.seq - CHAT_WINDOW + 1, state.seq + 1))
    assert snap["chat_more"] is True
    # Other events leave the window alone.
    state.apply(log.add(EventType.FLOOR_REQUEST, "m-expert"))
    assert state.snapshot()["chat"] == snap["chat"]


def test_audio_decisions() -> None:
    """A chair's unmutes last until muted; an interpreter's floor switch holds for the
    current speaker; channels heard open and close."""
    log = Log()
    log.add(EventType.MEDIA_GRANTED, "m-chair", target="m-expert")
    log.add(EventType.MEDIA_GRANTED, "m-chair", target="m-delegate")
    log.add(EventType.FLOOR_GIVE, "m-chair", target="m-delegate")
    log.add(EventType.BOOTH_FLOOR, "m-interpreter", language="es", carries_floor=False)
    log.add(EventType.CHANNEL_OPEN, None, channel="floor")
    log.add(EventType.CHANNEL_OPEN, None, channel="es")
    state = fold(log.events)
    assert state.unmuted == {"m-expert", "m-delegate"} and state.booth_floor == {"es": False}
    assert state.snapshot()["channels"] == ["es", "floor"]
    log.add(EventType.MEDIA_REVOKED, "m-chair", target="m-delegate")
    log.add(EventType.FLOOR_END, "m-chair")
    log.add(EventType.CHANNEL_CLOSE, None, channel="es")
    state = fold(log.events)
    assert state.unmuted == {"m-expert"} and state.booth_floor == {} and state.channels == {"floor"}


def test_unknown_event_types_only_advance_seq() -> None:
    """A newer server may log kinds this fold does not know: it must not break."""
    log = Log()
    log.join("m-expert", "c1")
    log.add("poll.open", "m-chair", question="?")
    state = fold(log.events)
    assert state.seq == 2 and state.present == ["m-expert"]


def test_snapshot_is_a_copy() -> None:
    """A snapshot sent in an acknowledgement is serialised later, after other commands
    may have changed the state: it must not change with it."""
    log = Log()
    log.join("m-expert", "c1")
    log.add(EventType.ITEM_START, "m-chair", item_id="i1")
    log.add(EventType.FLOOR_REQUEST, "m-expert")
    log.add(EventType.CHAT, "m-expert", text="one")
    state = fold(log.events)
    snap = state.snapshot()
    frozen = json.dumps(snap, sort_keys=True)
    for event in [
        log.add(EventType.CHAT, "m-expert", text="two"),
        log.add(EventType.ITEM_END, "m-chair", item_id="i1"),
        log.join("m-delegate", "c2"),
        log.add(EventType.FLOOR_GIVE, "m-chair", target="m-expert"),
        log.add(EventType.LOBBY_WAIT, "m-observer"),
    ]:
        state.apply(event)
    assert json.dumps(snap, sort_keys=True) == frozen


# ---- properties of any log the service could write ------------------------------------

KINDS = ["join", "leave", "wait", "admit", "decline", "start", "end", "request", "withdraw", "give", "over", "chat",
         "unmute", "mute", "booth", "open", "close"]


@st.composite
def logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    log = Log()
    conns = 0
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(KINDS))
        who = draw(st.sampled_from(PEOPLE))
        if kind == "join":
            conns += 1
            log.join(who, f"c{conns}")
        elif kind == "leave":
            log.add(EventType.LEAVE, who, conn=f"c{draw(st.integers(1, max(conns, 1)))}")
        elif kind == "wait":
            log.add(EventType.LOBBY_WAIT, who, person=person(who))
        elif kind in ("admit", "decline"):
            log.add(EventType.LOBBY_ADMIT if kind == "admit" else EventType.LOBBY_DECLINE, "m-chair", target=who)
        elif kind == "start":
            log.add(EventType.ITEM_START, "m-chair", item_id=draw(st.sampled_from(["i1", "i2", "i3"])))
        elif kind == "end":
            log.add(EventType.ITEM_END, "m-chair")
        elif kind == "request":
            log.add(EventType.FLOOR_REQUEST, who)
        elif kind == "withdraw":
            log.add(EventType.FLOOR_WITHDRAW, who)
        elif kind == "give":
            log.add(EventType.FLOOR_GIVE, "m-chair", target=who)
        elif kind == "over":
            log.add(EventType.FLOOR_END, "m-chair")
        elif kind in ("unmute", "mute"):
            log.add(EventType.MEDIA_GRANTED if kind == "unmute" else EventType.MEDIA_REVOKED, "m-chair", target=who)
        elif kind == "booth":
            log.add(EventType.BOOTH_FLOOR, "m-interpreter", language=draw(st.sampled_from(["es", "fr"])),
                    carries_floor=draw(st.booleans()))
        elif kind in ("open", "close"):
            log.add(EventType.CHANNEL_OPEN if kind == "open" else EventType.CHANNEL_CLOSE, None,
                    channel=draw(st.sampled_from(["floor", "es", "fr"])))
        else:
            log.add(EventType.CHAT, who, text=draw(st.text(min_size=1, max_size=20)))
    return log.events


@settings(max_examples=150, deadline=None)
@given(logs(), st.data())
def test_folding_in_parts_equals_folding_at_once(events: list[dict[str, Any]], data: st.DataObject) -> None:
    """A client that folds a prefix, then catches up on the rest, has the same state."""
    whole = fold(events)
    split = data.draw(st.integers(0, len(events)))
    early = fold(events[:split])
    resumed = copy.deepcopy(early)
    for event in events[split:]:
        resumed.apply(event)
    assert resumed.snapshot() == whole.snapshot()
    assert whole.seq == len(events)
    json.dumps(whole.snapshot())  # always JSON


@settings(max_examples=150, deadline=None)
@given(logs())
def test_invariants(events: list[dict[str, Any]]) -> None:
    state = RoomState()
    for event in events:
        state.apply(event)
        assert len(state.queue) == len(set(state.queue))
        if event["type"] == EventType.FLOOR_GIVE:
            assert state.floor is not None and state.floor["membership_id"] not in state.queue
        assert (state.current_item is None) or state.items[state.current_item["item_id"]]["ended"] is None
        if event["type"] == EventType.LOBBY_ADMIT:
            assert event["payload"]["target"] in state.admitted
            assert event["payload"]["target"] not in state.lobby
        assert [c["seq"] for c in state.chat] == sorted(c["seq"] for c in state.chat)
        assert len(state.chat) <= CHAT_WINDOW
        snap = state.snapshot()
        assert snap["present"] == sorted(m for m, c in snap["connections"].items() if c)
