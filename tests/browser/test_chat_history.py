"""The chat panel of a long meeting in headless Chromium: the window of recent
messages, "Load earlier messages" without losing one's place, a rate limit's wait,
and a beacon that reveals a broadcast the page never received."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from server.core.ratelimit import TokenBucket
from server.realtime.server import room_name
from server.room.state import CHAT_WINDOW
from server.web.keys import REALTIME, ROOMS
from tests.browser.conftest import OpenTab, Tab
from tests.conftest import LiveServer
from tests.fixtures.world import World
from tests.realtime.live import write_chats

pytestmark = pytest.mark.browser

OPEN = "open session"


async def in_room(open_tab: OpenTab, server: LiveServer, world: World, key: str) -> Tab:
    tab = await open_tab(key)
    await tab.join(f"{server.url}/invite/{world.members[key].invite_token}")
    await tab.enter_room(OPEN)
    await expect(tab.page.locator("#room")).to_be_visible()
    return tab


async def offset_in_log(page: Page, seq: int) -> float:
    """Where message ``seq`` sits in the visible part of the chat log, in pixels."""
    value = await page.evaluate(
        """(seq) => {
            const log = document.getElementById("chat-log");
            const item = log.querySelector(`li[data-seq="${seq}"]`);
            return item.getBoundingClientRect().top - log.getBoundingClientRect().top;
        }""",
        seq,
    )
    return float(value)


async def test_earlier_messages_load_on_demand_without_moving_the_view(
    server: LiveServer, world: World, open_tab: OpenTab, sessions: Any
) -> None:
    sid = world.sessions["open"]
    # Written by the expert (whom the room knows once they join) before this page opened.
    await write_chats(sessions, sid, [world.members["expert"].membership_id], 2 * CHAT_WINDOW + 50, size=30)
    expert = await in_room(open_tab, server, world, "expert")
    page = expert.page
    items = page.locator("#chat-log > li")
    await expect(items).to_have_count(CHAT_WINDOW)
    await expect(items.last.locator(".chat-text")).to_have_text(f"flood {2 * CHAT_WINDOW + 49:04d} " + "x" * 19)
    earlier = page.get_by_role("button", name="Load earlier messages")
    await expect(earlier).to_be_visible()

    # Reading from the top of what is there: the oldest shown stays in place.
    oldest = int(await items.first.get_attribute("data-seq") or 0)
    await page.locator("#chat-log").evaluate("(log) => { log.scrollTop = 0; }")
    before = await offset_in_log(page, oldest)
    await earlier.click()
    await expect(items).to_have_count(2 * CHAT_WINDOW)
    assert abs(await offset_in_log(page, oldest) - before) <= 1
    await expect(items.first.locator(".chat-text")).to_contain_text(f"flood {50:04d}")

    await page.locator("#chat-log").evaluate("(log) => { log.scrollTop = 0; }")
    await earlier.click()
    await expect(items).to_have_count(2 * CHAT_WINDOW + 50)
    await expect(earlier).to_be_hidden()
    await expect(page.locator("#chat-log")).to_be_focused()
    texts = await page.locator("#chat-log .chat-text").all_text_contents()
    assert [t.split()[1] for t in texts] == [f"{n:04d}" for n in range(2 * CHAT_WINDOW + 50)]
    names = await page.locator("#chat-log .chat-meta strong").all_text_contents()
    assert set(names) == {"Expert Person"}

    # Live messages still arrive at the end, and the log keeps what it loaded.
    await page.get_by_label("Message").fill("Thank you all")
    await page.get_by_role("button", name="Send").click()
    await expect(items).to_have_count(2 * CHAT_WINDOW + 51)
    await expect(items.last.locator(".chat-text")).to_have_text("Thank you all")


async def test_a_rate_limited_message_shows_the_wait_and_keeps_the_text(
    server: LiveServer, world: World, open_tab: OpenTab
) -> None:
    # One message, then one a minute: the second is refused for long enough to look at.
    server.app[ROOMS].chat_limit = TokenBucket(1 / 60, 1)
    expert = await in_room(open_tab, server, world, "expert")
    page = expert.page
    await page.get_by_label("Message").fill("First")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#chat-log > li")).to_have_count(1)
    await page.get_by_label("Message").fill("Second, too soon")
    await page.get_by_role("button", name="Send").click()
    error = page.locator("#room-error")
    await expect(error).to_be_visible()
    await expect(error).to_have_text(
        re.compile(r"You are sending messages too fast\. You can send again in (60|59|58) s\.")
    )
    await expect(page.get_by_label("Message")).to_have_value("Second, too soon")
    await expect(page.locator("#chat-log > li")).to_have_count(1)


async def test_a_beacon_ahead_of_the_page_makes_it_catch_up(
    server: LiveServer, world: World, open_tab: OpenTab, sessions: Any
) -> None:
    sid = world.sessions["open"]
    expert = await in_room(open_tab, server, world, "expert")
    page = expert.page
    # Stored, never broadcast: as if the message queue lost the room.event.
    seq = await write_chats(sessions, sid, [world.members["expert"].membership_id], 1, size=30)
    await expect(page.locator("#chat-empty")).to_be_visible()
    await server.app[REALTIME].sio.emit("room.beacon", {"session_id": sid, "seq": seq}, room=room_name(sid))
    await expect(page.locator("#chat-log > li")).to_have_count(1)
    await expect(page.locator("#chat-log .chat-text")).to_contain_text("flood 0000")
