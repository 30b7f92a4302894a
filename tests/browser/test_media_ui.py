"""The room's audio panel in headless Chromium, without real audio: the module loads
under the page's CSP with no console errors, the controls are there with their labels,
and what the server's media state allows is what the page offers."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from server.audit import service as audit
from server.booths import service as booths
from server.db.session import make_engine, make_sessionmaker
from server.people.models import Person
from tests.browser.conftest import CHROMIUM_ARGS, OpenTab
from tests.browser.test_room import in_room
from tests.conftest import LiveServer
from tests.fixtures.world import World

pytestmark = pytest.mark.browser

PRIVACY = "Audio goes through Parley's media server. It is not end-to-end encrypted, and Parley never records it."


async def staff_a_booth(server: LiveServer, world: World, language: str, speaks: str) -> None:
    """A booth for ``language`` with the interpreter in it, who reads Parley in ``speaks``."""
    engine = make_engine(server.settings.database_url)
    try:
        async with make_sessionmaker(engine, info=audit.session_info(server.settings))() as db:
            interpreter = world.members["interpreter"]
            await booths.create_booth(db, world.visit_id, language, (interpreter.membership_id,), actor_person_id=None)
            person = await db.get(Person, interpreter.person_id)
            assert person is not None
            person.languages = [speaks]
            await db.commit()
    finally:
        await engine.dispose()


async def media_answers(page: Page) -> bool:
    """Whether this server speaks the media events yet (media.info answers ok)."""
    ack = await page.evaluate(
        "(sid) => window.parleyMedia.ask('media.info', {session_id: sid})",
        await page.evaluate("JSON.parse(document.getElementById('room-data').textContent).session_id"),
    )
    return isinstance(ack, dict) and bool(ack.get("ok"))


async def test_the_audio_panel_loads_with_its_controls(server: LiveServer, world: World, open_tab: OpenTab) -> None:
    expert = await in_room(await open_tab("expert"), server, world, "expert")
    page = expert.page
    panel = page.locator("#audio-panel")
    await expect(panel.get_by_role("heading", name="Audio")).to_be_visible()
    await expect(page.get_by_role("button", name="Join audio")).to_be_visible()
    await expect(page.get_by_text(PRIVACY)).to_be_visible()
    # Device check before joining, and the devices, each with a label.
    await expect(page.get_by_role("button", name="Play test sound")).to_be_visible()
    await expect(page.get_by_role("button", name="Check input level")).to_be_visible()
    await expect(page.get_by_role("combobox", name="Input device")).to_be_visible()
    await expect(page.get_by_role("combobox", name="Output device")).to_be_attached()
    # Video: the Camera is for whoever may speak on the floor (not this expert now,
    # and the reason says why); "Audio only" is the default, and may be turned off.
    camera = page.get_by_role("button", name="Camera")
    await expect(camera).to_be_disabled()
    await expect(camera).to_have_attribute("aria-pressed", "false")
    await expect(page.locator("#camera-reason")).to_have_text(re.compile(r"\S"))
    audio_only = page.get_by_role("button", name="Audio only")
    await expect(audio_only).to_have_attribute("aria-pressed", "true")
    await expect(audio_only).to_be_enabled()
    await expect(page.locator("#video-area")).to_be_hidden()
    # The debug handle for tests is there, and nothing is received yet.
    assert await page.evaluate("window.parleyMedia.tracks()") == []
    # Not yet in the audio: nothing plays, the slow-down notice is hidden.
    await expect(page.locator("#audio-panel")).to_have_attribute("data-joined", "false")
    await expect(page.locator("#slowdown-notice")).to_be_hidden()
    # Every control of the panel has an accessible name.
    unnamed = await page.evaluate(
        """() => [...document.querySelectorAll(
                 '#audio-panel button, #audio-panel select, #audio-panel input, #audio-panel meter')]
             .filter((n) => !(n.labels && n.labels.length) && !n.getAttribute('aria-label')
                            && !n.textContent.trim())
             .map((n) => n.id)"""
    )
    assert unnamed == []


async def test_the_sound_check_runs_before_joining(server: LiveServer, world: World, open_tab: OpenTab) -> None:
    """The test tone plays through WebAudio and the input check opens (and closes) the
    microphone, with no errors on the page (Chromium's fake devices)."""
    assert "--use-fake-device-for-media-stream" not in CHROMIUM_ARGS
    delegate = await in_room(await open_tab("delegate"), server, world, "delegate")
    page = delegate.page
    await page.get_by_role("button", name="Play test sound").click()
    await expect(page.locator("#audio-problem")).to_be_hidden()


async def test_the_audio_follows_the_servers_media_state(server: LiveServer, world: World, open_tab: OpenTab) -> None:
    """Once the server speaks the media events: the observer may not publish (the
    Microphone is disabled with the server's reason), the chair sees Unmute / Mute,
    and a listener's choice of channel survives a reload."""
    observer = await in_room(await open_tab("observer"), server, world, "observer")
    assert await media_answers(observer.page)
    page = observer.page
    await expect(page.get_by_role("button", name="Join audio")).to_be_enabled()
    mic = page.get_by_role("button", name="Microphone", exact=True)
    await expect(mic).to_be_disabled()
    await expect(mic).to_have_attribute("aria-pressed", "false")
    await expect(page.locator("#mic-reason")).to_have_text(re.compile(r"\S"))
    await expect(page.get_by_role("combobox", name="Listen to")).to_be_visible()
    await expect(page.get_by_role("combobox", name="Listen to").locator("option").first).to_have_text(
        re.compile("^Floor")
    )

    # The embedded engine says how many people it is sized for.
    if server.settings.media_engine == "embedded":
        await expect(page.locator("#audio-ceiling")).to_have_text(
            re.compile(r"This room's audio is for meetings up to \d+ people; your administrator can configure Janus")
        )
    # The choice of channel is remembered for this participant and survives a reload.
    stored = await page.evaluate("(k) => localStorage.getItem(k)", f"parley.audio.{world.members['observer'].membership_id}")
    assert stored is None
    await page.get_by_role("combobox", name="Listen to").select_option("floor")
    await page.reload()
    await expect(page.get_by_role("combobox", name="Listen to")).to_have_value("floor")
    stored = await page.evaluate("(k) => localStorage.getItem(k)", f"parley.audio.{world.members['observer'].membership_id}")
    assert stored and '"listen":"floor"' in stored

    # The chair: Unmute only for someone who can take the floor and is not unmuted,
    # Mute only for someone unmuted; nothing next to an observer or an interpreter.
    expert = await in_room(await open_tab("expert"), server, world, "expert")
    chair = await in_room(await open_tab("secretariat"), server, world, "secretariat")
    row = chair.page.locator("#presence li", has_text="Observer Person")
    await expect(row).to_be_visible()
    expert_row = chair.page.locator("#presence li", has_text=world.members["expert"].name)
    await expect(expert_row.get_by_role("button", name=re.compile("^Unmute"))).to_be_visible()
    await expect(expert_row.get_by_role("button", name=re.compile("^Mute"))).to_have_count(0)
    await expect(row.get_by_role("button")).to_have_count(0)
    await expect(observer.page.locator("#presence").get_by_role("button", name="Unmute")).to_have_count(0)
    await expert_row.get_by_role("button", name=re.compile("^Unmute")).click()
    await expect(expert_row.get_by_role("button", name=re.compile("^Mute"))).to_be_visible()
    await expect(expert_row.get_by_role("button", name=re.compile("^Unmute"))).to_have_count(0)
    await expect(expert.page.get_by_role("button", name="Camera")).to_be_enabled()

    # An interpreter reading Parley in Spanish: the booth's language in Spanish too.
    interpreter = await in_room(await open_tab("interpreter"), server, world, "interpreter")
    await staff_a_booth(server, world, "es", "es")
    await interpreter.page.reload()
    await expect(interpreter.page.locator("html")).to_have_attribute("lang", "es")
    await expect(interpreter.page.locator("#booth-heading")).to_have_text(re.compile(r"cabina de español"))
    await expect(interpreter.page.locator("#camera-reason")).to_have_text(re.compile(r"\S"))
    await expect(interpreter.page.locator("#camera")).to_be_disabled()
    interpreter_row = chair.page.locator("#presence li", has_text=world.members["interpreter"].name)
    await expect(interpreter_row).to_be_visible()
    await expect(interpreter_row.get_by_role("button")).to_have_count(0)
