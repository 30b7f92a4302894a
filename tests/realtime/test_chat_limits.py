"""Chat under load on a real server: the per-participant rate limit, the bounded
join, and ``chat.history`` paging back through everything that was said."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.app import create_app
from server.config import Settings, load_settings
from server.room.models import RoomEvent
from server.room.service import CHAT_BURST
from server.room.state import CHAT_WINDOW
from server.web.keys import ROOMS
from tests.conftest import LiveServer, settings_for
from tests.fixtures.world import World, build_world
from tests.realtime.live import Peers, converge, write_chats


async def stored_chats(sessions: Any, session_id: str) -> list[RoomEvent]:
    async with sessions() as db:
        rows = await db.execute(
            select(RoomEvent)
            .where(RoomEvent.session_id == session_id, RoomEvent.type == "chat")
            .order_by(RoomEvent.seq)
        )
        return list(rows.scalars())


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_chat_flood_is_rate_limited_and_nothing_extra_stored(
    peers: Peers, world: World, server: LiveServer, sessions: Any
) -> None:
    clock = FrozenClock()
    server.app[ROOMS].chat_limit.clock = clock  # the real limit, on a clock the test moves
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)

    acks = [await expert.send("chat.send", text=f"spam {n}", idem=f"spam-{n}") for n in range(3 * CHAT_BURST)]
    accepted = [a for a in acks if a.get("ok")]
    refused = [a for a in acks if "error" in a]
    assert len(accepted) == CHAT_BURST and len(refused) == 2 * CHAT_BURST, acks
    assert acks[:CHAT_BURST] == accepted  # the burst first, then only refusals
    for ack in refused:
        assert ack["error"]["code"] == "rate_limited", ack
        assert ack["error"]["retry_after"] == 1 and ack["error"]["message"], ack
    stored = await stored_chats(sessions, sid)
    assert [r.idempotency_key for r in stored] == [f"spam-{n}" for n in range(CHAT_BURST)]

    # A retry of a message that was stored answers as before, limit or not.
    again = await expert.send("chat.send", text="spam 3", idem="spam-3")
    assert again == {"ok": True, "seq": accepted[3]["seq"], "duplicate": True}
    # The limit is the expert's: the chair still talks.
    assert (await chair.send("chat.send", text="Please slow down", idem="c-1"))["ok"]
    # A second later, one more message of the expert's gets through, then not another.
    clock.now += 1.0
    assert (await expert.send("chat.send", text="sorry", idem="sorry-1"))["ok"]
    assert (await expert.send("chat.send", text="sorry again", idem="sorry-2"))["error"]["code"] == "rate_limited"
    await converge([chair, expert])
    texts = [c["text"] for c in chair.state.chat]
    assert texts == [f"spam {n}" for n in range(CHAT_BURST)] + ["Please slow down", "sorry"]
    assert len(await stored_chats(sessions, sid)) == CHAT_BURST + 2


async def test_a_join_after_a_thousand_messages_is_bounded(
    peers: Peers, world: World, server: LiveServer, sessions: Any
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    authors = [chair.membership_id, world.members["expert"].membership_id]
    await write_chats(sessions, sid, authors, 1000)
    everything = await stored_chats(sessions, sid)

    fresh = await peers.connect("delegate")
    ack = await fresh.call("room.join", {"session_id": sid})
    assert ack["ok"] and ack["status"] == "joined", ack
    chat = ack["state"]["chat"]
    assert len(chat) == CHAT_WINDOW and ack["state"]["chat_more"] is True
    assert [c["seq"] for c in chat] == [r.seq for r in everything[-CHAT_WINDOW:]]
    # The whole chat is ~230 kB; the join carries the window only.
    size = len(json.dumps(ack))
    assert size < 40_000, size

    # A client far behind by way of ``since`` gets the state too, not 500 messages.
    late = await fresh.call("room.join", {"session_id": sid, "since": ack["seq"] - 500})
    assert "events" not in late and len(late["state"]["chat"]) == CHAT_WINDOW, list(late)
    assert len(json.dumps(late)) < 40_000
    sync = await fresh.call("room.sync", {"session_id": sid, "since": 0})
    assert len(sync["state"]["chat"]) == CHAT_WINDOW and len(json.dumps(sync)) < 40_000
    # Live messages keep the window at its size.
    for n in range(5):
        assert (await chair.send("chat.send", text=f"live {n}", idem=f"live-{n}"))["ok"]
    now = (await chair.call("room.sync", {"session_id": sid, "since": 0}))["state"]
    assert len(now["chat"]) == CHAT_WINDOW and now["chat"][-1]["text"] == "live 4"
    assert len(server.app[ROOMS].log._cache[sid].chat) == CHAT_WINDOW


async def test_chat_history_pages_back_to_the_first_message(
    peers: Peers, world: World, sessions: Any
) -> None:
    sid = world.sessions["open"]
    chair = await peers.joined("secretariat", sid)
    expert = await peers.joined("expert", sid)
    await write_chats(sessions, sid, [chair.membership_id, expert.membership_id], 1000, size=40)
    assert (await expert.send("floor.request"))["ok"]  # not chat: never in a page
    assert (await expert.send("chat.send", text="the last word", idem="last"))["ok"]
    everything = [(r.seq, r.membership_id, r.payload["text"]) for r in await stored_chats(sessions, sid)]

    joined = await expert.call("room.join", {"session_id": sid})
    window = joined["state"]["chat"]
    pages: list[list[dict[str, Any]]] = []
    before, more = window[0]["seq"], joined["state"]["chat_more"]
    while more:
        limit = 100 if len(pages) % 2 else 37  # full pages and odd ones alike
        page = await expert.send("chat.history", before=before, limit=limit)
        assert page["ok"] and 0 < len(page["messages"]) <= limit, page
        assert len(pages) < 50, "paging does not end"
        pages.append(page["messages"])
        before, more = page["messages"][0]["seq"], page["more"]
    got = [m for page in reversed(pages) for m in page] + window
    assert [(m["seq"], m["membership_id"], m["text"]) for m in got] == everything
    assert all(m["at"].endswith("Z") for m in got)
    # Newest last within a page; the default limit is the window; before the first: nothing.
    default = await expert.send("chat.history", before=window[0]["seq"])
    assert [m["seq"] for m in default["messages"]] == [s for s, _, _ in everything[-2 * CHAT_WINDOW:-CHAT_WINDOW]]
    first = await expert.send("chat.history", before=everything[0][0])
    assert first == {"ok": True, "messages": [], "more": False}

    for bad in ({"before": 0}, {"before": 10, "limit": CHAT_WINDOW + 1}, {"before": 10, "limit": 0},
                {"before": "10"}, {}):
        assert (await expert.send("chat.history", **bad))["error"]["code"] == "invalid", bad


async def test_chat_history_is_refused_in_the_lobby(server: LiveServer, sessions: Any, settings: Settings) -> None:
    async with sessions() as db:
        world = await build_world(db, settings, requires_admission=True)
    peers = Peers(server, world)
    try:
        sid = world.sessions["open"]
        chair = await peers.joined("secretariat", sid)
        assert (await chair.send("chat.send", text="before you came", idem="b-1"))["ok"]
        delegate = await peers.connect("delegate")
        assert (await delegate.join(sid))["status"] == "waiting"
        ack = await delegate.send("chat.history", before=1000)
        assert ack["error"]["code"] == "waiting", ack
        assert [m["text"] for m in (await chair.send("chat.history", before=1000))["messages"]] == ["before you came"]
    finally:
        await peers.close()


def test_the_chat_limit_is_configurable(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PARLEY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PARLEY_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("PARLEY_CHAT_RATE", "0.5")
    monkeypatch.setenv("PARLEY_CHAT_BURST", "4")
    loaded = load_settings()
    assert (loaded.chat_rate, loaded.chat_burst) == (0.5, 4)
    limit = create_app(settings_for(settings, chat_rate=0.5, chat_burst=4))[ROOMS].chat_limit
    assert (limit.rate, limit.burst) == (0.5, 4)
    assert (settings.chat_rate, settings.chat_burst) == (1.0, CHAT_BURST)
