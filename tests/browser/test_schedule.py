"""The secretariat runs the scheduler, compares the proposals side by side and accepts
one; an expert's visit page in Nairobi shows the new local time without a reload."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select, update

from server.agenda.models import AgendaSession
from server.scheduling.models import ScheduleRun
from tests.browser.conftest import OpenTab
from tests.conftest import LiveServer
from tests.fixtures.world import World
from tests.scheduling.days import DAY, iso_date

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("PARLEY_SCREENSHOTS")  # a directory: save what the test saw


async def shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def invite(server: LiveServer, world: World, key: str) -> str:
    return f"{server.url}/invite/{world.members[key].invite_token}"


async def test_accepting_a_proposal_updates_an_experts_page_live(
    server: LiveServer, world: World, sessions: Any, open_tab: OpenTab
) -> None:
    # The agenda on one day: open 11:00, stakeholder 14:00, closed 17:00 UTC (late in Nairobi).
    async with sessions() as db:
        for n, key in enumerate(("open", "stakeholder", "closed")):
            start = DAY + timedelta(hours=11 + 3 * n)
            await db.execute(update(AgendaSession).where(AgendaSession.id == world.sessions[key])
                             .values(start_utc=start, end_utc=start + timedelta(hours=2)))
        await db.commit()

    # The expert, in Nairobi, has the visit page open and live.
    expert = await open_tab("expert")
    await expert.join(invite(server, world, "expert"))
    epage = expert.page
    await expect(epage.locator("#tz-note")).to_contain_text("Africa/Nairobi")
    await expect(epage.locator("#agenda-body")).to_have_attribute("data-live", "on")
    closed_row = epage.locator(f'li.session[data-session-id="{world.sessions["closed"]}"]')
    await expect(closed_row.locator("time.start")).to_have_text(f"{DAY:%a %d %b %Y}, 20:00")
    # The strip says who is up late, in words as well as colour.
    await expect(closed_row.locator("tr", has_text="Kenya").locator(".band")).to_have_text("outside working hours")
    await epage.evaluate("window.__sameDocument = true")

    # The secretariat opens the scheduler from the visit page and runs it.
    chair = await open_tab("secretariat")
    await chair.join(invite(server, world, "secretariat"))
    page = chair.page
    await page.get_by_role("link", name="Schedule the agenda").click()
    await page.wait_for_url(re.compile(r"/schedule"))
    await expect(page.get_by_label("First day")).to_have_value(iso_date(-2))
    await expect(page.get_by_label("Last day")).to_have_value(iso_date(2))
    await page.get_by_label("Alternatives").fill("2")
    await page.get_by_role("button", name="Run the scheduler").click()
    await page.wait_for_url(re.compile(r"/schedule/runs/[^/?]+"))

    # Three proposals side by side, each with its cost, new times, burden chart and reasons.
    proposals = page.locator("article.proposal")
    await expect(proposals).to_have_count(3)
    await expect(proposals.nth(0).get_by_role("heading")).to_have_text("Proposal 1 (best)")
    costs = []
    for i in range(3):
        card = proposals.nth(i)
        await expect(card.locator("svg.burden-chart rect")).to_have_count(5)  # five delegations required
        await expect(card.locator("tbody tr")).to_have_count(3)
        await expect(card.locator("time.start").first).to_contain_text(str(DAY.year))
        costs.append(int(await card.locator(".total-cost").inner_text()))
    assert costs == sorted(costs), costs
    await expect(proposals.nth(0).locator("ul.explanation").first).to_be_visible()
    boxes = [await proposals.nth(i).bounding_box() for i in range(2)]
    assert boxes[0] and boxes[1] and abs(boxes[0]["y"] - boxes[1]["y"]) < 2, "side by side on a laptop"
    await shot(page, "schedule-proposals")

    second = proposals.filter(has=page.get_by_role("heading", name="Proposal 2"))
    await second.get_by_role("button", name="Accept this proposal").click()
    await expect(page.locator("#accepted-note")).to_contain_text("Proposal 2 was accepted")
    await expect(page.get_by_role("button", name="Accept this proposal")).to_have_count(0)

    # What the proposal did to the agenda.
    async with sessions() as db:
        run = (await db.execute(select(ScheduleRun).where(ScheduleRun.visit_id == world.visit_id))).scalar_one()
        assert run.accepted_index == 1
        rows = {s.id: s for s in (await db.execute(
            select(AgendaSession).where(AgendaSession.visit_id == world.visit_id))).scalars()}
    moved = [s for s in rows.values() if s.sequence == 1]
    assert moved, "the proposal moves at least one session"

    # The expert's page shows each moved session at its new Nairobi time, without a reload.
    nairobi = ZoneInfo("Africa/Nairobi")
    for s in moved:
        row = epage.locator(f'li.session[data-session-id="{s.id}"]')
        start = s.start_utc.astimezone(nairobi)
        await expect(row.locator("time.start")).to_have_text(start.strftime("%a %d %b %Y, %H:%M"))
        await expect(row.locator("time.end")).to_have_text(s.end_utc.astimezone(nairobi).strftime("%H:%M"))
        await expect(row.locator("abbr.zone")).to_have_text("EAT")
        await expect(row.locator(".moved-badge")).to_have_text("Moved")
    await expect(epage.locator("#agenda-status")).to_have_text("The agenda changed.")
    assert await epage.evaluate("window.__sameDocument === true"), "the page was reloaded"
    await shot(epage, "visit-expert-after")
