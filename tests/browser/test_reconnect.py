"""The server process restarts under two open rooms: the browsers reconnect by
themselves, catch up on what they missed, and a message typed during the outage
is delivered once."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, expect

from server.config import Settings
from server.room import log as room_log
from server.web.keys import ROOMS
from tests.browser.conftest import close_tabs, new_tab
from tests.conftest import start_server
from tests.fixtures.world import World

pytestmark = pytest.mark.browser

OPEN = "open session"


async def test_rooms_survive_a_server_restart(browser: Browser, settings: Settings, world: World) -> None:
    live, runner = await start_server(settings)
    tabs = []
    try:
        chair = await new_tab(browser, "secretariat", live.url)
        expert = await new_tab(browser, "expert", live.url)
        tabs = [chair, expert]
        for tab, key in ((chair, "secretariat"), (expert, "expert")):
            await tab.join(f"{live.url}/invite/{world.members[key].invite_token}")
            await tab.enter_room(OPEN)
        await expert.page.get_by_role("button", name="Request the floor").click()
        await chair.page.locator("#queue > li").get_by_role("button", name="Give the floor").click()
        await chair.page.get_by_label("Message").fill("Before the restart")
        await chair.page.get_by_role("button", name="Send").click()
        for tab in tabs:
            await expect(tab.page.locator("#chat-log > li")).to_have_count(1)
            await expect(tab.page.locator("#floor-holder")).to_have_text("Expert Person")

        # The process goes away; both pages notice.
        await runner.cleanup()
        for tab in tabs:
            await expect(tab.page.locator("#conn-status")).to_have_attribute("data-state", "lost")
        # Typed while the server is down: sent (once) as soon as the room is back.
        await expert.page.get_by_label("Message").fill("Typed during the outage")
        await expert.page.get_by_role("button", name="Send").click()

        live, runner = await start_server(settings)  # same port, same database
        for tab in tabs:
            await expect(tab.page.locator("#conn-status")).to_have_attribute("data-state", "ok", timeout=20_000)
        for tab in tabs:
            log = tab.page.locator("#chat-log > li")
            await expect(log).to_have_count(2)
            await expect(log.last).to_contain_text("Typed during the outage")
            await expect(tab.page.locator("#floor-holder")).to_have_text("Expert Person")
            await expect(tab.page.locator("#presence > li")).to_have_count(2)

        # Live again in both directions, with nothing applied twice.
        await chair.page.get_by_role("button", name="End the floor").click()
        await chair.page.get_by_label("Message").fill("After the restart")
        await chair.page.get_by_role("button", name="Send").click()
        for tab in tabs:
            await expect(tab.page.locator("#floor-holder")).to_have_text("Nobody has the floor.")
            await expect(tab.page.locator("#chat-log > li")).to_have_count(3)
        # A fresh load shows the same room as the pages that lived through it.
        texts = await expert.page.locator("#chat-log .chat-text").all_text_contents()
        await expert.page.reload()
        await expert.connected()
        await expect(expert.page.locator("#chat-log .chat-text")).to_have_text(texts)
        assert texts == ["Before the restart", "Typed during the outage", "After the restart"]
    finally:
        await close_tabs(tabs)
        await runner.cleanup()


async def test_a_join_told_the_room_is_busy_joins_again_by_itself(
    browser: Browser, settings: Settings, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A join answered `unavailable` (here: the room's lock held past the wait) is sent
    again by the page after `retry_after`, without a reload or a click."""
    monkeypatch.setattr(room_log, "LOCK_WAIT_SECONDS", 0.3)
    live, runner = await start_server(settings)
    tabs = []
    try:
        expert = await new_tab(browser, "expert", live.url)
        tabs = [expert]
        await expert.join(f"{live.url}/invite/{world.members['expert'].invite_token}")
        locks = runner.app[ROOMS].log.locks
        async with locks.hold(world.sessions["open"]):  # a stalled holder of this room
            await expert.page.get_by_role("link", name=OPEN, exact=True).click()
            await expect(expert.page.locator("#room-error")).to_contain_text("busy")
            await asyncio.sleep(1.0)  # answered "unavailable" at least once more meanwhile
            await expect(expert.page.locator("#presence > li")).to_have_count(0)  # not in the room
        await expect(expert.page.locator("#presence > li")).to_have_count(1, timeout=10_000)
        await expect(expert.page.locator("#room-error")).to_be_hidden()
    finally:
        await close_tabs(tabs)
        await runner.cleanup()
