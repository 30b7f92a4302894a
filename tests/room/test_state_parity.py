"""The browser's fold (client_web/js/room_state.js) agrees with the server's
(server/room/state.py) on the same event log, event by event.

Event logs are recorded by driving the Python fold through realistic room sessions
(people joining on several connections, the lobby, agenda items, the speakers' list,
chat, leaving and coming back). ``node`` then runs the JavaScript fold on the same
events two ways, as the browser does: from the start, and from the server's snapshot
at every point followed by the remaining events.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server.room.state import CHAT_WINDOW, EventType, RoomState, serialize_event

ROOT = Path(__file__).resolve().parents[2]
ROOM_STATE_JS = ROOT / "client_web/js/room_state.js"

RUNNER = r"""
import { readFileSync } from "node:fs";
import { RoomState } from "./room_state.mjs";

const logs = JSON.parse(readFileSync(0, "utf8"));
const out = logs.map(({ events, snapshots }) => {
  // 1. From an empty room, the snapshot after every event.
  const live = new RoomState();
  const steps = events.map((e) => { live.apply(e); return live.snapshot(); });
  // 2. From the server's snapshot after event k, then the rest (a joining browser).
  const resumed = snapshots.map((snap, k) => {
    const s = RoomState.fromSnapshot(JSON.parse(JSON.stringify(snap)));
    for (const e of events.slice(k)) s.apply(e);
    return s.snapshot();
  });
  return { steps, resumed };
});
process.stdout.write(JSON.stringify(out));
"""


class Recorder:
    """Drives the Python fold and keeps the serialised events and snapshots."""

    def __init__(self) -> None:
        self.state = RoomState()
        self.events: list[dict[str, Any]] = []
        self.snapshots: list[dict[str, Any]] = [self._canon(self.state.snapshot())]
        self.clock = datetime(2027, 3, 28, 7, 55, 0, 250_000, tzinfo=UTC)

    @staticmethod
    def _canon(value: Any) -> Any:
        return json.loads(json.dumps(value))

    def add(self, type_: str, who: str | None, payload: dict[str, Any], *, after: float = 1.5) -> None:
        self.clock += timedelta(seconds=after)
        event = serialize_event(
            seq=self.state.seq + 1, type_=type_, membership_id=who, payload=payload, created_at=self.clock
        )
        event = self._canon(event)  # what travels as JSON
        self.state.apply(event)
        self.events.append(event)
        self.snapshots.append(self._canon(self.state.snapshot()))


PEOPLE = {
    "m-sec": {"name": "Maria Keller", "role": "secretariat", "delegation": "UNODC"},
    "m-ke": {"name": "Wanjiru Otieno", "role": "expert", "delegation": "Kenya"},
    "m-id": {"name": "Budi Santoso", "role": "expert", "delegation": "Indonesia"},
    "m-co": {"name": "Camila Ríos", "role": "delegate", "delegation": "Colombia"},
    "m-co2": {"name": "Andrés <b>Gómez</b> & co", "role": "delegate", "delegation": "Colombia"},
    "m-int": {"name": "Léa Martin", "role": "interpreter", "delegation": None},
    "m-cs": {"name": "Transparencia por Colombia", "role": "stakeholder", "delegation": "Civil society"},
}


def person(m: str) -> dict[str, Any]:
    return {"membership_id": m, **PEOPLE[m]}


def scripted() -> Recorder:
    """A morning session, written out by hand: every event type and its edge cases."""
    r = Recorder()
    r.add(EventType.JOIN, "m-sec", {"person": person("m-sec"), "conn": "s1"})
    r.add(EventType.JOIN, "m-ke", {"person": person("m-ke"), "conn": "k1"})
    r.add(EventType.LOBBY_WAIT, "m-co", {"person": person("m-co")})
    r.add(EventType.LOBBY_WAIT, "m-cs", {"person": person("m-cs")})
    r.add(EventType.LOBBY_WAIT, "m-co", {"person": person("m-co")})  # waiting again: keeps its place
    r.add(EventType.LOBBY_ADMIT, "m-sec", {"target": "m-co"})
    r.add(EventType.LOBBY_DECLINE, "m-sec", {"target": "m-cs"})
    r.add(EventType.JOIN, "m-co", {"person": person("m-co"), "conn": "c1"})
    r.add(EventType.JOIN, "m-ke", {"person": person("m-ke"), "conn": "k2"})  # a second tab
    r.add(EventType.ITEM_START, "m-sec", {"item_id": "i1"})
    r.add(EventType.FLOOR_REQUEST, "m-ke", {})
    r.add(EventType.FLOOR_REQUEST, "m-co", {})
    r.add(EventType.FLOOR_REQUEST, "m-ke", {})  # already listed: no second place
    r.add(EventType.CHAT, "m-ke", {"text": "Good morning from Nairobi 🌍"})
    r.add(EventType.CHAT, "m-co", {"text": "<script>alert('x')</script> & \"quotes\""})
    r.add(EventType.FLOOR_GIVE, "m-sec", {"target": "m-ke"})
    r.add(EventType.LEAVE, "m-ke", {"conn": "k1"})  # one tab closed, still present
    r.add(EventType.LEAVE, "m-co", {"conn": "c1"})  # gone, but the request stays
    r.add(EventType.JOIN, "m-co", {"person": person("m-co"), "conn": "c2"})
    r.add(EventType.FLOOR_END, "m-sec", {"target": "m-ke"}, after=312.4)
    r.add(EventType.FLOOR_GIVE, "m-sec", {"target": "m-co"})
    r.add(EventType.ITEM_END, "m-sec", {"item_id": "i1"})
    r.add(EventType.ITEM_START, "m-sec", {"item_id": "i2"})
    r.add(EventType.ITEM_START, "m-sec", {"item_id": "i1"})  # back to an earlier item
    r.add(EventType.FLOOR_REQUEST, "m-sec", {})
    r.add(EventType.FLOOR_WITHDRAW, "m-sec", {})
    r.add(EventType.FLOOR_WITHDRAW, "m-id", {})  # not listed: nothing changes
    r.add(EventType.LEAVE, "m-id", {"conn": "x"})  # never joined
    r.add(EventType.LOBBY_WAIT, "m-int", {"person": person("m-int")})
    r.add(EventType.JOIN, "m-int", {"person": person("m-int"), "conn": "t1"})  # admission switched off
    r.add(EventType.LEAVE, "m-int", {"conn": "t1"})
    r.add(EventType.JOIN, "m-co2", {"person": person("m-co2")})  # no connection id
    r.add(EventType.LEAVE, "m-co2", {})
    r.add("hand.raise", "m-int", {"person": person("m-int")})  # a newer server's event
    r.add(EventType.ITEM_END, "m-sec", {"item_id": "i1"})
    r.add(EventType.ITEM_END, "m-sec", {})  # nothing current
    r.add(EventType.FLOOR_END, "m-sec", {"target": "m-co"})
    r.add(EventType.JOIN, "m-id", {"person": person("m-id"), "conn": "d1"})
    r.add(EventType.FLOOR_REQUEST, "m-id", {})
    r.add(EventType.LEAVE, "m-id", {"conn": "d1"})  # a dropped connection keeps the request
    r.add(EventType.LEAVE, "m-ke", {"conn": "k2", "reason": "restart"})
    # The room's audio decisions.
    r.add(EventType.MEDIA_GRANTED, "m-sec", {"target": "m-ke"})
    r.add(EventType.MEDIA_GRANTED, "m-sec", {"target": "m-co"})
    r.add(EventType.CHANNEL_OPEN, None, {"channel": "floor"})
    r.add(EventType.CHANNEL_OPEN, None, {"channel": "es"})
    r.add(EventType.BOOTH_FLOOR, "m-int", {"language": "es", "carries_floor": True})
    r.add(EventType.BOOTH_FLOOR, "m-int", {"language": "fr", "carries_floor": False})
    r.add(EventType.BOOTH_FLOOR, "m-int", {"language": "es", "carries_floor": False})  # keeps its place
    r.add(EventType.BOOTH_HANDOVER, "m-int", {"language": "es", "from": "m-int", "to": "m-int2"})
    r.add(EventType.MEDIA_REVOKED, "m-sec", {"target": "m-co"})
    r.add(EventType.MEDIA_REVOKED, "m-sec", {"target": "m-id"})  # never unmuted
    r.add(EventType.CHANNEL_CLOSE, None, {"channel": "es"})
    r.add(EventType.CHANNEL_CLOSE, None, {"channel": "de"})  # never open
    r.add(EventType.FLOOR_GIVE, "m-sec", {"target": "m-ke"})  # a new speaker: the booth switches reset
    r.add(EventType.BOOTH_FLOOR, "m-int", {"language": "es", "carries_floor": True})
    r.add(EventType.FLOOR_END, "m-sec", {"target": "m-ke"})
    return r


def simulated(seed: int, steps: int = 160) -> Recorder:
    """A plausible random session: only commands the server would accept."""
    rng = random.Random(seed)
    r = Recorder()
    members = list(PEOPLE)
    conns: dict[str, list[str]] = {m: [] for m in members}
    counter = 0
    r.add(EventType.JOIN, "m-sec", {"person": person("m-sec"), "conn": "s0"})
    conns["m-sec"].append("s0")
    for _ in range(steps):
        st = r.state
        present = [m for m in members if conns[m]]
        absent = [m for m in members if not conns[m] and (m not in st.lobby or rng.random() < 0.2)]
        choice = rng.choices(
            ["join", "leave", "wait", "admit", "decline", "item", "item_end", "request",
             "withdraw", "give", "end", "chat", "unmute", "booth", "channel"],
            weights=[6, 4, 2, 2, 1, 2, 1, 6, 2, 4, 2, 10, 2, 2, 2],
        )[0]
        after = rng.uniform(0.2, 45.0)
        if choice == "join" and absent:
            m = rng.choice(absent)
            counter += 1
            conns[m].append(f"c{counter}")
            r.add(EventType.JOIN, m, {"person": person(m), "conn": f"c{counter}"}, after=after)
        elif choice == "join" and present:  # another tab
            m = rng.choice(present)
            counter += 1
            conns[m].append(f"c{counter}")
            r.add(EventType.JOIN, m, {"person": person(m), "conn": f"c{counter}"}, after=after)
        elif choice == "leave" and present:
            m = rng.choice(present)
            conn = conns[m].pop(rng.randrange(len(conns[m])))
            r.add(EventType.LEAVE, m, {"conn": conn}, after=after)
        elif choice == "wait" and absent:
            m = rng.choice(absent)
            r.add(EventType.LOBBY_WAIT, m, {"person": person(m)}, after=after)
        elif choice in ("admit", "decline") and st.lobby:
            m = rng.choice(list(st.lobby))
            kind = EventType.LOBBY_ADMIT if choice == "admit" else EventType.LOBBY_DECLINE
            r.add(kind, "m-sec", {"target": m}, after=after)
        elif choice == "item":
            item = rng.choice(["i1", "i2", "i3"])
            if st.current_item and st.current_item["item_id"] == item:
                continue
            if st.current_item:
                r.add(EventType.ITEM_END, "m-sec", {"item_id": st.current_item["item_id"]}, after=after)
            r.add(EventType.ITEM_START, "m-sec", {"item_id": item}, after=0)
        elif choice == "item_end" and st.current_item:
            r.add(EventType.ITEM_END, "m-sec", {"item_id": st.current_item["item_id"]}, after=after)
        elif choice == "request":
            can = [m for m in present if m not in st.queue and not (st.floor and st.floor["membership_id"] == m)]
            if can:
                r.add(EventType.FLOOR_REQUEST, rng.choice(can), {}, after=after)
        elif choice == "withdraw" and st.queue:
            r.add(EventType.FLOOR_WITHDRAW, rng.choice(st.queue), {}, after=after)
        elif choice == "give" and st.queue:
            target = st.queue[0] if rng.random() < 0.7 else rng.choice(st.queue)
            if st.floor:
                r.add(EventType.FLOOR_END, "m-sec", {"target": st.floor["membership_id"]}, after=after)
            r.add(EventType.FLOOR_GIVE, "m-sec", {"target": target}, after=0)
        elif choice == "end" and st.floor:
            r.add(EventType.FLOOR_END, "m-sec", {"target": st.floor["membership_id"]}, after=after)
        elif choice == "unmute" and present:
            m = rng.choice(present)
            kind = EventType.MEDIA_REVOKED if m in st.unmuted else EventType.MEDIA_GRANTED
            r.add(kind, "m-sec", {"target": m}, after=after)
        elif choice == "booth" and rng.random() < 0.3:
            r.add(EventType.BOOTH_HANDOVER, "m-int", {"language": "es", "from": "m-int", "to": "m-int2"}, after=after)
        elif choice == "booth":
            language = rng.choice(["es", "fr"])
            r.add(EventType.BOOTH_FLOOR, "m-int", {"language": language, "carries_floor": rng.random() < 0.5},
                  after=after)
        elif choice == "channel":
            channel = rng.choice(["floor", "es", "fr"])
            kind = EventType.CHANNEL_CLOSE if channel in st.channels else EventType.CHANNEL_OPEN
            r.add(kind, None, {"channel": channel}, after=after)
        elif choice == "chat" and present:
            m = rng.choice(present)
            words = rng.sample(["asset", "recovery", "art. 52", "¿estadísticas?", "2019–2023", "<i>", "&amp;"], 3)
            r.add(EventType.CHAT, m, {"text": " ".join(words)}, after=after)
    return r


def run_node(tmp_path: Path, logs: list[Recorder]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (scripts/setup.sh installs it)")
    # A private .mjs copy: node then reads it as an ES module whatever package.json says.
    shutil.copyfile(ROOM_STATE_JS, tmp_path / "room_state.mjs")
    (tmp_path / "runner.mjs").write_text(RUNNER)
    payload = json.dumps([{"events": r.events, "snapshots": r.snapshots[:-1]} for r in logs])
    done = subprocess.run(
        [node, str(tmp_path / "runner.mjs")], input=payload, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def check(recorder: Recorder, result: dict[str, Any], label: str) -> None:
    expected = recorder.snapshots[1:]
    assert len(result["steps"]) == len(expected)
    for i, (js, py) in enumerate(zip(result["steps"], expected, strict=True)):
        assert canon(js) == canon(py), f"{label}: folds differ after event {i + 1} ({recorder.events[i]['type']})"
    final = canon(recorder.snapshots[-1])
    for k, js in enumerate(result["resumed"]):
        assert canon(js) == final, f"{label}: resuming from the snapshot at seq {k} ends differently"


def test_scripted_session_folds_the_same(tmp_path: Path) -> None:
    recorder = scripted()
    [result] = run_node(tmp_path, [recorder])
    check(recorder, result, "scripted")
    final = recorder.snapshots[-1]
    # The log exercised what it claims to: a request survived its owner's reload,
    # a second tab kept someone present, unsafe text passed through untouched.
    assert final["queue"] == ["m-id"]
    assert final["present"] == ["m-co", "m-sec"]
    assert any("<script>" in c["text"] for c in final["chat"])


def test_simulated_sessions_fold_the_same(tmp_path: Path) -> None:
    recorders = [simulated(seed) for seed in range(12)]
    results = run_node(tmp_path, recorders)
    kinds: set[str] = set()
    for seed, (recorder, result) in enumerate(zip(recorders, results, strict=True)):
        check(recorder, result, f"seed {seed}")
        kinds.update(e["type"] for e in recorder.events)
    assert kinds >= {str(t) for t in EventType}, sorted(kinds)


def long_chat(messages: int = 3 * CHAT_WINDOW // 2) -> Recorder:
    """More messages than a state keeps, with other events in between."""
    r = Recorder()
    r.add(EventType.JOIN, "m-sec", {"person": person("m-sec"), "conn": "s1"})
    r.add(EventType.JOIN, "m-ke", {"person": person("m-ke"), "conn": "k1"})
    for n in range(messages):
        who = "m-ke" if n % 3 else "m-sec"
        r.add(EventType.CHAT, who, {"text": f"message {n} ¿ok? <b>"}, after=0.4)
        if n == CHAT_WINDOW - 1:
            r.add(EventType.FLOOR_REQUEST, "m-ke", {})
        if n == CHAT_WINDOW + 7:
            r.add(EventType.LEAVE, "m-ke", {"conn": "k1"})
            r.add(EventType.JOIN, "m-ke", {"person": person("m-ke"), "conn": "k2"})
    return r


def test_a_chat_longer_than_the_window_folds_the_same(tmp_path: Path) -> None:
    recorder = long_chat()
    [result] = run_node(tmp_path, [recorder])
    check(recorder, result, "long chat")
    final = recorder.snapshots[-1]
    assert len(final["chat"]) == CHAT_WINDOW and final["chat_more"] is True
    assert final["chat"][-1]["text"].startswith(f"message {3 * CHAT_WINDOW // 2 - 1} ")
    # The window filled exactly at the 100th message: not "more" before the 101st.
    first_full = next(s for s in recorder.snapshots if len(s["chat"]) == CHAT_WINDOW)
    assert first_full["chat_more"] is False
