"""The evidence room's versions and late keys, end to end in Chromium against a real
Parley server: a new version of a document uploaded by the uploader's delegation (with
its recipients shown first and its progress), seen live by others, its history with
every version downloadable by whoever held its key; a second browser of an expert,
vouched for by the first, getting its key through "Share pending documents"; a person
whose device's key changed named and skipped; the activity panel naming the people a
document was shared with.

One server and one browser for the module; each person has their own context. The
tests build on each other in order, as people do."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page, expect
from sqlalchemy import delete, select

from server.evidence import formats
from server.evidence.models import Device, WrappedKey
from server.web.keys import SESSIONS
from tests.browser.evidence_env import Env, MiB, device_row, doc_row, evidence_env, ready, set_up_device, sha
from tests.evidence.crypto import DeviceKeys
from tests.fixtures.databases import Templates

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

NAME = "informe preliminar.txt"
FIRST = "Informe preliminar — primera versión".encode()
SECOND = os.urandom(MiB + 4321)  # two chunks: the progress moves


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    async with evidence_env(templates, tmp_path_factory.mktemp("evidence-versions")) as e:
        yield e


async def fresh(page: Page) -> None:
    await page.reload()
    await ready(page)


def person(env: Env, key: str) -> str:
    return env.world.members[key].person_id


async def listing(page: Page, env: Env) -> Any:
    """The one document of this module, as the server lists it for this page's person."""
    answer = await page.request.get(f"/api/visits/{env.world.visit_id}/documents")
    assert answer.ok
    [doc] = (await answer.json())["documents"]
    return doc


async def test_the_uploaders_delegation_and_the_secretariat_may_add_a_version(env: Env) -> None:
    for key in ("secretariat", "expert", "expert2", "delegate"):
        await set_up_device(await env.open(key))
    # The secretariat verifies the expert's device (so the expert's vouching counts for it later).
    secretariat = env.people["secretariat"].page
    await fresh(secretariat)
    row = device_row(secretariat, person(env, "expert"))
    await row.get_by_role("button", name="Verify").click()
    await row.get_by_role("button", name="The codes match").click()
    await expect(row.locator(".badge")).to_have_text("verified")

    expert = env.people["expert"].page
    await fresh(expert)
    await expert.locator("#ev-files").set_input_files(env.file(NAME, FIRST))
    await expert.get_by_role("button", name="Encrypt and send").click()
    await expect(expert.locator('.ev-file[data-state="sent"]')).to_have_count(1)
    await expect(doc_row(expert, NAME).locator(".ev-verified")).to_have_text("verified: uploaded by Expert Person, Kenya")
    await expect(doc_row(expert, NAME).locator(".ev-history")).to_have_count(0)  # one version: no history yet
    for key, may in (("expert", True), ("expert2", True), ("secretariat", True), ("delegate", False)):
        page = env.people[key].page
        await fresh(page)
        await expect(doc_row(page, NAME).locator(".ev-verified")).to_be_visible()
        await expect(doc_row(page, NAME).get_by_role("button", name="Upload a new version")).to_have_count(int(may))
    # Nor does the server let the other delegation add one.
    doc = (await listing(expert, env))["id"]
    refused = await env.people["delegate"].page.request.post(
        f"/api/visits/{env.world.visit_id}/documents", data={"document": doc, "chunks": 1, "size": 16},
        headers={"Origin": env.server.url})
    assert refused.status == 403, await refused.text()


async def test_a_colleague_uploads_a_new_version_that_others_see_live_with_its_history(env: Env) -> None:
    delegate = env.people["delegate"].page
    await expect(delegate.locator("body")).to_have_attribute("data-evidence-live", "on")
    colleague = env.people["expert2"].page
    row = doc_row(colleague, NAME)
    doc = await row.get_attribute("data-document")
    opener = row.get_by_role("button", name="Upload a new version")
    await opener.click()
    await expect(opener).to_have_attribute("aria-expanded", "true")
    panel = colleague.get_by_role("region", name=f"New version of {NAME}")
    # The recipients before anything is sent: as for a new upload.
    locked = panel.locator(f'#ev-vrcpt-{doc}-{person(env, "secretariat")}')
    await expect(locked).to_be_checked()
    await expect(locked).to_be_disabled()
    await expect(panel.locator(f'#ev-vrcpt-{doc}-{person(env, "delegate")}')).to_be_checked()
    for key in ("interpreter", "stakeholder", "observer"):
        await expect(panel.locator(f'#ev-vrcpt-{doc}-{person(env, key)}')).to_have_count(0)
    await panel.get_by_label("Choose the new version's file:").set_input_files(env.file(NAME, SECOND))
    await expect(panel.get_by_role("progressbar", name="Progress of the new version")).to_have_attribute(
        "aria-valuenow", "100", timeout=20_000)
    await expect(colleague.locator("#ev-status")).to_have_text(f"{NAME} was sent as the new version.")
    await expect(row.get_by_text("Version 2 of 2")).to_be_visible()
    await expect(row.locator(".ev-verified")).to_have_text(
        "verified: uploaded by Expert Person, Kenya; new version by Expert2 Person")

    # The delegate's page was not reloaded: it hears evidence.shared.
    theirs = doc_row(delegate, NAME)
    await expect(theirs.get_by_text("Version 2 of 2")).to_be_visible()
    await expect(delegate.locator("#ev-news")).to_have_text(f"New evidence was shared with you: {NAME}")
    await theirs.get_by_text("Version history (2)").click()
    versions = theirs.locator(".ev-version")
    await expect(versions).to_have_count(2)
    await expect(versions.nth(0)).to_contain_text("Version 2 (current)")
    await expect(versions.nth(0)).to_contain_text("by Expert2 Person, Kenya")
    await expect(versions.nth(1)).to_contain_text("Version 1")
    await expect(versions.nth(1)).to_contain_text("by Expert Person, Kenya")
    for version in (0, 1):
        await expect(versions.nth(version).locator(".ev-version-date")).to_have_text(re.compile(r"\b20\d\d\b"))
    for label, data in (("Download version 1", FIRST), ("Download version 2", SECOND)):
        async with delegate.expect_download() as info:
            await theirs.get_by_role("button", name=label).click()
        download = await info.value
        assert download.suggested_filename == NAME
        assert sha(Path(await download.path()).read_bytes()) == sha(data)
    async with delegate.expect_download() as info:
        await theirs.get_by_role("button", name="Download", exact=True).click()
    assert sha(Path(await (await info.value).path()).read_bytes()) == sha(SECOND)
    # A new content key: the two versions' keys, unwrapped here, differ.
    keys = await delegate.evaluate(
        """async ({visit, person}) => {
          const ev = await import("/static/js/evidence_crypto.js");
          const ek = await import("/static/js/evidence_keys.js");
          const mine = await ek.loadDevice(await ek.openKeyStore(), person);
          const [doc] = (await (await fetch(`/api/visits/${visit}/documents`)).json()).documents;
          const out = [];
          for (const v of doc.versions) {
            const w = v.keys.find((k) => k.device === mine.device).wrapped;
            out.push(ev.b64u(await ev.unwrapKey(ev.unb64u(w), mine.keys, ev.wrapInfo(visit, v.id, mine.device))));
          }
          return out;
        }""", {"visit": env.world.visit_id, "person": person(env, "delegate")})
    assert len(keys) == 2 and keys[0] != keys[1]


async def test_a_new_browser_of_an_expert_vouched_for_gets_the_document_from_share_pending(env: Env) -> None:
    phone = await env.open("expert", name="expert-phone")
    await set_up_device(phone)
    env.people["expert-phone"] = phone
    page = phone.page
    await expect(page.locator(".ev-doc .ev-problem")).to_contain_text("no key to this document yet")
    new_id = await page.locator(".ev-device", has=page.locator(".badge", has_text="this browser")).get_attribute(
        "data-device")
    # The expert's first browser vouches for it.
    expert = env.people["expert"].page
    await fresh(expert)
    mine = expert.locator(f'.ev-device[data-device="{new_id}"]')
    await mine.get_by_role("button", name="Vouch for this device").click()
    await mine.get_by_role("button", name="The codes match").click()
    await expect(mine.locator(".badge")).to_have_text("verified")
    # The secretariat verified the expert's first device: the cross-signature counts for it.
    secretariat = env.people["secretariat"].page
    await fresh(secretariat)
    await expect(secretariat.locator(f'.ev-device[data-device="{new_id}"] .badge')).to_have_text("verified")
    await secretariat.get_by_role("button", name="Share pending documents").click()
    await expect(secretariat.locator("#ev-admin-result")).to_have_text("1 document(s) shared with 1 device(s).")
    # The second browser hears it and opens the current version; the first version's key it never held.
    await expect(doc_row(page, NAME).locator(".ev-verified")).to_be_visible()
    async with page.expect_download() as info:
        await doc_row(page, NAME).get_by_role("button", name="Download", exact=True).click()
    assert sha(Path(await (await info.value).path()).read_bytes()) == sha(SECOND)
    await doc_row(page, NAME).get_by_text("Version history (2)").click()
    old = doc_row(page, NAME).locator('.ev-version[data-number="1"]')
    await expect(old).to_contain_text("no key on this browser")
    await expect(old.get_by_role("button")).to_have_count(0)


async def test_the_activity_panel_names_whom_a_document_was_shared_with(env: Env) -> None:
    interpreter = await env.open("interpreter")
    await set_up_device(interpreter)
    booth = await env.open("interpreter", name="interpreter-booth")
    await set_up_device(booth)
    secretariat = env.people["secretariat"].page
    await fresh(secretariat)
    row = doc_row(secretariat, NAME)
    await row.get_by_label("Grant to…").select_option(label="Interpreter Person (interpreter)")
    await row.get_by_role("button", name="Grant", exact=True).click()
    await expect(secretariat.locator("#ev-status")).to_have_text("The document was granted.")
    await fresh(secretariat)
    row = doc_row(secretariat, NAME)
    await row.get_by_role("button", name="Activity").click()
    entries = row.get_by_role("region", name=f"Activity of {NAME}").locator(".ev-activity-entry")
    await expect(entries.filter(has_text="Expert Person uploaded it")).to_have_count(1)
    await expect(entries.filter(has_text="Expert2 Person uploaded a new version")).to_have_count(1)
    await expect(entries.filter(has_text="Secretariat Person shared it with Expert Person (1 device)")).to_have_count(1)
    await expect(entries.filter(has_text="Secretariat Person shared it with Interpreter Person (2 devices)")).to_have_count(1)
    for p in (interpreter.page, booth.page):
        await expect(doc_row(p, NAME).locator(".ev-verified")).to_be_visible()


async def test_share_pending_names_and_skips_a_person_whose_device_key_changed(env: Env) -> None:
    secretariat = env.people["secretariat"].page
    delegate = person(env, "delegate")
    device_id = await device_row(secretariat, delegate).get_attribute("data-device")
    await expect(device_row(secretariat, delegate).locator(".badge")).to_have_text("pinned")
    await env.people["delegate"].page.context.close()
    current = (await listing(secretariat, env))["version"]["id"]
    # The server now presents other keys for the delegate's only device, without a key to the document.
    other = DeviceKeys.new()
    async with env.server.app[SESSIONS]() as db:
        device = (await db.execute(select(Device).where(Device.id == device_id))).scalar_one()
        device.sig_alg, device.sig_pub, device.enc_pub = other.sig_alg, other.sig_pub, other.enc_pub
        device.fingerprint = formats.fingerprint(delegate, other.sig_alg, other.sig_pub, other.enc_pub)
        await db.execute(delete(WrappedKey).where(WrappedKey.device_id == device_id, WrappedKey.version_id == current))
        await db.commit()
    await fresh(secretariat)
    await expect(device_row(secretariat, delegate).locator(".badge")).to_have_text(
        "key changed: verify again before sharing")
    await secretariat.get_by_role("button", name="Share pending documents").click()
    await expect(secretariat.locator("#ev-admin-result")).to_have_text(
        "0 document(s) shared with 0 device(s). Not shared with Delegate Person (key changed): compare their "
        "safety codes and verify their devices first.")
    pending = await secretariat.request.get(f"/api/visits/{env.world.visit_id}/pending")
    assert [r["device"] for p in (await pending.json())["pending"] for r in p["recipients"]] == [device_id]
