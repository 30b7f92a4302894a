"""What the evidence room's browser tests share: one real Parley server and one
Chromium per test module, a browser context per person signed in through their
invitation (or a device link, for a second browser of the same person), every page
watched for console errors, uncaught exceptions and CSP violations."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from server.config import Settings
from server.web.keys import SESSIONS
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, WATCH_CSP
from tests.conftest import LiveServer, free_port, start_server
from tests.fixtures.databases import Templates
from tests.fixtures.world import World, build_world

MiB = 1024 * 1024


@dataclass
class Person_:
    key: str
    page: Page
    code: str = ""


@dataclass
class Env:
    server: LiveServer
    world: World
    browser: Browser
    files: Path
    people: dict[str, Person_] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def room_url(self) -> str:
        return f"/visits/{self.world.visit_id}/evidence"

    async def open(self, key: str, name: str | None = None) -> Person_:
        """A new browser context for `key`, signed in through their invitation link."""
        context = await self.browser.new_context(base_url=self.server.url, accept_downloads=True, locale="en-GB")
        context.set_default_timeout(15_000)
        await context.add_init_script(WATCH_CSP)
        page = await context.new_page()
        label = name or key
        # The cuts the tests make themselves show as reset connections; anything else fails.
        page.on("console", lambda m: self.problems.append(f"[{label}] {m.text}")
                if m.type == "error" and "ERR_CONNECTION_RESET" not in m.text else None)
        page.on("pageerror", lambda exc: self.problems.append(f"[{label}] uncaught: {exc}"))
        if name is None:
            await page.goto(f"/invite/{self.world.members[key].invite_token}")
            await page.get_by_role("button", name=re.compile("^(Join|Unirse)")).click()
            await page.wait_for_url(re.compile(r"/visits/[^/?]+"))
        else:
            # The same person on another browser: a one-time "add a device" link made
            # from their first one (an invitation link is spent once).
            made = await self.people[key].page.request.post("/api/me/device-links", headers={"Origin": self.server.url})
            assert made.ok, await made.text()
            spent = await context.request.post((await made.json())["url"], headers={"Origin": self.server.url})
            assert spent.status == 204, await spent.text()
        await page.goto(self.room_url)
        await ready(page)
        person = Person_(key, page)
        if name is None:
            self.people[key] = person
        return person

    def file(self, name: str, data: bytes) -> Path:
        path = self.files / name
        path.write_bytes(data)
        return path


async def browser_server_settings(templates: Templates, tmp: Path, secret: bytes) -> Settings:
    """Settings for a server on a copy of the template database and a free port, for a
    module that drives Chromium (which must be installed)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `bash scripts/setup.sh --test` (Debian package chromium)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    return Settings(
        var_dir=tmp / "var", database_url=await templates.sqlite_copy(tmp / "parley.db"), redis_url=None,
        storage_dir=tmp / "storage", host="127.0.0.1", port=port, base_url=base, allowed_origins=(base,),
        secret_key=secret,
    )


@asynccontextmanager
async def evidence_env(templates: Templates, tmp: Path) -> AsyncIterator[Env]:
    """A server on a copy of the template database with a ready-made visit, and Chromium."""
    settings = await browser_server_settings(templates, tmp, b"test-secret-key-evidence-room")
    live, runner = await start_server(settings)
    files = tmp / "files"
    files.mkdir()
    try:
        async with live.app[SESSIONS]() as db:
            world = await build_world(db, settings)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            e = Env(live, world, browser, files)
            yield e
            await browser.close()
            assert not e.problems, e.problems
    finally:
        await runner.cleanup()


async def ready(page: Page) -> None:
    await expect(page.locator("body")).to_have_attribute("data-evidence-ready", "yes")


async def set_up_device(person: Person_) -> str:
    page = person.page
    await page.get_by_role("button", name="Set up encryption on this browser").click()
    code = (await page.locator("#ev-recovery-code").text_content() or "").strip()
    assert re.fullmatch(r"([A-Z2-7]{4}-){7}[A-Z2-7]{4}", code), code
    await page.get_by_role("button", name="I have saved it").click()
    await expect(page.locator("#ev-recovery-code")).to_have_count(0)
    await expect(page.locator("#ev-own-code")).to_have_text(re.compile(r"^\d{5} \d{5} \d{5} \d{5}$"))
    person.code = code
    return code


def device_row(page: Page, person_id: str) -> Any:
    return page.locator(f'.ev-person[data-person="{person_id}"] .ev-device')


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def doc_row(page: Page, name: str) -> Any:
    return page.locator(".ev-doc", has=page.locator(".ev-doc-name", has_text=name))
