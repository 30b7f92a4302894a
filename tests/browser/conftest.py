"""Headless Chromium (Debian's) driven by Playwright, against a real Parley server.

Browser tests run on SQLite only: the server paths they cover are the same on both
backends, and the database tests elsewhere run on PostgreSQL too. Every page a test
opens is watched for console errors, uncaught exceptions and Content-Security-Policy
violations; any of them fails the test.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright, expect

from server.web.keys import REALTIME
from tests.conftest import LiveServer
from tests.fixtures.databases import Templates

CHROMIUM = os.environ.get("PARLEY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
]
LAPTOP = {"width": 1366, "height": 768}
TIMEOUT_MS = 10_000

# CSP violations are reported to the page as events; make them console errors too.
WATCH_CSP = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline code"}`);
});
"""


@pytest.fixture
async def db_url(templates: Templates, tmp_path: Path) -> str:
    """SQLite only (overrides the two-backend fixture for this directory)."""
    return await templates.sqlite_copy(tmp_path / "parley.db")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `bash scripts/setup.sh --test` (Debian package chromium)")
    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@dataclass
class Tab:
    """One participant's browser: its own context (cookies), one page, what went wrong."""

    name: str
    context: BrowserContext
    page: Page
    problems: list[str] = field(default_factory=list)

    async def join(self, invite_url: str) -> None:
        """Open an invitation link and press Join, as a participant does."""
        await self.page.goto(invite_url)
        await self.page.get_by_role("button", name="Join").click()
        await self.page.wait_for_url(re.compile(r"/visits/[^/?]+"))

    async def enter_room(self, session_title: str) -> None:
        """Follow the session's link on the visit page; wait until the room is live."""
        await self.page.get_by_role("link", name=session_title, exact=True).click()
        await self.page.wait_for_url(re.compile(r"/sessions/[^/?]+"))
        await self.connected()

    async def connected(self) -> None:
        await expect(self.page.locator("#conn-status")).to_have_attribute("data-state", re.compile("ok|waiting"))


OpenTab = Callable[[str], Awaitable[Tab]]


async def new_tab(browser: Browser, name: str, base_url: str) -> Tab:
    """A fresh browser context (its own cookies) on a laptop screen, watched for errors."""
    context = await browser.new_context(viewport=LAPTOP, locale="en-GB", base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    await context.add_init_script(WATCH_CSP)
    page = await context.new_page()
    tab = Tab(name, context, page)

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            tab.problems.append(f"console error on {page.url}: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: tab.problems.append(f"uncaught exception on {page.url}: {exc}"))
    return tab


async def close_tabs(tabs: list[Tab]) -> None:
    """Close every context; fail if any page logged an error or a CSP violation."""
    problems = [f"[{tab.name}] {p}" for tab in tabs for p in tab.problems]
    for tab in tabs:
        await tab.context.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
async def open_tab(browser: Browser, server: LiveServer) -> AsyncIterator[OpenTab]:
    """Factory: a new participant's browser against the test server."""
    tabs: list[Tab] = []

    async def make(name: str) -> Tab:
        tab = await new_tab(browser, name, server.url)
        tabs.append(tab)
        return tab

    yield make
    try:
        await close_tabs(tabs)
    finally:
        await settled(server)


async def settled(server: LiveServer, timeout: float = 10.0) -> None:
    """Wait until the server has finished with every closed browser connection (their
    disconnect handlers write to the database), so stopping it cancels nothing."""
    eio = server.app[REALTIME].sio.eio
    deadline = time.monotonic() + timeout
    while eio.sockets and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
