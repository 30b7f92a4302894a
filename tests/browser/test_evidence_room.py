"""The evidence room in the browser (/visits/{visit}/evidence), end to end against a
real Parley server: devices and recovery, verification, uploads that cross chunks,
resuming after a cut, downloads that decrypt to identical bytes, tampering refused
with nothing saved, who sees what, and the page in Spanish.

One server and one browser for the module; each person has their own context. The
tests build on each other in order (devices first, then documents), as people do."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page, Route, expect
from sqlalchemy import update

from server.people.models import Person
from server.web.keys import SESSIONS
from tests.browser.evidence_env import Env, MiB, device_row, doc_row, evidence_env, ready, set_up_device, sha
from tests.fixtures.databases import Templates

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    async with evidence_env(templates, tmp_path_factory.mktemp("evidence-room")) as e:
        yield e


# ---- devices ---------------------------------------------------------------------------------



async def upload_cut_at(page: Page, path: Path, index: int) -> list[str]:
    """Send ``path`` with the connection cut at chunk ``index``; wait until the page
    offers to resume. The chunk PUT URLs requested so far, and later ones too."""
    puts: list[str] = []
    page.on("request", lambda r: puts.append(r.url) if r.method == "PUT" and "/chunks/" in r.url else None)

    async def cut(route: Route) -> None:
        if route.request.url.endswith(f"/chunks/{index}"):
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await page.route("**/chunks/*", cut)
    await page.locator("#ev-files").set_input_files(path)
    await page.get_by_role("button", name="Encrypt and send").click()
    await expect(page.locator("#ev-error")).to_contain_text("Drop the same file again to resume")
    await page.unroute("**/chunks/*", cut)
    return puts

async def test_a_device_is_set_up_with_its_recovery_code_shown_once(env: Env) -> None:
    delegate = await env.open("delegate")
    await expect(delegate.page.get_by_text("This browser's device")).to_be_visible()
    await set_up_device(delegate)
    # Reloaded: the keys are still here, the code is never shown again.
    await delegate.page.reload()
    await ready(delegate.page)
    await expect(delegate.page.locator("#ev-own-code")).to_be_visible()
    await expect(delegate.page.locator("#ev-recovery-code")).to_have_count(0)
    assert delegate.code not in await delegate.page.content()
    # The private keys are non-extractable in IndexedDB.
    extractable = await delegate.page.evaluate(
        """async (person) => {
          const ek = await import("/static/js/evidence_keys.js");
          const mine = await ek.loadDevice(await ek.openKeyStore(), person);
          return [mine.keys.encPrivate.extractable, mine.keys.sigPrivate.extractable];
        }""",
        env.world.members["delegate"].person_id,
    )
    assert extractable == [False, False]
    for key in ("secretariat", "expert"):
        await set_up_device(await env.open(key))


async def test_two_people_verify_each_other(env: Env) -> None:
    expert, delegate = env.people["expert"], env.people["delegate"]
    for me, other in ((expert, delegate), (delegate, expert)):
        await me.page.reload()
        await ready(me.page)
        row = device_row(me.page, env.world.members[other.key].person_id)
        await expect(row.locator(".badge")).to_have_text("pinned")
        await row.get_by_role("button", name="Verify").click()
        their = await row.locator(".ev-their-code").text_content()
        own = await other.page.locator("#ev-own-code").text_content()
        assert their == own  # what the other person reads aloud
        await row.get_by_role("button", name="The codes match").click()
        await expect(row.locator(".badge")).to_have_text("verified")
    # The secretariat sees the hint to have delegations read their codes aloud.
    await expect(env.people["secretariat"].page.get_by_text("read their safety codes aloud")).to_be_visible()


# ---- upload and download ---------------------------------------------------------------------


async def test_an_upload_of_several_files_downloads_to_identical_bytes(env: Env) -> None:
    delegate, expert = env.people["delegate"], env.people["expert"]
    big = os.urandom(3 * MiB + 12345)
    small = "Ley 1474 de 2011 — Estatuto Anticorrupción".encode()
    paths = [env.file("estatuto anticorrupción.txt", small), env.file("statistics-2019-2023.bin", big),
             env.file("empty.txt", b"")]
    page = delegate.page
    closed = env.world.sessions["closed"]
    await page.locator("#ev-placement").select_option(f"s:{closed}")
    await page.locator("#ev-articles").fill("15, 16")
    await page.locator("#ev-description").fill("Laws and statistics")
    # The recipients before sending: the secretariat locked in, no stakeholder.
    secretariat_box = page.locator(f'#ev-rcpt-{env.world.members["secretariat"].person_id}')
    await expect(secretariat_box).to_be_checked()
    await expect(secretariat_box).to_be_disabled()
    await expect(page.locator(f'#ev-rcpt-{env.world.members["stakeholder"].person_id}')).to_have_count(0)
    await expect(page.locator(f'#ev-rcpt-{env.world.members["interpreter"].person_id}')).to_have_count(0)
    await page.locator("#ev-files").set_input_files(paths)
    await expect(page.locator(".ev-file")).to_have_count(3)
    await page.get_by_role("button", name="Encrypt and send").click()
    await expect(page.locator('.ev-file[data-state="sent"]')).to_have_count(3, timeout=30_000)
    await expect(doc_row(page, "statistics-2019-2023.bin")).to_be_visible()

    # The expert sees the names decrypted and the verified uploader, then downloads.
    await expert.page.reload()
    await ready(expert.page)
    for name in ("estatuto anticorrupción.txt", "statistics-2019-2023.bin", "empty.txt"):
        await expect(doc_row(expert.page, name).locator(".ev-verified")).to_have_text(
            "verified: uploaded by Delegate Person, Colombia")
    for name, data in (("statistics-2019-2023.bin", big), ("estatuto anticorrupción.txt", small)):
        async with expert.page.expect_download() as info:
            await doc_row(expert.page, name).get_by_role("button", name="Download").click()
        download = await info.value
        assert download.suggested_filename == name
        assert sha(Path(await download.path()).read_bytes()) == sha(data)
    # Nothing decrypted stays behind in the private file system for long; the server saw ciphertext only.
    stored = b"".join(p.read_bytes() for p in (env.server.settings.var_dir / "evidence").rglob("*") if p.is_file())
    assert small not in stored and b"statistics-2019" not in stored


async def test_a_new_browser_restores_the_device_and_opens_old_documents(env: Env) -> None:
    again = await env.open("delegate", name="delegate-new-browser")
    page = again.page
    await expect(page.locator(".ev-doc")).to_have_count(3)
    await expect(doc_row(page, "empty.txt")).to_have_count(0)  # names are sealed until restored
    await page.locator("#ev-restore-secret").fill("AAAA-" + env.people["delegate"].code[5:])
    await page.get_by_role("button", name="Restore").click()
    await expect(page.locator("#ev-error")).to_contain_text("does not open")
    await page.locator("#ev-restore-secret").fill(env.people["delegate"].code.lower().replace("-", " "))
    await page.get_by_role("button", name="Restore").click()
    await expect(page.locator("#ev-own-code")).to_have_text(
        await env.people["delegate"].page.locator("#ev-own-code").text_content() or "")
    async with page.expect_download() as info:
        await doc_row(page, "estatuto anticorrupción.txt").get_by_role("button", name="Download").click()
    assert Path(await (await info.value).path()).read_bytes() == "Ley 1474 de 2011 — Estatuto Anticorrupción".encode()
    await page.context.close()


async def test_an_interrupted_upload_resumes_with_the_missing_chunks_only(env: Env) -> None:
    page = env.people["delegate"].page
    data = os.urandom(3 * MiB + 100)  # 4 chunks
    path = env.file("case-files.bin", data)
    puts = await upload_cut_at(page, path, 2)
    assert len(puts) == 3  # chunks 0, 1, and the cut 2

    await page.reload()
    await ready(page)
    await expect(page.locator("#ev-unfinished")).to_contain_text("case-files.bin")
    puts.clear()
    await page.locator("#ev-files").set_input_files(path)
    await page.get_by_role("button", name="Encrypt and send").click()
    await expect(page.locator(".ev-file-state").first).to_have_text("sent (resumed: 2 parts were missing)")
    assert [u.rsplit("/", 1)[1] for u in puts] == ["2", "3"]
    await expect(doc_row(page, "case-files.bin")).to_be_visible()
    expert = env.people["expert"].page
    await expert.reload()
    await ready(expert)
    async with expert.expect_download() as info:
        await doc_row(expert, "case-files.bin").get_by_role("button", name="Download").click()
    assert sha(Path(await (await info.value).path()).read_bytes()) == sha(data)


async def test_a_changed_file_starts_over_with_a_new_version(env: Env) -> None:
    page = env.people["delegate"].page
    first = os.urandom(2 * MiB + 10)
    path = env.file("draft.bin", first)
    stat = path.stat()
    puts = await upload_cut_at(page, path, 1)
    # Same name, size and modification time, other bytes: never mixed with what was sent.
    changed = os.urandom(len(first))
    path.write_bytes(changed)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    await page.reload()
    await ready(page)
    puts.clear()
    await page.locator("#ev-files").set_input_files(path)
    await page.get_by_role("button", name="Encrypt and send").click()
    await expect(page.locator(".ev-file-state").first).to_have_text("sent")
    assert [u.rsplit("/", 1)[1] for u in puts] == ["0", "1", "2"]
    async with page.expect_download() as info:
        await doc_row(page, "draft.bin").get_by_role("button", name="Download").click()
    assert sha(Path(await (await info.value).path()).read_bytes()) == sha(changed)
    await expect(doc_row(page, "draft.bin")).to_have_count(1)


async def test_tampered_content_is_refused_and_nothing_is_saved(env: Env) -> None:
    page = env.people["expert"].page

    async def flip(route: Route) -> None:
        response = await route.fetch()
        body = bytearray(await response.body())
        body[len(body) // 2] ^= 1
        await route.fulfill(response=response, body=bytes(body))

    leftovers = """async () => { const out = []; for await (const [n] of (await navigator.storage.getDirectory()).entries())
                           if (n.startsWith("parley-dl-")) out.push(n); return out.sort(); }"""
    # Earlier downloads stay a minute for the browser to copy them; the refused one not at all.
    before = await page.evaluate(leftovers)
    await page.route("**/content", flip)
    downloads: list[Any] = []
    page.on("download", lambda d: downloads.append(d))
    await doc_row(page, "statistics-2019-2023.bin").get_by_role("button", name="Download").click()
    await expect(page.locator("#ev-error")).to_contain_text("statistics-2019-2023.bin was not saved")
    await expect(page.locator("#ev-error")).to_contain_text("not the one its uploader signed")
    await page.unroute("**/content", flip)
    assert downloads == []
    assert await page.evaluate(leftovers) == before


# ---- who sees what ---------------------------------------------------------------------------


async def test_a_stakeholder_never_sees_a_closed_sessions_documents(env: Env) -> None:
    stakeholder = await env.open("stakeholder")
    await set_up_device(stakeholder)
    await expect(stakeholder.page.locator("#ev-no-documents")).to_be_visible()
    answer = await stakeholder.page.request.get(f"/api/visits/{env.world.visit_id}/documents")
    assert answer.ok and (await answer.json())["documents"] == []
    # Nor can the uploader make them a recipient: they are not offered.
    await expect(env.people["delegate"].page.locator(
        f'#ev-rcpt-{env.world.members["stakeholder"].person_id}')).to_have_count(0)
    await stakeholder.page.context.close()


async def test_the_page_in_spanish(env: Env) -> None:
    async with env.server.app[SESSIONS]() as db:
        await db.execute(update(Person).where(Person.id == env.world.members["observer"].person_id)
                         .values(languages=["es"]))
        await db.commit()
    observer = await env.open("observer")
    page = observer.page
    await expect(page.locator("html")).to_have_attribute("lang", "es")
    await expect(page.get_by_role("heading", name="Sala de pruebas")).to_be_visible()
    await expect(page.get_by_role("button", name="Configurar el cifrado en este navegador")).to_be_visible()
    await page.get_by_label("Usar una frase de contraseña en lugar de un código de recuperación").check()
    await expect(page.get_by_label("La misma frase de contraseña otra vez")).to_be_visible()
    await page.context.close()
