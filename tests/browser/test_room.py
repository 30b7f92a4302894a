"""Several people hold a session in headless Chromium: invitation, agenda in one's own
zone, the room, the speakers' list with its timer, chat, reloads, the lobby, the keyboard."""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import OpenTab, Tab
from tests.conftest import LiveServer
from tests.fixtures.world import World, build_world

pytestmark = pytest.mark.browser

OPEN = "open session"
SHOTS = os.environ.get("PARLEY_SCREENSHOTS")  # a directory: save what the tests saw


def invite(server: LiveServer, world: World, key: str) -> str:
    return f"{server.url}/invite/{world.members[key].invite_token}"


async def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


async def seconds_on(page: Page) -> int:
    text = (await page.locator("#floor-timer").text_content()) or ""
    match = re.fullmatch(r"(\d{2,}):(\d{2})", text.strip())
    assert match, f"timer shows {text!r}, not mm:ss"
    return int(match[1]) * 60 + int(match[2])


async def in_room(tab: Tab, server: LiveServer, world: World, key: str) -> Tab:
    await tab.join(invite(server, world, key))
    await tab.enter_room(OPEN)
    await expect(tab.page.locator("#room")).to_be_visible()
    return tab


def queue_of(page: Page) -> Any:
    return page.locator("#queue > li")


async def test_a_session_with_the_speakers_list_chat_and_reloads(
    server: LiveServer, world: World, open_tab: OpenTab
) -> None:
    expert = await open_tab("expert")
    await expert.join(invite(server, world, "expert"))
    page = expert.page

    # The visit page shows the agenda in the expert's own zone (Nairobi, EAT).
    await expect(page.locator("#tz-note")).to_contain_text("Africa/Nairobi")
    visit = await (await page.request.get(f"/api/visits/{world.visit_id}")).json()
    start_utc = next(s["start_utc"] for s in visit["sessions"] if s["title"] == OPEN)
    local = datetime.fromisoformat(start_utc.replace("Z", "+00:00")).astimezone(ZoneInfo("Africa/Nairobi"))
    row = page.locator("li.session").filter(has=page.get_by_role("link", name=OPEN, exact=True))
    await expect(row.locator("time.start")).to_contain_text(local.strftime("%H:%M"))
    await expect(row.locator("abbr.zone")).to_have_text("EAT")

    await expert.enter_room(OPEN)
    await expect(page.locator(".room-head abbr.zone")).to_have_text("EAT")
    await expect(page.get_by_role("heading", name=OPEN)).to_be_visible()

    chair = await in_room(await open_tab("secretariat"), server, world, "secretariat")
    delegate = await in_room(await open_tab("delegate"), server, world, "delegate")
    everyone = [expert.page, chair.page, delegate.page]

    for p in everyone:
        for name in ("Expert Person", "Secretariat Person", "Delegate Person"):
            await expect(p.locator("#presence")).to_contain_text(name)

    # The expert asks for the floor, then the delegate: the chair sees them in order.
    await page.get_by_role("button", name="Request the floor").click()
    await expect(page.get_by_role("button", name="Withdraw")).to_be_visible()
    await expect(page.locator("#my-position")).to_contain_text("number 1")
    await delegate.page.get_by_role("button", name="Request the floor").click()
    await expect(queue_of(chair.page)).to_have_count(2)
    await expect(queue_of(chair.page).nth(0)).to_contain_text("Expert Person")
    await expect(queue_of(chair.page).nth(1)).to_contain_text("Delegate Person")
    # Only the chair has the buttons to give the floor.
    await expect(page.get_by_role("button", name="Give the floor")).to_have_count(0)

    await queue_of(chair.page).filter(has_text="Expert Person").get_by_role("button", name="Give the floor").click()
    for p in everyone:
        await expect(p.locator("#floor-holder")).to_have_text("Expert Person")
        await expect(p.locator("#floor-timer")).to_be_visible()
        await expect(p.locator("#floor-timer")).to_have_text(re.compile(r"^\d\d:\d\d$"))
        await expect(queue_of(p)).to_have_count(1)
        await expect(queue_of(p).first).to_contain_text("Delegate Person")
    # The timer counts up, on both sides of the conversation.
    for p in (expert.page, chair.page):
        before = await seconds_on(p)
        await expect(p.locator("#floor-timer")).not_to_have_text(f"{before // 60:02d}:{before % 60:02d}", timeout=4000)
        assert await seconds_on(p) > before
    assert abs(await seconds_on(expert.page) - await seconds_on(chair.page)) <= 1  # one server clock

    # Chat goes both ways; text stays text.
    await page.get_by_label("Message").fill("Good morning from Nairobi")
    await page.get_by_role("button", name="Send").click()
    await expect(chair.page.locator("#chat-log")).to_contain_text("Good morning from Nairobi")
    await chair.page.get_by_label("Message", exact=True).fill("Welcome <b>all</b> & thank you")
    await chair.page.get_by_role("button", name="Send").click()
    for p in everyone:
        last = p.locator("#chat-log > li").last
        await expect(last.locator(".chat-text")).to_have_text("Welcome <b>all</b> & thank you")
        await expect(p.locator("#chat-log b")).to_have_count(0)
        await expect(p.locator("#chat-log > li")).to_have_count(2)
    await expect(page.get_by_label("Message")).to_have_value("")

    # The chair moves the agenda: everyone sees the current item.
    item1 = chair.page.locator("#agenda-items > li").filter(has_text="Item 1")
    await item1.get_by_role("button", name="Start").click()
    for p in everyone:
        await expect(p.locator("#agenda-items > li").filter(has_text="Item 1")).to_have_attribute("aria-current", "step")
    await shot(chair.page, "room-chair")
    await shot(expert.page, "room-expert")

    # A reload rebuilds the same room from the server: floor, timer, queue, chat, item.
    held_for = await seconds_on(page)
    await page.reload()
    await expert.connected()
    await expect(page.locator("#floor-holder")).to_have_text("Expert Person")
    await expect(page.locator("#floor-timer")).to_be_visible()
    assert await seconds_on(page) >= held_for - 1  # still counting from when the floor was given
    await expect(queue_of(page)).to_have_count(1)
    await expect(queue_of(page).first).to_contain_text("Delegate Person")
    await expect(page.locator("#chat-log > li")).to_have_count(2)
    await expect(page.locator("#chat-log")).to_contain_text("Good morning from Nairobi")
    await expect(page.locator("#chat-log")).to_contain_text("Welcome <b>all</b> & thank you")
    await expect(page.locator("#agenda-items > li").filter(has_text="Item 1")).to_have_attribute("aria-current", "step")
    await expect(page.locator("#presence > li")).to_have_count(3)

    await delegate.page.reload()
    await delegate.connected()
    # The delegate's request survived the reload; they can still withdraw it.
    await expect(delegate.page.get_by_role("button", name="Withdraw")).to_be_visible()
    await expect(delegate.page.locator("#my-position")).to_contain_text("number 1")

    # After the reload, live updates still arrive: the chair ends the floor.
    await chair.page.get_by_role("button", name="End the floor").click()
    for p in everyone:
        await expect(p.locator("#floor-holder")).to_have_text("Nobody has the floor.")
        await expect(p.locator("#floor-timer")).to_be_hidden()
    await delegate.page.get_by_role("button", name="Withdraw").click()
    for p in everyone:
        await expect(queue_of(p)).to_have_count(0)
    await page.get_by_label("Message").fill("Thank you, Chair")
    await page.get_by_label("Message").press("Enter")
    for p in everyone:
        await expect(p.locator("#chat-log > li")).to_have_count(3)

    # Everything fits a laptop screen without sideways scrolling.
    for p in everyone:
        assert await p.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.fixture
async def admission_world(sessions: Any, settings: Any) -> World:
    async with sessions() as db:
        return await build_world(db, settings, requires_admission=True)


async def test_the_lobby_admits_and_declines(
    server: LiveServer, admission_world: World, open_tab: OpenTab
) -> None:
    world = admission_world
    chair = await in_room(await open_tab("secretariat"), server, world, "secretariat")  # never waits
    await expect(chair.page.get_by_role("heading", name="Lobby")).to_be_visible()
    await expect(chair.page.locator("#lobby-empty")).to_be_visible()

    delegate = await open_tab("delegate")
    await delegate.join(invite(server, world, "delegate"))
    await delegate.enter_room(OPEN)
    await expect(delegate.page.get_by_role("heading", name="Waiting for the chair to admit you")).to_be_visible()
    await expect(delegate.page.get_by_role("button", name="Request the floor")).to_be_hidden()
    await expect(delegate.page.locator("#room")).to_be_hidden()
    await shot(delegate.page, "lobby-waiting")

    waiting = chair.page.locator("#lobby-list > li").filter(has_text="Delegate Person")
    await expect(waiting).to_be_visible()
    await expect(waiting).to_contain_text("delegate · Colombia")
    await shot(chair.page, "lobby-chair")
    await waiting.get_by_role("button", name="Admit").click()

    await expect(delegate.page.get_by_role("button", name="Request the floor")).to_be_visible()
    await expect(delegate.page.get_by_role("heading", name="Waiting for the chair to admit you")).to_be_hidden()
    await expect(chair.page.locator("#presence")).to_contain_text("Delegate Person")
    await expect(chair.page.locator("#lobby-list > li")).to_have_count(0)
    await delegate.page.get_by_label("Message").fill("Thank you for admitting us")
    await delegate.page.get_by_role("button", name="Send").click()
    await expect(chair.page.locator("#chat-log")).to_contain_text("Thank you for admitting us")

    # The admission lasts for the session: a reload goes straight in.
    await delegate.page.reload()
    await delegate.connected()
    await expect(delegate.page.get_by_role("button", name="Request the floor")).to_be_visible()
    await expect(delegate.page.locator("#chat-log")).to_contain_text("Thank you for admitting us")

    # Declined: the expert is told, and may ask again.
    expert = await open_tab("expert")
    await expert.join(invite(server, world, "expert"))
    await expert.enter_room(OPEN)
    await expect(expert.page.get_by_role("heading", name="Waiting for the chair to admit you")).to_be_visible()
    row = chair.page.locator("#lobby-list > li").filter(has_text="Expert Person")
    await row.get_by_role("button", name="Decline").click()
    await expect(expert.page.get_by_role("alert")).to_contain_text("declined")
    await expert.page.get_by_role("button", name="Ask again").click()
    await row.get_by_role("button", name="Admit").click()
    await expect(expert.page.get_by_role("button", name="Request the floor")).to_be_visible()
    await expect(chair.page.locator("#presence > li")).to_have_count(3)


async def tab_to(page: Page, name: str, limit: int = 60) -> None:
    """Press Tab until the focused element is the one named ``name``."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(
            "(() => { const e = document.activeElement; return e ? "
            "(e.labels && e.labels.length ? e.labels[0].textContent : e.textContent).trim() : ''; })()"
        )
        if focused == name:
            return
    raise AssertionError(f"Tab never reached {name!r}")


async def test_the_room_works_with_the_keyboard_alone(
    server: LiveServer, world: World, open_tab: OpenTab
) -> None:
    chair = await in_room(await open_tab("secretariat"), server, world, "secretariat")
    expert = await in_room(await open_tab("expert"), server, world, "expert")
    page = expert.page

    await tab_to(page, "Request the floor")
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "focused buttons must show where the focus is"
    await page.keyboard.press("Enter")
    withdraw = page.get_by_role("button", name="Withdraw")
    await expect(withdraw).to_be_focused()  # focus follows the control that replaced it
    await page.keyboard.press("Space")
    await expect(page.get_by_role("button", name="Request the floor")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(withdraw).to_be_focused()

    await tab_to(page, "Message")
    await page.keyboard.type("Typed without a mouse")
    await page.keyboard.press("Enter")
    await expect(chair.page.locator("#chat-log")).to_contain_text("Typed without a mouse")

    # The chair, by keyboard: give the floor, then end it.
    await tab_to(chair.page, "Give the floor")
    await chair.page.keyboard.press("Enter")
    await expect(page.locator("#floor-holder")).to_have_text("Expert Person")
    end = chair.page.get_by_role("button", name="End the floor")
    await expect(end).to_be_focused()
    await chair.page.keyboard.press("Enter")
    await expect(page.locator("#floor-holder")).to_have_text("Nobody has the floor.")
    # The floor announcements reach screen readers through a live region.
    await expect(page.locator("#announce")).to_have_attribute("aria-live", "polite")
    await expect(page.locator("#announce")).to_have_text("The floor is free.")
