"""The room's audio end to end: Chromium processes with their own fake microphones (one
sine tone each), a Parley server and its media engine (Janus, and the embedded one),
all in a network namespace of their own (tests/browser/media_world.py). A listener
tells whose audio it receives by each received track's dominant frequency.

Tones: floor speaker (the delegate) 440 Hz, booth A's active interpreter 660 Hz,
booth A's standby 880 Hz, booth B's interpreter 1100 Hz, others 1320 / 990 Hz."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, Playwright, async_playwright, expect

from server.config import Settings
from tests.browser.media_world import (
    MediaWorld,
    ack,
    has_tone,
    heard,
    join_audio,
    listen_to,
    media_world,
    mic_live,
    wait_for_tone,
)
from tests.conftest import login, socket_client
from tests.fixtures.databases import Templates

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

FLOOR_HZ, BOOTH_A_HZ, STANDBY_HZ, BOOTH_B_HZ, OBSERVER_HZ, EXPERT_HZ = 440, 660, 880, 1100, 990, 1320
ENGINES = ["janus", "embedded"]


@pytest.fixture
async def pw() -> AsyncIterator[Playwright]:
    async with async_playwright() as playwright:
        yield playwright


@pytest.fixture(params=ENGINES)
async def audio(
    request: pytest.FixtureRequest, templates: Templates, settings: Settings, tmp_path: Path, pw: Playwright
) -> AsyncIterator[MediaWorld]:
    # Media tests make a network namespace (root, as CI runs) and run Debian's janus,
    # which the test set-up installs (scripts/setup.sh --test).
    async with media_world(templates, settings, tmp_path / "media", pw, request.param) as world:
        yield world


async def tracks_labelled(audio: MediaWorld, page: Page, expected: dict[int, str]) -> None:
    """Every tone in ``expected`` arrives on a track labelled with its channel."""
    tracks = await heard(page)
    for hz, channel in expected.items():
        assert has_tone(tracks, hz, channel), (hz, channel, tracks)


class Chair:
    """The session's chair (the secretariat) through a plain Socket.IO client."""

    def __init__(self, audio: MediaWorld) -> None:
        self.audio = audio

    async def __aenter__(self) -> Chair:
        cookie = await login(self.audio.server, self.audio.world.members["secretariat"].invite_token)
        self.sio = await socket_client(self.audio.server, cookie)
        answer = await self.call("room.join")
        assert answer.get("ok"), answer
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sio.disconnect()

    async def call(self, event: str, **fields: object) -> dict[str, object]:
        answer: dict[str, object] = await self.sio.call(
            event, {"session_id": self.audio.session_id, **fields}, timeout=10
        )
        return answer


async def test_each_chromium_has_its_own_tone_and_reaches_the_server_in_the_namespace(audio: MediaWorld) -> None:
    """The harness itself: a page in the namespace opens its fake microphone and hears
    its own file's tone; the room page reaches the server there."""
    tab = await audio.participant("expert", EXPERT_HZ)
    hz = await tab.page.evaluate(
        """async () => {
            const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
            const ctx = new AudioContext();
            const analyser = ctx.createAnalyser();
            analyser.fftSize = 4096;
            ctx.createMediaStreamSource(stream).connect(analyser);
            await new Promise((r) => setTimeout(r, 700));
            const bins = new Float32Array(analyser.frequencyBinCount);
            analyser.getFloatFrequencyData(bins);
            let best = 1;
            for (let i = 1; i < bins.length; i += 1) if (bins[i] > bins[best]) best = i;
            for (const t of stream.getTracks()) t.stop();
            await ctx.close();
            return (best * ctx.sampleRate) / analyser.fftSize;
        }"""
    )
    assert abs(hz - EXPERT_HZ) < 25, hz


async def test_listeners_hear_the_floor_their_booth_and_relay_and_an_observer_cannot_publish(
    audio: MediaWorld,
) -> None:
    async with Chair(audio) as chair:
        delegate = await audio.participant("delegate", FLOOR_HZ)
        answer = await chair.call("floor.give", membership_id=audio.member("delegate"))
        assert answer.get("ok"), answer
        await mic_live(delegate.page)
        interpreter = await audio.participant("interpreter", BOOTH_A_HZ)
        await expect(interpreter.page.get_by_role("combobox", name="Listen source")).to_be_visible()
        await mic_live(interpreter.page)

        booth_listener = await audio.participant("expert", EXPERT_HZ)
        await join_audio(booth_listener.page, listen=audio.booths.a)
        floor_listener = await audio.participant("observer", OBSERVER_HZ)
        await join_audio(floor_listener.page, listen="floor")

        # The booth-A listener hears the interpreter (and the floor under it).
        await wait_for_tone(booth_listener.page, BOOTH_A_HZ)
        # The floor listener hears the floor, and no track with the interpreter's tone.
        await wait_for_tone(floor_listener.page, FLOOR_HZ)
        for _ in range(10):
            assert not has_tone(await heard(floor_listener.page), BOOTH_A_HZ)

        # Relay: booth B's interpreter listens to booth A.
        relay = await audio.participant("interpreter2", BOOTH_B_HZ)
        await join_audio(relay.page)
        await listen_to(relay.page, audio.booths.a, label="Listen source")
        await wait_for_tone(relay.page, BOOTH_A_HZ)

        # An interpreter asks the floor speaker to slow down: the speaker's page says so.
        await interpreter.page.get_by_role("button", name="Slow down").click()
        await expect(delegate.page.locator("#slowdown-notice")).to_be_visible()
        await expect(delegate.page.locator("#slowdown-notice")).to_contain_text("Slow down")
        await expect(floor_listener.page.locator("#slowdown-notice")).to_be_hidden()

        # The observer cannot publish: the Microphone is disabled with the server's
        # reason, and a forged media.publish through the page's own socket is refused.
        mic = floor_listener.page.get_by_role("button", name="Microphone", exact=True)
        await expect(mic).to_be_disabled()
        await expect(floor_listener.page.locator("#mic-reason")).not_to_be_empty()
        offer = await floor_listener.page.evaluate(
            """async () => {
                const pc = new RTCPeerConnection();
                pc.addTransceiver("audio", { direction: "sendonly" });
                const offer = await pc.createOffer();
                pc.close();
                return offer.sdp;
            }"""
        )
        refused = await ack(floor_listener.page, "media.publish", channel="floor", sdp=offer)
        assert refused.get("error", {}).get("code") == "forbidden", refused
        refused = await ack(floor_listener.page, "media.publish", channel=audio.booths.a, sdp=offer)
        assert refused.get("error", {}).get("code") == "forbidden", refused

        # Each received track is labelled with its channel (the offer's `tracks`), which
        # the original-audio mix needs: the floor under the booth, the booth at full.
        await tracks_labelled(audio, booth_listener.page, {BOOTH_A_HZ: audio.booths.a, FLOOR_HZ: "floor"})


async def test_ending_the_floor_silences_the_speaker_and_a_lost_connection_comes_back(audio: MediaWorld) -> None:
    async with Chair(audio) as chair:
        delegate = await audio.participant("delegate", FLOOR_HZ)
        answer = await chair.call("floor.give", membership_id=audio.member("delegate"))
        assert answer.get("ok"), answer
        await mic_live(delegate.page)
        listener = await audio.participant("observer", OBSERVER_HZ)
        await join_audio(listener.page, listen="floor")
        await wait_for_tone(listener.page, FLOOR_HZ)

        # The listener's peer connection is closed under it: it hears again within 5 s.
        started = time.monotonic()
        await listener.page.evaluate("window.parleyMedia.dropListening()")
        await wait_for_tone(listener.page, FLOOR_HZ, present=False, timeout=5)
        await wait_for_tone(listener.page, FLOOR_HZ, timeout=5)
        assert time.monotonic() - started < 5.0

        # The listener's connection to the server drops and comes back: after the re-join
        # it listens again by itself, and the speaker publishes again by itself.
        for tab in (listener, delegate):
            await tab.context.set_offline(True)
            await expect(tab.page.locator("#conn-status")).to_have_attribute("data-state", "lost")
            await tab.context.set_offline(False)
            await tab.connected()
        await wait_for_tone(listener.page, FLOOR_HZ, timeout=20)
        await expect(delegate.page.get_by_role("button", name="Microphone", exact=True)).to_have_attribute(
            "aria-pressed", "true", timeout=20_000
        )

        # Ending the floor cuts the speaker at once: silent at the listener within 1 s.
        started = time.monotonic()
        answer = await chair.call("floor.end")
        assert answer.get("ok"), answer
        await wait_for_tone(listener.page, FLOOR_HZ, present=False, timeout=5)
        assert time.monotonic() - started < 1.0
        # The speaker's page says the microphone is no longer live.
        await expect(delegate.page.get_by_role("button", name="Microphone", exact=True)).to_have_attribute(
            "aria-pressed", "false"
        )


async def test_a_booth_hand_over_switches_the_voice_within_a_second(audio: MediaWorld) -> None:
    active = await audio.participant("interpreter", BOOTH_A_HZ)
    await mic_live(active.page)
    standby = await audio.participant("interpreter3", STANDBY_HZ)
    await join_audio(standby.page)
    await standby.page.get_by_role("button", name="Microphone", exact=True).click()
    await expect(standby.page.locator("#mic-reason")).to_contain_text("standby")
    listener = await audio.participant("expert", EXPERT_HZ)
    await join_audio(listener.page, listen=audio.booths.a)
    await wait_for_tone(listener.page, BOOTH_A_HZ)
    assert not has_tone(await heard(listener.page), STANDBY_HZ)

    handover = active.page.get_by_role("button", name="Hand over")
    await expect(handover).to_be_enabled()
    started = time.monotonic()
    await handover.click()
    await wait_for_tone(listener.page, STANDBY_HZ, timeout=5)
    await wait_for_tone(listener.page, BOOTH_A_HZ, present=False, timeout=5)
    assert time.monotonic() - started < 1.0
    # The new active interpreter's Microphone is live; the old one's is not.
    await expect(standby.page.get_by_role("button", name="Microphone", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(active.page.get_by_role("button", name="Microphone", exact=True)).to_have_attribute(
        "aria-pressed", "false"
    )


# ---- against Janus only (fewer processes: the behaviour under test is the page's) --------


@pytest.fixture
async def janus_audio(templates: Templates, settings: Settings, tmp_path: Path, pw: Playwright
                      ) -> AsyncIterator[MediaWorld]:
    async with media_world(templates, settings, tmp_path / "media", pw, "janus") as world:
        yield world


# A media element's play() is refused (NotAllowedError, as under a browser's autoplay
# policy) until the page's "Resume audio" button is clicked.
REFUSE_PLAY_UNTIL_RESUMED = """
(() => {
  const play = HTMLMediaElement.prototype.play;
  let allowed = false;
  document.addEventListener("click", (e) => {
    if (e.target && e.target.id === "resume-audio") allowed = true;
  }, true);
  HTMLMediaElement.prototype.play = function () {
    if (allowed) return play.call(this);
    return Promise.reject(new DOMException("play() needs a user gesture", "NotAllowedError"));
  };
})();
"""


def mic_button(page: Page) -> Locator:
    return page.get_by_role("button", name="Microphone", exact=True)


async def test_the_audio_comes_back_after_a_reload_with_the_microphone_off(janus_audio: MediaWorld) -> None:
    audio = janus_audio
    interpreter = await audio.participant("interpreter", BOOTH_A_HZ)
    await mic_live(interpreter.page)
    listener = await audio.participant("expert", EXPERT_HZ)
    await join_audio(listener.page, listen=audio.booths.a)
    await wait_for_tone(listener.page, BOOTH_A_HZ, channel=audio.booths.a)

    # The listener reloads: back in the audio, on the same channel, with no click.
    started = time.monotonic()
    await listener.page.reload()
    await wait_for_tone(listener.page, BOOTH_A_HZ, channel=audio.booths.a, timeout=5)
    assert time.monotonic() - started < 5.0
    await expect(listener.page.locator("#audio-panel")).to_have_attribute("data-joined", "true")
    await expect(listener.page.get_by_role("button", name="Join audio")).to_be_hidden()
    await expect(listener.page.get_by_role("combobox", name="Listen to")).to_have_value(audio.booths.a)
    await expect(listener.page.get_by_role("button", name="Resume audio")).to_be_hidden()

    # The interpreter reloads: back in the audio too, but the microphone stays off (and
    # the page says so) until they turn it on again.
    await interpreter.page.reload()
    await expect(interpreter.page.locator("#audio-panel")).to_have_attribute("data-joined", "true")
    await expect(mic_button(interpreter.page)).to_have_attribute("aria-pressed", "false")
    await expect(interpreter.page.locator("#mic-reason")).to_have_text(
        "Your microphone stayed off when the page reloaded; turn it on to speak."
    )
    assert not await interpreter.page.evaluate("window.parleyMedia.micOpen()")
    await wait_for_tone(listener.page, BOOTH_A_HZ, present=False, timeout=10)
    await mic_button(interpreter.page).click()
    await expect(mic_button(interpreter.page)).to_have_attribute("aria-pressed", "true", timeout=20_000)
    await wait_for_tone(listener.page, BOOTH_A_HZ, channel=audio.booths.a)

    # A browser that refuses to play until a click: after the reload the page is back
    # in the audio, offers "Resume audio" and says why it is silent; the click brings
    # the sound back. (Simulated: Playwright's own page evaluations count as user
    # gestures, so Chromium's autoplay policy never bites under test.)
    strict = await audio.participant("observer", OBSERVER_HZ)
    await join_audio(strict.page, listen=audio.booths.a)
    await wait_for_tone(strict.page, BOOTH_A_HZ)
    await strict.context.add_init_script(REFUSE_PLAY_UNTIL_RESUMED)
    await strict.page.reload()
    resume = strict.page.get_by_role("button", name="Resume audio")
    await expect(resume).to_be_visible()
    await expect(strict.page.locator("#audio-state")).to_have_text(
        "Your browser paused the audio: press Resume audio to hear it."
    )
    assert not has_tone(await heard(strict.page), BOOTH_A_HZ)
    await resume.click()
    await wait_for_tone(strict.page, BOOTH_A_HZ, channel=audio.booths.a, timeout=5)
    await expect(resume).to_be_hidden()
    await expect(strict.page.locator("#audio-state")).to_have_text("Listening to Spanish.")

    # Leave audio is remembered too: after a reload the listener stays out.
    await listener.page.get_by_role("button", name="Leave audio").click()
    await listener.page.reload()
    await expect(listener.page.get_by_role("button", name="Join audio")).to_be_enabled()
    await expect(listener.page.locator("#audio-panel")).to_have_attribute("data-joined", "false")
    assert await heard(listener.page) == []


async def test_the_audio_comes_back_after_a_server_restart(janus_audio: MediaWorld) -> None:
    audio = janus_audio
    delegate = await audio.participant("delegate", FLOOR_HZ)
    async with Chair(audio) as chair:
        answer = await chair.call("floor.give", membership_id=audio.member("delegate"))
        assert answer.get("ok"), answer
    await mic_live(delegate.page)
    listener = await audio.participant("observer", OBSERVER_HZ)
    await join_audio(listener.page, listen="floor")
    await wait_for_tone(listener.page, FLOOR_HZ)

    # The server process goes away (its Janus rooms with it) and a new one starts on
    # the same port and database; Janus keeps running.
    await audio.restart()
    started = time.monotonic()
    for tab in (delegate, listener):
        await expect(tab.page.locator("#conn-status")).to_have_attribute("data-state", "ok", timeout=10_000)
    await wait_for_tone(listener.page, FLOOR_HZ, channel="floor", timeout=10)
    assert time.monotonic() - started < 10.0
    await expect(mic_button(delegate.page)).to_have_attribute("aria-pressed", "true")


async def floor_at_full(page: Page, *, timeout: float = 5.0) -> float:
    """Wait until ``page`` hears the floor's tone at full level and no interpreter's
    tone (the booth carries the floor); the seconds it took."""
    start = time.monotonic()
    tracks = []
    while time.monotonic() - start < timeout:
        tracks = await heard(page)
        floor_full = any(t["gain"] > 0.9 and has_tone([t], FLOOR_HZ) for t in tracks)
        if floor_full and not has_tone(tracks, BOOTH_A_HZ):
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"the floor did not come through at full level in {timeout} s: {tracks}")


async def test_cough_and_the_booth_carrying_the_floor_act_within_a_second(janus_audio: MediaWorld) -> None:
    audio = janus_audio
    async with Chair(audio) as chair:
        delegate = await audio.participant("delegate", FLOOR_HZ)
        answer = await chair.call("floor.give", membership_id=audio.member("delegate"))
        assert answer.get("ok"), answer
        await mic_live(delegate.page)
        interpreter = await audio.participant("interpreter", BOOTH_A_HZ)
        await mic_live(interpreter.page)
        listener = await audio.participant("expert", EXPERT_HZ)
        await join_audio(listener.page, listen=audio.booths.a)
        await wait_for_tone(listener.page, BOOTH_A_HZ, channel=audio.booths.a)
        page = interpreter.page

        # Cough, held: the booth's channel goes silent at the listener within 1 s, and
        # comes back when it is released.
        cough = page.get_by_role("button", name="Cough")
        await expect(cough).to_be_enabled()
        await cough.hover()
        started = time.monotonic()
        await page.mouse.down()
        await wait_for_tone(listener.page, BOOTH_A_HZ, present=False, timeout=5)
        assert time.monotonic() - started < 1.0
        await expect(cough).to_have_attribute("aria-pressed", "true")
        started = time.monotonic()
        await page.mouse.up()
        await wait_for_tone(listener.page, BOOTH_A_HZ, channel=audio.booths.a, timeout=5)
        assert time.monotonic() - started < 1.0
        await expect(cough).to_have_attribute("aria-pressed", "false")
        await expect(mic_button(page)).to_have_attribute("aria-pressed", "true")

        # "Booth carries the floor": the booth's listener hears the floor speaker at full
        # level, and not the interpreter, within 1 s; switched back, the interpreter.
        carries = page.get_by_role("button", name="Booth carries the floor")
        started = time.monotonic()
        await carries.click()
        await floor_at_full(listener.page)
        assert time.monotonic() - started < 1.0
        await expect(carries).to_have_attribute("aria-pressed", "true")
        await carries.click()
        await wait_for_tone(listener.page, BOOTH_A_HZ, channel=audio.booths.a, timeout=5)
        await expect(carries).to_have_attribute("aria-pressed", "false")


async def test_a_chairs_unmute_lets_an_expert_without_the_floor_speak(janus_audio: MediaWorld) -> None:
    audio = janus_audio
    async with Chair(audio) as chair:
        expert = await audio.participant("expert", EXPERT_HZ)
        await join_audio(expert.page)
        mic = mic_button(expert.page)
        await expect(mic).to_be_disabled()
        listener = await audio.participant("observer", OBSERVER_HZ)
        await join_audio(listener.page, listen="floor")

        answer = await chair.call("media.unmute", membership_id=audio.member("expert"))
        assert answer.get("ok"), answer
        await expect(mic).to_be_enabled()
        await mic.click()
        await expect(mic).to_have_attribute("aria-pressed", "true", timeout=20_000)
        await wait_for_tone(listener.page, EXPERT_HZ, channel="floor")

        # Muted again by the chair: cut at once.
        answer = await chair.call("media.mute", membership_id=audio.member("expert"))
        assert answer.get("ok"), answer
        await wait_for_tone(listener.page, EXPERT_HZ, present=False, timeout=5)
        await expect(mic).to_have_attribute("aria-pressed", "false")


async def test_talk_back_reaches_the_booth_partner_only(audio: MediaWorld) -> None:
    active = await audio.participant("interpreter", BOOTH_A_HZ)
    await mic_live(active.page)
    partner = await audio.participant("interpreter3", STANDBY_HZ)
    await join_audio(partner.page)
    listener = await audio.participant("expert", EXPERT_HZ)
    await join_audio(listener.page, listen=audio.booths.a)
    await wait_for_tone(listener.page, BOOTH_A_HZ, channel=audio.booths.a)

    # The active interpreter opens the talk-back line: the partner receives a track
    # labelled "talkback" carrying their tone, at full level, and the page says so.
    talkback = active.page.get_by_role("button", name="Talk-back")
    await expect(talkback).to_be_enabled()
    await talkback.click()
    await expect(talkback).to_have_attribute("aria-pressed", "true")
    await wait_for_tone(partner.page, BOOTH_A_HZ, channel="talkback")
    assert any(t["channel"] == "talkback" and t["gain"] > 0.9 for t in await heard(partner.page))
    await expect(partner.page.locator("#talkback-heard")).to_be_visible()
    # Meanwhile the booth's listener hears neither the aside nor the microphone (held
    # off the air while the line is open), and gets no talk-back track at all.
    await wait_for_tone(listener.page, BOOTH_A_HZ, present=False, timeout=5)
    await expect(active.page.locator("#mic-reason")).to_have_text("Talk-back is open: only your booth partner hears you.")
    for _ in range(10):
        tracks = await heard(listener.page)
        assert not any(t["channel"] == "talkback" for t in tracks), tracks
        assert not has_tone(tracks, BOOTH_A_HZ), tracks
        await asyncio.sleep(0.1)

    # Closed again: the partner's talk-back track goes, the booth is on the air again.
    await talkback.click()
    await expect(talkback).to_have_attribute("aria-pressed", "false")
    await wait_for_tone(partner.page, BOOTH_A_HZ, channel="talkback", present=False, timeout=5)
    await expect(partner.page.locator("#talkback-heard")).to_be_hidden()
    await wait_for_tone(listener.page, BOOTH_A_HZ, channel=audio.booths.a, timeout=5)
    await expect(mic_button(active.page)).to_have_attribute("aria-pressed", "true")


async def video_shown(page: Page, timeout: float = 20) -> list[dict[str, object]]:
    """Wait until the page plays at least one floor video with frames; the videos."""
    deadline = time.monotonic() + timeout
    videos: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        videos = await page.evaluate("window.parleyMedia.videos()")
        if any(v["playing"] and isinstance(v["width"], int) and v["width"] > 0 for v in videos):
            return videos
        await asyncio.sleep(0.1)
    raise AssertionError(f"no floor video played in {timeout} s: {videos}")


async def test_the_floor_speakers_camera_reaches_who_asks_for_video(janus_audio: MediaWorld) -> None:
    """The floor speaker turns the Camera on: a listener in "Audio only" (the default)
    receives no video track at all; with "Audio only" off, the same listener sees the
    camera play in the video area; the Camera off, it goes."""
    audio = janus_audio
    async with Chair(audio) as chair:
        speaker = await audio.participant("delegate", FLOOR_HZ)
        camera = speaker.page.get_by_role("button", name="Camera")
        await expect(camera).to_be_disabled()  # no floor yet
        answer = await chair.call("floor.give", membership_id=audio.member("delegate"))
        assert answer.get("ok"), answer
        await mic_live(speaker.page)
        await expect(camera).to_be_enabled()
        await camera.click()
        await expect(camera).to_have_attribute("aria-pressed", "true")
        await expect(speaker.page.locator("#camera-reason")).to_have_text(
            "Your camera is sent with your microphone.", timeout=20_000
        )

        viewer = await audio.participant("expert", EXPERT_HZ)
        page = viewer.page
        await join_audio(page, listen="floor")
        audio_only = page.get_by_role("button", name="Audio only")
        await expect(audio_only).to_have_attribute("aria-pressed", "true")
        # Audio only: the floor is heard, and no video track is received.
        await wait_for_tone(page, FLOOR_HZ, channel="floor")
        for _ in range(5):
            assert await page.evaluate("window.parleyMedia.videoTracks()") == 0
            assert await page.evaluate("window.parleyMedia.videos()") == []
            await asyncio.sleep(0.1)
        await expect(page.locator("#video-area")).to_be_hidden()

        # Audio only off: the speaker's camera plays, labelled, and the floor is heard.
        await audio_only.click()
        await expect(audio_only).to_have_attribute("aria-pressed", "false")
        await video_shown(page)
        video = page.get_by_role("group", name="Video of the floor").locator("video")
        await expect(video).to_have_count(1)
        await expect(video).to_have_attribute("aria-label", "Video of the floor")
        await wait_for_tone(page, FLOOR_HZ, channel="floor")

        # Camera off: the publication is audio only again, the video goes.
        await camera.click()
        await expect(camera).to_have_attribute("aria-pressed", "false")
        await expect(video).to_have_count(0, timeout=15_000)
        await wait_for_tone(page, FLOOR_HZ, channel="floor")
