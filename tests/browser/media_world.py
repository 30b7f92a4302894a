"""Helpers for end-to-end audio tests: real Chromium processes with their own fake
microphones, a Parley server and its media engine, all inside one network namespace.

* Each participant is a Chromium **process** of its own (``--use-file-for-fake-audio-
  capture`` is per process), whose microphone plays a WAV file holding one sine tone;
  a listener tells whose audio it receives by the dominant frequency of each received
  track (the page's ``window.parleyMedia.tracks()``: per track its ``mid``, ``channel``
  and dominant ``frequency``, or ``None`` when silent).
* Chromium runs in the namespace through a small wrapper script (``ip netns exec``);
  Playwright drives it over a pipe, so nothing of the test reaches it through the
  network.
* The Parley server runs in this test's event loop, with the event loop's thread moved
  into the namespace (``setns``) while the world exists: it reaches Janus on the
  namespace's 127.0.0.1, and the browsers reach it there too. The thread goes back to
  its own namespace at the end.

WebRTC skips loopback when gathering candidates, hence the namespace (tests/fixtures/
netns.py): its veth addresses are the only ones ICE sees, and Chromium does not hide
them behind mDNS names (``--disable-features=WebRtcHideLocalIpsWithMdns``).
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import os
import re
import struct
import time
import wave
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import web
from playwright.async_api import Browser, Page, Playwright, ViewportSize, expect

from server.audit import service as audit
from server.booths import service as booths
from server.config import Settings
from server.db.session import make_engine, make_sessionmaker
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, LAPTOP, TIMEOUT_MS, WATCH_CSP, Tab, settled
from tests.conftest import LiveServer, start_server
from tests.fixtures.databases import Templates
from tests.fixtures.janus import Janus, running_janus
from tests.fixtures.netns import Netns, network_namespace
from tests.fixtures.world import World, build_world

CLONE_NEWNET = 0x40000000
MAX_BROWSERS = 5  # Chromium processes per test
SAMPLE_RATE = 48_000
TOLERANCE_HZ = 25.0  # an FFT bin is 48000 / 4096 = 11.7 Hz; Opus adds a little

# The fake microphone: each process plays its own file, looped; no permission prompt.
MEDIA_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]


# ---- tones -----------------------------------------------------------------------------


def tone_wav(path: Path, hz: float, seconds: float = 5.0, amplitude: float = 0.5) -> Path:
    """A mono 16-bit WAV of one sine tone (a whole number of cycles, so it loops cleanly)."""
    frames = int(SAMPLE_RATE * seconds)
    cycles = max(1, round(hz * frames / SAMPLE_RATE))
    step = 2 * math.pi * cycles / frames
    peak = int(32767 * amplitude)
    data = b"".join(struct.pack("<h", int(peak * math.sin(i * step))) for i in range(frames))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(data)
    return path


# ---- the namespace ---------------------------------------------------------------------


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@contextmanager
def thread_in(ns: Netns) -> Iterator[None]:
    """Move the calling thread (and what it starts: sockets, child processes) into
    ``ns``; back to where it was at the end."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{ns.name}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def chromium_wrapper(ns: Netns, folder: Path) -> Path:
    """An executable that runs Debian's Chromium inside ``ns`` with the arguments it gets."""
    script = folder / "chromium-in-netns"
    script.write_text(f'#!/bin/sh\nexec ip netns exec {ns.name} {CHROMIUM} "$@"\n')
    script.chmod(0o755)
    return script


# ---- the world -------------------------------------------------------------------------


@dataclass
class Booths:
    """Booth "es" (A): interpreter active, interpreter3 standby; booth "en" (B):
    interpreter2 alone."""

    a: str = "es"
    b: str = "en"
    a_ids: tuple[str, ...] = ()
    b_ids: tuple[str, ...] = ()


@dataclass
class MediaWorld:
    ns: Netns
    engine: str
    server: LiveServer
    world: World
    booths: Booths
    folder: Path
    playwright: Playwright
    janus: Janus | None = None
    wrapper: Path | None = None
    settings: Settings | None = None
    runner: web.AppRunner | None = None
    tabs: list[Tab] = field(default_factory=list)
    browsers: list[Browser] = field(default_factory=list)

    def invite(self, key: str) -> str:
        return f"{self.server.url}/invite/{self.world.members[key].invite_token}"

    def member(self, key: str) -> str:
        return self.world.members[key].membership_id

    @property
    def session_id(self) -> str:
        return self.world.sessions["open"]

    async def restart(self) -> None:
        """Stop the Parley server and start a new one: same port, same database, same
        engine (a Janus keeps running; the new process makes its own rooms there)."""
        assert self.runner is not None and self.settings is not None
        await self.runner.cleanup()
        self.runner = None
        self.server, self.runner = await start_server(self.settings)

    async def participant(self, key: str, hz: float | None) -> Tab:
        """A Chromium process of its own whose microphone plays ``hz`` (or the fake
        device's own beep when None), signed in as ``key`` and in the open session's room."""
        if len(self.browsers) >= MAX_BROWSERS:
            raise RuntimeError(f"at most {MAX_BROWSERS} Chromium processes per test")
        args = [*CHROMIUM_ARGS, *MEDIA_ARGS]
        if hz is not None:
            wav = tone_wav(self.folder / f"{key}-{int(hz)}.wav", hz)
            args.append(f"--use-file-for-fake-audio-capture={wav}")
        assert self.wrapper is not None
        browser = await self.playwright.chromium.launch(executable_path=str(self.wrapper), args=args)
        self.browsers.append(browser)
        viewport = ViewportSize(width=LAPTOP["width"], height=LAPTOP["height"])
        context = await browser.new_context(viewport=viewport, locale="en-GB", base_url=self.server.url)
        context.set_default_timeout(TIMEOUT_MS)
        await context.add_init_script(WATCH_CSP)
        page = await context.new_page()
        tab = Tab(key, context, page)

        def on_console(msg: Any) -> None:
            if msg.type == "error":
                tab.problems.append(f"console error on {page.url}: {msg.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: tab.problems.append(f"uncaught exception on {page.url}: {exc}"))
        self.tabs.append(tab)
        await tab.join(self.invite(key))
        try:
            await tab.enter_room("open session")
        except AssertionError:
            # Chromium drops a page's requests (net::ERR_NETWORK_CHANGED) when the
            # namespace's interfaces change under it, as when another test's veth pair
            # goes away: an event of the test machine, not of Parley. Load it once more.
            changed = [p for p in tab.problems if "ERR_NETWORK_CHANGED" in p]
            if not changed:
                raise
            tab.problems[:] = [p for p in tab.problems if p not in changed]
            await page.reload()
            await tab.connected()
        await expect(page.locator("#room")).to_be_visible()
        return tab

    async def close(self) -> list[str]:
        problems = [f"[{t.name}] {p}" for t in self.tabs for p in t.problems]
        for tab in self.tabs:
            await tab.context.close()
        for browser in self.browsers:
            await browser.close()
        return problems


async def _staff_booths(settings: Settings, world: World) -> Booths:
    engine = make_engine(settings.database_url)
    try:
        sessions = make_sessionmaker(engine, info=audit.session_info(settings))
        found = Booths()
        async with sessions() as db:
            a = (world.members["interpreter"].membership_id, world.members["interpreter3"].membership_id)
            b = (world.members["interpreter2"].membership_id,)
            await booths.create_booth(db, world.visit_id, found.a, a, actor_person_id=None)
            await booths.create_booth(db, world.visit_id, found.b, b, actor_person_id=None)
            await db.commit()
        return replace(found, a_ids=a, b_ids=b)
    finally:
        await engine.dispose()


async def _build(settings: Settings) -> World:
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine, info=audit.session_info(settings))() as db:
            return await build_world(db, settings, extra_interpreters=2)
    finally:
        await engine.dispose()


@asynccontextmanager
async def media_world(
    templates: Templates, settings: Settings, folder: Path, playwright: Playwright, engine: str
) -> AsyncIterator[MediaWorld]:
    """A namespace, the engine (``janus``: Debian's Janus in the namespace; ``embedded``),
    a Parley server using it, and the test world with its two booths. Participants come
    from ``MediaWorld.participant``. At the end every page is checked for console
    errors and CSP violations."""
    folder.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        ns = stack.enter_context(network_namespace())
        stack.enter_context(thread_in(ns))
        janus = None
        changes: dict[str, Any] = {"media_engine": engine}
        if engine == "janus":
            janus = stack.enter_context(running_janus(folder / "janus", netns=ns))
            changes.update(janus_url=janus.url, janus_api_secret=janus.api_secret, janus_admin_key=janus.admin_key)
        configured = replace(settings, **changes)
        world = await _build(configured)
        staffed = await _staff_booths(configured, world)
        live, runner = await start_server(configured)
        mw = MediaWorld(ns, engine, live, world, staffed, folder, playwright, janus, settings=configured,
                        runner=runner)

        async def stop_server() -> None:  # the one running at the end (a test may restart it)
            if mw.runner is not None:
                await settled(mw.server)
                await mw.runner.cleanup()

        stack.push_async_callback(stop_server)
        mw.wrapper = chromium_wrapper(ns, folder)
        problems: list[str] = []

        async def close() -> None:
            problems.extend(await mw.close())

        stack.push_async_callback(close)
        yield mw
    assert not problems, "\n".join(problems)


# ---- what a page hears -------------------------------------------------------------------


async def heard(page: Page) -> list[dict[str, Any]]:
    """Per received track: mid, channel, dominant frequency (None when silent), db, gain."""
    tracks: list[dict[str, Any]] = await page.evaluate("window.parleyMedia.tracks()")
    return tracks


def has_tone(tracks: list[dict[str, Any]], hz: float, channel: str | None = None) -> bool:
    return any(
        t["frequency"] is not None and abs(t["frequency"] - hz) <= TOLERANCE_HZ
        and (channel is None or t["channel"] == channel)
        for t in tracks
    )


async def wait_for_tone(page: Page, hz: float, *, channel: str | None = None, present: bool = True,
                        timeout: float = 20.0) -> float:
    """Wait until ``page`` hears ``hz`` (or, with ``present=False``, no longer hears it);
    return the seconds it took. Fails with what was heard."""
    start = time.monotonic()
    tracks: list[dict[str, Any]] = []
    while time.monotonic() - start < timeout:
        tracks = await heard(page)
        if has_tone(tracks, hz, channel) == present:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    state = await page.evaluate("window.parleyMedia.state()")
    what = "hear" if present else "stop hearing"
    raise AssertionError(f"did not {what} {hz} Hz in {timeout} s; tracks {tracks}; media state {state}")


async def mic_live(page: Page) -> None:
    """Join audio and turn the microphone on; wait until the page says it is live."""
    await join_audio(page)
    mic = page.get_by_role("button", name="Microphone", exact=True)
    await expect(mic).to_be_enabled()
    await mic.click()
    await expect(mic).to_have_attribute("aria-pressed", "true", timeout=20_000)


async def join_audio(page: Page, listen: str | None = None) -> None:
    join = page.get_by_role("button", name="Join audio")
    await expect(join).to_be_enabled(timeout=20_000)
    await join.click()
    await expect(page.locator("#audio-panel")).to_have_attribute("data-joined", "true")
    if listen is not None:
        await listen_to(page, listen)


async def listen_to(page: Page, channel: str, *, label: str = "Listen to") -> None:
    select = page.get_by_role("combobox", name=label)
    await select.select_option(channel)
    await expect(page.locator("#audio-state")).to_have_text(re.compile("Listening to"))


async def ack(page: Page, event: str, **fields: Any) -> dict[str, Any]:
    """Send a raw event through the page's own socket; the server's acknowledgement."""
    session_id = await page.evaluate("JSON.parse(document.getElementById('room-data').textContent).session_id")
    answer: dict[str, Any] = await page.evaluate(
        "([e, p]) => window.parleyMedia.ask(e, p)", [event, {"session_id": session_id, **fields}]
    )
    return answer
