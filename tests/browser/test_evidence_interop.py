"""Round trips between the two clients of the evidence room, against a real server: a
file uploaded with `parley client` opens in the browser page (/visits/{visit}/evidence)
under its name with identical bytes, and a file uploaded through the page downloads
with `parley client` byte-identical under its name.

The delegate works from the command line, the expert in the browser. Both devices
exist before either uploads, so each side pins the other's device on first sight and
puts it among the recipients. One server and one browser for the module."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, WATCH_CSP
from tests.conftest import LiveServer
from tests.fixtures.databases import Templates
from tests.fixtures.world import World
from tests.parley_client.live import ID, Cli, live_server, new_cli

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

MiB = 1024 * 1024


@dataclass
class Env:
    server: LiveServer
    world: World
    browser: Browser
    tmp: Path
    page: Page | None = None  # the expert's browser
    cli: Cli | None = None  # the delegate's command-line client
    problems: list[str] = field(default_factory=list)

    @property
    def room_url(self) -> str:
        return f"/visits/{self.world.visit_id}/evidence"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `bash scripts/setup.sh --test` (Debian package chromium)")
    tmp = tmp_path_factory.mktemp("evidence-interop")
    async with live_server(templates, tmp) as (live, world), async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        e = Env(live, world, browser, tmp)
        try:
            yield e
        finally:
            await browser.close()
        assert not e.problems, e.problems


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def doc_row(page: Page, name: str) -> Locator:
    return page.locator(".ev-doc", has=page.locator(".ev-doc-name", has_text=name))


async def ready(page: Page) -> None:
    await expect(page.locator("body")).to_have_attribute("data-evidence-ready", "yes")


async def test_both_people_set_up_their_devices(env: Env) -> None:
    # The expert, in the browser: join, set up encryption.
    context = await env.browser.new_context(base_url=env.server.url, accept_downloads=True, locale="en-GB")
    context.set_default_timeout(15_000)
    await context.add_init_script(WATCH_CSP)
    page = env.page = await context.new_page()
    page.on("console", lambda m: env.problems.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda exc: env.problems.append(f"uncaught: {exc}"))
    await page.goto(f"/invite/{env.world.members['expert'].invite_token}")
    await page.get_by_role("button", name="Join").click()
    await page.wait_for_url(re.compile(r"/visits/[^/?]+"))
    await page.goto(env.room_url)
    await ready(page)
    await page.get_by_role("button", name="Set up encryption on this browser").click()
    await page.get_by_role("button", name="I have saved it").click()
    await expect(page.locator("#ev-own-code")).to_have_text(re.compile(r"^\d{5} \d{5} \d{5} \d{5}$"))
    browser_code = await page.locator("#ev-own-code").text_content()

    # The delegate, on the command line: enroll from the invitation link.
    cli = env.cli = new_cli(env.tmp, "delegate")
    enrolled = await cli.run("enroll", f"{env.server.url}/invite/{env.world.members['delegate'].invite_token}")
    assert enrolled.code == 0, enrolled.err

    # Each sees the other's device, with the safety code the other shows.
    await page.reload()
    await ready(page)
    row = page.locator(f'.ev-person[data-person="{env.world.members["delegate"].person_id}"] .ev-device')
    await expect(row.locator(".badge")).to_have_text("pinned")
    await expect(row).to_contain_text(enrolled.out.strip())
    listed = await cli.run("list")  # the client pins the expert's browser device on first sight
    assert listed.code == 0 and listed.out == "", listed.err
    keys = await (await page.request.get(f"/api/visits/{env.world.visit_id}/keys")).json()
    (expert,) = [p for p in keys["people"] if p["person"] == env.world.members["expert"].person_id]
    (device,) = expert["devices"]
    assert device["safety_code"] == browser_code
    assert device["id"] in (cli.config / "pins.json").read_text()


async def test_a_file_uploaded_with_the_cli_opens_in_the_browser(env: Env) -> None:
    assert env.cli is not None and env.page is not None
    data = os.urandom(MiB + 4321)  # two chunks
    name = "Informe de gestión 2023.bin"
    path = env.tmp / name
    path.write_bytes(data)
    result = await env.cli.run("upload", "--session", env.world.sessions["closed"], str(path))
    assert result.code == 0, result.err
    assert ID.fullmatch(result.out.strip())

    page = env.page
    await page.reload()
    await ready(page)
    row = doc_row(page, name)
    await expect(row).to_have_count(1)
    async with page.expect_download() as info:
        await row.get_by_role("button", name="Download").click()
    download = await info.value
    assert download.suggested_filename == name
    assert sha(Path(await download.path()).read_bytes()) == sha(data)


async def test_a_file_uploaded_in_the_browser_downloads_with_the_cli(env: Env) -> None:
    assert env.cli is not None and env.page is not None
    page = env.page
    data = os.urandom(2 * MiB + 99)  # three chunks
    name = "estadísticas decomiso.csv"
    source = env.tmp / "browser-files"
    source.mkdir()
    (source / name).write_bytes(data)
    closed = env.world.sessions["closed"]
    await page.locator("#ev-placement").select_option(f"s:{closed}")
    # The delegate (whose only device is the command-line client's) is among the recipients.
    await expect(page.locator(f'#ev-rcpt-{env.world.members["delegate"].person_id}')).to_be_checked()
    await page.locator("#ev-files").set_input_files(source / name)
    await page.get_by_role("button", name="Encrypt and send").click()
    await expect(page.locator('.ev-file[data-state="sent"]')).to_have_count(1, timeout=30_000)

    listed = await env.cli.run("list", "--session", closed)
    assert listed.code == 0, listed.err
    found = [line.split("\t") for line in listed.out.splitlines() if line.endswith(f"\t{name}")]
    assert len(found) == 1, listed.out
    (document, _), = found
    where = env.tmp / "cli-downloads"
    where.mkdir()
    got = await env.cli.run("download", document, cwd=where)
    assert got.code == 0, got.err
    assert got.out == f"{where / name}\n"
    assert sha((where / name).read_bytes()) == sha(data)
