"""The room's controls follow the server's answer on every join: a chair handover
(room.reset, then re-joining) redraws them in place, without reloading the page."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import OpenTab
from tests.browser.test_room import in_room, queue_of
from tests.conftest import LiveServer
from tests.fixtures.world import World

pytestmark = pytest.mark.browser


async def test_a_chair_handover_redraws_the_controls_in_place(
    server: LiveServer, world: World, open_tab: OpenTab
) -> None:
    secretariat = await in_room(await open_tab("secretariat"), server, world, "secretariat")
    expert = await in_room(await open_tab("expert"), server, world, "expert")
    await expert.page.get_by_role("button", name="Request the floor").click()
    await expect(queue_of(secretariat.page)).to_have_count(1)

    # The secretariat chairs (no chair is named): Give, Lobby, Start, the badge.
    await expect(secretariat.page.get_by_role("button", name="Give the floor")).to_be_visible()
    await expect(secretariat.page.get_by_role("heading", name="Lobby")).to_be_visible()
    await expect(secretariat.page.get_by_text("You chair this session")).to_be_visible()
    await expect(expert.page.get_by_role("button", name="Give the floor")).to_have_count(0)
    await expect(expert.page.get_by_role("heading", name="Lobby")).to_be_hidden()
    await expect(expert.page.locator("#agenda-items button")).to_have_count(0)
    await expect(expert.page.get_by_text("You chair this session")).to_be_hidden()
    for tab in (secretariat, expert):
        await tab.page.evaluate("window.parleySamePage = true")

    # The secretariat names the expert chair of this session.
    sid = world.sessions["open"]
    answer = await secretariat.page.request.patch(
        f"/api/sessions/{sid}",
        data={"chair_membership_id": world.members["expert"].membership_id},
        headers={"Origin": server.url},
    )
    assert answer.ok, await answer.text()

    # The expert now has the chair's controls, the secretariat no longer does.
    await expect(expert.page.get_by_role("button", name="Give the floor")).to_be_visible()
    await expect(expert.page.get_by_role("heading", name="Lobby")).to_be_visible()
    await expect(expert.page.get_by_role("button", name="Start").first).to_be_visible()
    await expect(expert.page.get_by_text("You chair this session")).to_be_visible()
    await expect(secretariat.page.get_by_role("button", name="Give the floor")).to_have_count(0)
    await expect(secretariat.page.get_by_role("heading", name="Lobby")).to_be_hidden()
    await expect(secretariat.page.get_by_role("button", name="Start")).to_have_count(0)
    await expect(secretariat.page.get_by_text("You chair this session")).to_be_hidden()
    # In place: the same pages, with what they showed before.
    for tab in (secretariat, expert):
        assert await tab.page.evaluate("window.parleySamePage === true"), tab.name
        await expect(queue_of(tab.page)).to_contain_text("Expert Person")

    # The new chair's controls work: the expert gives themself the floor, then ends it.
    await expert.page.get_by_role("button", name="Give the floor").click()
    await expect(secretariat.page.locator("#floor-holder")).to_have_text("Expert Person")
    await expect(secretariat.page.get_by_role("button", name="End the floor")).to_be_hidden()
    await expert.page.get_by_role("button", name="End the floor").click()
    await expect(secretariat.page.locator("#floor-holder")).to_have_text("Nobody has the floor.")
